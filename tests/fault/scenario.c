/* A small server and its clients in one loop, as a program would write
 * them.  A director green thread makes a channel, serves on 127.0.0.1 with
 * net_serve, and runs two clients one after the other: A connects to
 * 127.0.0.1 and moves 200 kB each way through small socket buffers (so
 * both sides park); B connects to "localhost", which the library resolves
 * on its worker threads, and moves 100 bytes each way.  Each client sends
 * a line "<up> <down>", then `up` bytes; the handler checks them and
 * answers with `down` bytes, which the client checks; then both close.
 *
 * Beside it a bystander, two green threads playing ping-pong over a
 * socketpair in the same loop, keeps exchanging until the director has
 * finished.  Its calls are spared by the fault injection: it stands for
 * the other connections of a server, and must not notice the fault.
 *
 * Every wait has the run's deadline, so a lost wake-up shows as
 * -ETIMEDOUT instead of a hang. */
#include "net_test.h"

#include "fault.h"
#include "scenario.h"

#define A_BYTES 200000
#define B_BYTES 100
#define CLIENT_STACK ((size_t)128 * 1024) /* never pooled: always mapped */
#define RUN_STACK ((size_t)96 * 1024)     /* default stack during a run */

typedef struct client_spec {
    const char *host;
    size_t bytes; /* each way */
} client_spec;

static const client_spec specs[SC_CLIENTS] = {{"127.0.0.1", A_BYTES},
                                              {"localhost", B_BYTES}};
static unsigned char up_data[A_BYTES], down_data[A_BYTES];
static sc_run *R;
static int64_t deadline;
static int port;
static gt_chan *done;        /* clients report here that they ended */
static net_sock *by_sock[2]; /* the bystander's socketpair */
static int by_fd[2];

/* Records an operation's result: a count or 0 is success. */
static int note(const char *op, ssize_t rc)
{
    if (R->nlog < SC_MAX_LOG)
        R->log[R->nlog++] = (sc_rec){gt_self(), op, rc < 0 ? (int)rc : 0};
    return rc < 0 ? (int)rc : 0;
}

/* Records an operation and, if it failed, leaves for the label `out`. */
#define TRY(op, call)                                                          \
    do {                                                                       \
        if (note(op, call) < 0) goto out;                                      \
    } while (0)

static void own(void)
{
    if (R->nowned < SC_MAX_OWNED) R->owned[R->nowned++] = gt_self();
}

/* Reads the client's line "<up> <down>". */
static int parse(const net_buf *b, size_t *up, size_t *down)
{
    char line[32];
    snprintf(line, sizeof line, "%.*s", (int)b->len, b->data);
    if (sscanf(line, "%zu %zu", up, down) != 2 || *up > A_BYTES ||
        *down > A_BYTES)
        return -EBADMSG;
    return 0;
}

static void handler(net_sock *s, void *arg)
{
    net_buf b = {NULL, 0, 0};
    size_t up, down;
    char c;
    (void)arg;
    own();
    TRY("srv buffers", nt_small_buffers(s));
    TRY("srv line", net_receive(s, NET_LINE, 0, &b, deadline));
    TRY("srv parse", parse(&b, &up, &down));
    b.len = 0;
    TRY("srv recv", net_receive(s, NET_BYTES, up, &b, deadline));
    TRY("srv verify", memcmp(b.data, up_data, up) ? -EBADMSG : 0);
    TRY("srv send", net_send(s, down_data, down, NULL, deadline));
    ssize_t eof = net_recv(s, &c, 1, deadline);
    TRY("srv eof", eof > 0 ? -EBADMSG : eof);
    R->served++;
out:
    net_buf_free(&b);
}

static void client(void *arg)
{
    const client_spec *c = arg;
    net_sock *s;
    net_buf b = {NULL, 0, 0};
    char head[32];
    int n = snprintf(head, sizeof head, "%zu %zu\n", c->bytes, c->bytes);
    int one = 1;
    own();
    if (note("connect", net_connect(&s, c->host, port, NULL, 0, deadline)))
        goto end;
    TRY("buffers", nt_small_buffers(s));
    TRY("send line", net_send(s, head, (size_t)n, NULL, deadline));
    TRY("send", net_send(s, up_data, c->bytes, NULL, deadline));
    TRY("recv", net_receive(s, NET_BYTES, c->bytes, &b, deadline));
    TRY("verify", memcmp(b.data, down_data, c->bytes) ? -EBADMSG : 0);
    R->clients_ok++;
out:
    note("close", net_close(s));
    net_buf_free(&b);
end:
    gt_chan_send(done, &one, 0); /* buffered for every client: never parks */
}

