/* Texts for result codes: one table for the whole library, so that
 * gt_strerror and net_strerror agree on every code. */
#include "base.h"

#include "socketloop/net.h"

#include <string.h>

const char *gt_strerror(int rc)
{
    if (rc >= 0) return "success";
    switch (rc) {
    case GT_EMAPLIMIT:
        return "the kernel's limit on memory mappings (vm.max_map_count) "
               "stops new stacks: raise it with sysctl, or spawn with "
               "GT_NOGUARD, which needs no guard-page mapping";
    case GT_EOWNER:
        return "belongs to another OS thread: a channel, semaphore or "
               "socket is used only on the OS thread that made it";
    case NET_ECLOSED: return "closed";
    case NET_EFDSETSIZE:
        return "descriptor at or past FD_SETSIZE, which the select poller "
               "cannot watch; use poll or epoll (SOCKETLOOP_POLLER)";
    case NET_ENOTFOUND: return "host not found";
    case NET_ERESOLVE: return "name resolution failed";
    case NET_ETRYAGAIN: return "temporary failure in name resolution";
    case NET_EEOF: return "end of stream";
    default: break;
    }
    if (rc < -4095) return "unknown error"; /* also keeps -rc defined */
    /* strerrordesc_np returns static text and, unlike strerror, is safe
     * to call from any thread. */
    const char *s = strerrordesc_np(-rc);
    return s ? s : "unknown error";
}
