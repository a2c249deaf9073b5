/* The OpenSSL faults of fault_tls.h.  OpenSSL calls the memory functions
 * installed here for every allocation it makes, from any OS thread, so the
 * counters are atomic.  They allocate with __real_malloc and friends:
 * these programs wrap libc's malloc too (fault.c), and OpenSSL's blocks
 * must be counted here only, not as the library's own calls. */
#include "fault_tls.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

const char *const ft_site_name[FT_NSITES] = {
    "crypto_malloc",    "crypto_realloc", "SSL_CTX_new",  "SSL_new",
    "SSL_do_handshake", "SSL_read_ex",    "SSL_write_ex",
};

static atomic_int armed, hit;
static atomic_long calls[FT_NSITES];
static int plan_site;
static long plan_nth;

void ft_arm(int site, long nth)
{
    for (int i = 0; i < FT_NSITES; i++) atomic_store(&calls[i], 0);
    plan_site = site;
    plan_nth = nth;
    atomic_store(&hit, 0);
    atomic_store(&armed, 1);
}

void ft_disarm(void)
{
    atomic_store(&armed, 0);
}

long ft_calls(int site)
{
    return atomic_load(&calls[site]);
}

int ft_hit(void)
{
    return atomic_load(&hit);
}

/* Counts a call of site; 1 if it is the one to fail. */
static int take(int site)
{
    if (!atomic_load(&armed)) return 0;
    long n = atomic_fetch_add(&calls[site], 1) + 1;
    if (site != plan_site || n != plan_nth) return 0;
    atomic_store(&hit, 1);
    return 1;
}

/* Declarations, for -Wmissing-prototypes. */
void *__real_malloc(size_t);
void *__real_realloc(void *, size_t);
SSL_CTX *__real_SSL_CTX_new(const SSL_METHOD *);
SSL_CTX *__wrap_SSL_CTX_new(const SSL_METHOD *);
SSL *__real_SSL_new(SSL_CTX *);
SSL *__wrap_SSL_new(SSL_CTX *);
int __real_SSL_do_handshake(SSL *);
int __wrap_SSL_do_handshake(SSL *);
int __real_SSL_read_ex(SSL *, void *, size_t, size_t *);
int __wrap_SSL_read_ex(SSL *, void *, size_t, size_t *);
int __real_SSL_write_ex(SSL *, const void *, size_t, size_t *);
int __wrap_SSL_write_ex(SSL *, const void *, size_t, size_t *);

static void *ft_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return take(FT_CRYPTO_MALLOC) ? NULL : __real_malloc(n);
}

/* A realloc of NULL is an allocation, and counts as one. */
static void *ft_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (take(p ? FT_CRYPTO_REALLOC : FT_CRYPTO_MALLOC)) return NULL;
    return __real_realloc(p, n);
}

static void ft_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

int ft_install(void)
{
    return CRYPTO_set_mem_functions(ft_malloc, ft_realloc, ft_free) ? 0 : -1;
}

/* Each failure is pushed as OpenSSL pushes an allocation failure. */
SSL_CTX *__wrap_SSL_CTX_new(const SSL_METHOD *m)
{
    if (!take(FT_SSL_CTX_NEW)) return __real_SSL_CTX_new(m);
    ERR_raise(ERR_LIB_SSL, ERR_R_CRYPTO_LIB);
    return NULL;
}

SSL *__wrap_SSL_new(SSL_CTX *ctx)
{
    if (!take(FT_SSL_NEW)) return __real_SSL_new(ctx);
    ERR_raise(ERR_LIB_SSL, ERR_R_CRYPTO_LIB);
    return NULL;
}

int __wrap_SSL_do_handshake(SSL *s)
{
    if (!take(FT_SSL_DO_HANDSHAKE)) return __real_SSL_do_handshake(s);
    ERR_raise(ERR_LIB_SSL, ERR_R_INTERNAL_ERROR);
    return -1;
}

int __wrap_SSL_read_ex(SSL *s, void *buf, size_t n, size_t *got)
{
    if (!take(FT_SSL_READ_EX)) return __real_SSL_read_ex(s, buf, n, got);
    ERR_raise(ERR_LIB_SSL, ERR_R_INTERNAL_ERROR);
    return 0;
}

int __wrap_SSL_write_ex(SSL *s, const void *buf, size_t n, size_t *put)
{
    if (!take(FT_SSL_WRITE_EX)) return __real_SSL_write_ex(s, buf, n, put);
    ERR_raise(ERR_LIB_SSL, ERR_R_INTERNAL_ERROR);
    return 0;
}