static void director(void *arg)
{
    static const gt_attr client_attr = {CLIENT_STACK, "client", 0};
    net_sock *ls;
    net_addr a;
    int ended = 0, x;
    (void)arg;
    own();
    if (note("chan make", gt_chan_make(&done, sizeof(int), SC_CLIENTS)) < 0) {
        R->director_done = 1;
        return;
    }
    if (note("serve", net_serve(&ls, "127.0.0.1", 0, handler, NULL)) == 0) {
        R->serving = 1;
        if (note("local addr", net_local_addr(ls, &a)) == 0) {
            port = a.port;
            for (int i = 0; i < SC_CLIENTS; i++) {
                int64_t id =
                    gt_spawn_attr(client, (void *)&specs[i], &client_attr);
                if (note("spawn client", id < 0 ? id : 0) < 0) continue;
                R->clients++;
                /* A client's operations end by the deadline; a second
                 * more lets it report even then. */
                if (note("client end",
                         gt_chan_recv(done, &x, deadline + 1000)) == 0)
                    ended++;
            }
        }
        note("close listener", net_close(ls));
    }
    /* A client that never reported might still send on it. */
    if (ended == R->clients) gt_chan_free(done);
    R->director_done = 1;
}

static void pinger(void *arg)
{
    uint64_t v, back;
    (void)arg;
    for (int i = 0; i < 2; i++)
        if (net_wrap(&by_sock[i], by_fd[i]) < 0) {
            R->by_errors++;
            for (int j = i; j < 2; j++) close(by_fd[j]);
            if (i) net_close(by_sock[0]);
            return;
        }
    for (v = 0; !R->director_done || v < SC_BYSTANDER_MIN; v++) {
        net_buf b = {NULL, 0, 0};
        if (net_send(by_sock[0], &v, sizeof v, NULL, deadline) < 0 ||
            net_receive(by_sock[0], NET_BYTES, sizeof v, &b, deadline) < 0 ||
            (memcpy(&back, b.data, sizeof back), back != v)) {
            R->by_errors++;
            net_buf_free(&b);
            break;
        }
        net_buf_free(&b);
        R->by_exchanges++;
        gt_sleep(gt_now() + 1);
    }
    net_close(by_sock[0]); /* the ponger then sees the end */
}

static void ponger(void *arg)
{
    char buf[64];
    ssize_t n;
    (void)arg;
    /* The pinger, spawned first, has wrapped both sockets or failed. */
    while (by_sock[1] &&
           (n = net_recv(by_sock[1], buf, sizeof buf, deadline)) > 0)
        if (net_send(by_sock[1], buf, (size_t)n, NULL, deadline) < 0) break;
    if (by_sock[1]) net_close(by_sock[1]);
}

void sc_run_once(sc_run *r, int site, long nth, int err, int64_t budget_ms)
{
    static int filled;
    if (!filled) {
        nt_pat_fill(up_data, 0, A_BYTES, 1);
        nt_pat_fill(down_data, 0, A_BYTES, 2);
        filled = 1;
    }
    memset(r, 0, sizeof *r);
    R = r;
    deadline = gt_now() + budget_ms;
    by_sock[0] = by_sock[1] = NULL;
    /* A default stack size of the run's own: stacks of earlier runs are
     * not in the pool, so each spawn maps its stack as in a fresh
     * program. */
    gt_set_default_stack(RUN_STACK, 0);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, by_fd) < 0) {
        r->by_errors++;
        r->loop_rc = -errno;
        return;
    }
    /* The director is spawned first, so its net_serve makes the loop
     * (with the fault armed) before the bystander touches it. */
    int64_t by[2];
    gt_spawn(director, NULL);
    by[0] = gt_spawn(pinger, NULL);
    by[1] = gt_spawn(ponger, NULL);
    fault_spare(by, 2);
    fault_arm(site, nth, err);
    r->loop_rc = gt_start(deadline + 2000);
    fault_disarm();
    if (r->loop_rc != 0) gt_dump(stdout);
    r->cleanup_rc = net_cleanup();
    gt_set_default_stack(0, 0);
}
