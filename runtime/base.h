/* What every private header of the runtime starts from: the feature-test
 * macros, the public API, which sanitizer the build runs under, and the
 * fatal-error exit.  Nothing here is part of the public API; every name
 * with external linkage carries gt__. */
#ifndef GT_BASE_H
#define GT_BASE_H

#include "prefix.h"
#include "socketloop/gt.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__)
#define GT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GT__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GT__TSAN 1
#endif
#endif

/* Prints where and what went wrong, with the running thread, and aborts
 * (runtime/debug.c). */
void gt__fatal(const char *file, int line, const char *what);
/* Gives the latest result rc of this OS thread its own text: gt_strerror
 * (rc) returns a copy of text until the next call, for codes whose cause
 * is not the code alone (a TLS failure carries OpenSSL's reason). */
void gt__set_detail(int rc, const char *text);
#define GT__ASSERT(c) ((c) ? (void)0 : gt__fatal(__FILE__, __LINE__, #c))

#endif
