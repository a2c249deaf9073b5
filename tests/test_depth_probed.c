/* Frames far larger than the guard page, built with -fstack-clash-protection
 * (see tests/CMakeLists.txt): the compiler touches every page of such a frame
 * from the top down before using it, so the first touch below the stack is
 * in the guard page, which the overflow handler reports.  Called by
 * test_depth_overflow.c. */

unsigned depth_probed_64k(void);
unsigned depth_probed_1m(void);

/* Each writes the lowest byte of its frame first, as a frame that skips the
 * guard page without probes would.  The array escapes into an empty asm
 * statement, so that the compiler keeps all of it. */
#define HUGE_FRAME(name, bytes)                                                \
    __attribute__((noinline)) unsigned name(void)                              \
    {                                                                          \
        volatile unsigned char big[bytes];                                     \
        big[0] = 1;                                                            \
        __asm__ volatile("" : : "r"(big) : "memory");                          \
        return big[0];                                                         \
    }

HUGE_FRAME(depth_probed_64k, 64 * 1024)
HUGE_FRAME(depth_probed_1m, 1024 * 1024)
