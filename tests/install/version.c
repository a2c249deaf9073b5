/* Prints the version the installed header says, for the install test to
 * compare with pkg-config's and the soname's. */
#include <socketloop.h>
#include <stdio.h>

#if SOCKETLOOP_VERSION != SOCKETLOOP_VERSION_MAJOR * 10000 +                   \
                              SOCKETLOOP_VERSION_MINOR * 100 +                 \
                              SOCKETLOOP_VERSION_PATCH
#error "SOCKETLOOP_VERSION does not match its parts"
#endif

int main(void)
{
    printf("%s %d\n", SOCKETLOOP_VERSION_STRING, SOCKETLOOP_VERSION_MAJOR);
    return 0;
}
