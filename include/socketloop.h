/* socketloop: TCP connections as plain sequential code, one green thread
 * each.  This umbrella header includes every public part. */
#ifndef SOCKETLOOP_H
#define SOCKETLOOP_H

#include "socketloop/gt.h"
#include "socketloop/net.h"

#define SOCKETLOOP_VERSION_MAJOR 0
#define SOCKETLOOP_VERSION_MINOR 1
#define SOCKETLOOP_VERSION_PATCH 0

#endif
