/* Texts for result codes: one table for the whole library, so that
 * gt_strerror and net_strerror agree on every code. */
#include "base.h"

#include "socketloop/net.h"
#include "socketloop/tls.h"

#include <stdio.h>
#include <string.h>

/* The latest detailed result of this OS thread (gt__set_detail). */
static _Thread_local int detail_rc;
static _Thread_local char detail[256];

void gt__set_detail(int rc, const char *text)
{
    detail_rc = rc;
    snprintf(detail, sizeof detail, "%s", text);
}

const char *gt_strerror(int rc)
{
    if (rc >= 0) return "success";
    if (rc == detail_rc && detail[0]) return detail;
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
    case NET_ETLS: return "TLS failure";
    case NET_ETLSVERIFY: return "certificate verify failed";
    case NET_ETLSTRUNC:
        return "TLS stream truncated: the peer closed without close_notify";
    case NET_ETLSCONFIG: return "TLS configuration failed";
    default: break;
    }
    if (rc < -4095) return "unknown error"; /* also keeps -rc defined */
    /* strerrordesc_np returns static text and, unlike strerror, is safe
     * to call from any thread. */
    const char *s = strerrordesc_np(-rc);
    return s ? s : "unknown error";
}
