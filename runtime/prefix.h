/* Feature-test macros; included first by every source file that needs
 * more than ISO C. */
#ifndef GT_PREFIX_H
#define GT_PREFIX_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#endif
