/* Texts for result codes. */
#include "internal.h"

#include <string.h>

const char *gt_strerror(int rc)
{
    if (rc >= 0) return "success";
    if (rc == GT_EMAPLIMIT)
        return "the kernel's limit on memory mappings (vm.max_map_count) "
               "stops new stacks: raise it with sysctl, or spawn with "
               "GT_NOGUARD, which needs no guard-page mapping";
    if (rc < -4095) return "unknown error"; /* also keeps -rc defined */
    /* strerrordesc_np returns static text and, unlike strerror, is safe
     * to call from any thread. */
    const char *s = strerrordesc_np(-rc);
    return s ? s : "unknown error";
}
