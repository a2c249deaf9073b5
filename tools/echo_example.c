#include <socketloop.h>
#include <stdio.h>

/* Each connection runs here, in its own green thread, as plain blocking
 * code; returning closes the socket. */
static void echo(net_sock *s, void *arg)
{
    char buf[512];
    ssize_t n;
    (void)arg;
    while ((n = net_recv(s, buf, sizeof buf, gt_now() + 60000)) > 0)
        if (net_send(s, buf, (size_t)n, NULL, -1) < 0) break;
}

int main(void)
{
    net_sock *listener;
    int rc = net_serve(&listener, "127.0.0.1", 7000, echo, NULL);
    if (rc == 0) rc = gt_run(); /* serves until the process is stopped */
    fprintf(stderr, "echo: %s\n", net_strerror(rc));
    return 1;
}
