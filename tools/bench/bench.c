/* socketloop-bench: micro-benchmarks of the green-thread runtime, each
 * next to a reference measured in the same run.  MIT licence, see LICENSE.
 *
 *   socketloop-bench [--json] [--quick] [--only NAME[,NAME...]]
 *       [--rounds R] [--repeat N]
 *
 * Timings are the best (minimum) of several runs after a warm-up that also
 * calibrates the iteration count, on CLOCK_MONOTONIC.  Each timed row is
 * measured right next to its reference, so that the ratio compares the two
 * under the same load; --repeat N does that N times, alternating, and
 * gives the medians and the spread of the N ratios.  The parked-thread
 * memory benchmarks run in a forked child each, so that stacks pooled by
 * one measurement cannot skew the next and the child's RSS baseline is
 * clean. */
#define _GNU_SOURCE
#include "socketloop/gt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SLB_SWITCH
#define SLB_SWITCH "unknown"
#endif

#ifdef SLB_HAVE_FCONTEXT
/* fcontext_ref.cpp */
void slb_fctx_pingpong(long switches);
void slb_fctx_create(long n);
#endif

/* --- Options and output -------------------------------------------------- */

static int opt_json, opt_quick;
static long opt_rounds; /* churn rounds; 0: the default */
#define SLB_REPEAT_MAX 99
static int opt_repeat = 1; /* measurements of each timed row */
static const char *opt_only;
static int failed;

typedef struct row {
    const char *name, *unit, *ref;
    double value, ref_value;          /* NAN: not available */
    double ratio, ratio_lo, ratio_hi; /* median, min, max over runs */
    int runs;
    long count; /* < 0: not applicable */
    char note[400];
} row;

static row rows[24];
static int nrows;

static row *add_row(const char *name, double value, const char *unit,
                    const char *ref, double ref_value, long count)
{
    row *r = &rows[nrows++];
    r->name = name;
    r->value = value;
    r->unit = unit;
    r->ref = ref;
    r->ref_value = ref_value;
    r->count = count;
    r->ratio = r->ratio_lo = r->ratio_hi = value / ref_value;
    r->runs = 1;
    r->note[0] = 0;
    return r;
}

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("socketloop-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    exit(1);
}

#define CHECK(rc, what)                                                        \
    do {                                                                       \
        long long rc_ = (long long)(rc);                                       \
        if (rc_ < 0)                                                           \
            fail("%s failed: %s (%lld) at %s:%d", (what),                      \
                 gt_strerror((int)rc_), rc_, __FILE__, __LINE__);              \
    } while (0)

static int selected(const char *group)
{
    if (!opt_only) return 1;
    size_t len = strlen(group);
    for (const char *p = opt_only; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        /* "switch" also selects its second row "switch_vs_swapcontext" */
        if (n >= len && strncmp(p, group, len) == 0 &&
            (n == len || strncmp(p + len, "_vs_", 4) == 0))
            return 1;
        p += n + (e != NULL);
    }
    return 0;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void json_num(double v)
{
    if (isnan(v))
        fputs("null", stdout);
    else
        printf("%.3f", v);
}

static void print_rows(void)
{
    if (opt_json) {
        for (int i = 0; i < nrows; i++) {
            row *r = &rows[i];
            fputs("{\"name\":", stdout);
            json_str(r->name);
            fputs(",\"value\":", stdout);
            json_num(r->value);
            fputs(",\"unit\":", stdout);
            json_str(r->unit);
            fputs(",\"ref\":", stdout);
            if (r->ref)
                json_str(r->ref);
            else
                fputs("null", stdout);
            fputs(",\"ref_value\":", stdout);
            json_num(r->ref_value);
            fputs(",\"ratio\":", stdout);
            json_num(r->ratio);
            if (r->runs > 1) {
                fputs(",\"ratio_min\":", stdout);
                json_num(r->ratio_lo);
                fputs(",\"ratio_max\":", stdout);
                json_num(r->ratio_hi);
                printf(",\"runs\":%d", r->runs);
            }
            if (r->count >= 0) printf(",\"count\":%ld", r->count);
            fputs(",\"switch\":", stdout);
            json_str(SLB_SWITCH);
            if (r->note[0]) {
                fputs(",\"note\":", stdout);
                json_str(r->note);
            }
            fputs("}\n", stdout);
        }
        for (int i = 0; i < nrows; i++)
            if (rows[i].note[0])
                fprintf(stderr, "note: %s: %s\n", rows[i].name, rows[i].note);
        return;
    }
    printf("socketloop-bench (context switch: %s%s)\n", SLB_SWITCH,
           opt_quick ? ", --quick" : "");
    printf("%-22s %12s %-6s %-16s %12s %8s %9s\n", "name", "value", "unit",
           "reference", "ref_value", "ratio", "count");
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        char v[32], rv[32], ra[32], cnt[32];
        const char *fmt = strcmp(r->unit, "ns") == 0 ? "%.1f" : "%.0f";
        if (isnan(r->value))
            snprintf(v, sizeof v, "n/a");
        else
            snprintf(v, sizeof v, fmt, r->value);
        if (isnan(r->ref_value))
            snprintf(rv, sizeof rv, "n/a");
        else
            snprintf(rv, sizeof rv, fmt, r->ref_value);
        if (isnan(r->ratio))
            snprintf(ra, sizeof ra, "n/a");
        else
            snprintf(ra, sizeof ra, "%.2f", r->ratio);
        if (r->count >= 0)
            snprintf(cnt, sizeof cnt, "%ld", r->count);
        else
            cnt[0] = 0;
        printf("%-22s %12s %-6s %-16s %12s %8s %9s\n", r->name, v, r->unit,
               r->ref ? r->ref : "-", rv, ra, cnt);
    }
    for (int i = 0; i < nrows; i++)
        if (rows[i].runs > 1 && !isnan(rows[i].ratio))
            printf("spread: %s: ratio %.2f .. %.2f over %d runs (medians "
                   "above)\n",
                   rows[i].name, rows[i].ratio_lo, rows[i].ratio_hi,
                   rows[i].runs);
    for (int i = 0; i < nrows; i++)
        if (rows[i].note[0])
            printf("note: %s: %s\n", rows[i].name, rows[i].note);
}

/* --- Timing -------------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Runs n operations and returns the elapsed nanoseconds. */
typedef double run_fn(long n);

/* Warm-up doubling as calibration: grow n until one run lasts the target
 * time; then the best ns per operation over `runs` runs. */
static double measure(run_fn *f)
{
    const double target = opt_quick ? 5e6 : 60e6; /* ns per run */
    const int runs = opt_quick ? 3 : 5;
    long n = 1000;
    for (;;) {
        double t = f(n);
        if (t >= target || n >= 1L << 40) break;
        double grow = t > 0 ? target / t * 1.1 : 10;
        if (grow > 10) grow = 10;
        if (grow < 1.5) grow = 1.5;
        n = (long)((double)n * grow);
    }
    double best = INFINITY;
    for (int i = 0; i < runs; i++) {
        double ns = f(n) / (double)n;
        if (ns < best) best = ns;
    }
    return best;
}

/* --- switch: gt_yield ping-pong ------------------------------------------ */

static struct {
    long per_thread; /* yields each */
    int64_t t0, t1;
    int arrived;
} sw;

static void sw_fn(void *arg)
{
    (void)arg;
    /* Both threads yield once so that both are running before the clock
     * starts; the second to arrive starts it. */
    CHECK(gt_yield(), "gt_yield");
    if (++sw.arrived == 2) sw.t0 = now_ns();
    for (long i = 0; i < sw.per_thread; i++) CHECK(gt_yield(), "gt_yield");
    sw.t1 = now_ns(); /* the last to finish stops it */
}

static double run_switch(long n)
{
    sw.per_thread = n / 2;
    sw.arrived = 0;
    CHECK(gt_spawn(sw_fn, NULL), "gt_spawn");
    CHECK(gt_spawn(sw_fn, NULL), "gt_spawn");
    int rc = gt_run();
    if (rc != 0) fail("gt_run returned %d (%s)", rc, gt_strerror(rc));
    return (double)(sw.t1 - sw.t0) * (double)n / (double)(2 * sw.per_thread);
}

/* --- swapcontext reference ------------------------------------------------ */

static ucontext_t uc_main, uc_other;

static void uc_pong(void)
{
    for (;;) swapcontext(&uc_other, &uc_main);
}

static double run_swapcontext(long n)
{
    static char *stack;
    const size_t size = (size_t)64 * 1024;
    if (!stack && !(stack = malloc(size))) fail("out of memory");
    if (getcontext(&uc_other) < 0) fail("getcontext: %s", strerror(errno));
    uc_other.uc_stack.ss_sp = stack;
    uc_other.uc_stack.ss_size = size;
    uc_other.uc_link = NULL;
    makecontext(&uc_other, uc_pong, 0);
    swapcontext(&uc_main, &uc_other); /* start it outside the clock */
    long rounds = n / 2;              /* each round is two switches */
    int64_t t0 = now_ns();
    for (long i = 0; i < rounds; i++) swapcontext(&uc_main, &uc_other);
    int64_t t1 = now_ns();
    return (double)(t1 - t0) * (double)n / (double)(2 * rounds);
}

/* --- fcontext references ---------------------------------------------------
 */

#ifdef SLB_HAVE_FCONTEXT
static double run_fctx_switch(long n)
{
    int64_t t0 = now_ns();
    slb_fctx_pingpong(n);
    return (double)(now_ns() - t0);
}

static double run_fctx_create(long n)
{
    int64_t t0 = now_ns();
    slb_fctx_create(n);
    return (double)(now_ns() - t0);
}
#endif

#ifdef SLB_HAVE_FCONTEXT
static run_fn *const fctx_switch = run_fctx_switch;
static run_fn *const fctx_create = run_fctx_create;
#else
static run_fn *const fctx_switch = NULL;
static run_fn *const fctx_create = NULL;
#endif

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A timed row: f and its reference ref (NULL: none) measured one after
 * the other, opt_repeat times. */
static void add_pair(const char *name, run_fn *f, const char *ref_name,
                     run_fn *ref)
{
    double v[SLB_REPEAT_MAX] = {0}, rv[SLB_REPEAT_MAX] = {0},
           ra[SLB_REPEAT_MAX] = {0};
    int n = opt_repeat;
    for (int i = 0; i < n; i++) {
        v[i] = measure(f);
        rv[i] = ref ? measure(ref) : NAN;
        ra[i] = v[i] / rv[i];
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        lo = fmin(lo, ra[i]);
        hi = fmax(hi, ra[i]);
    }
    row *r = add_row(name, median(v, n), "ns", ref_name, median(rv, n), -1);
    r->ratio = median(ra, n);
    r->ratio_lo = lo;
    r->ratio_hi = hi;
    r->runs = n;
}

/* --- spawn_join ------------------------------------------------------------
 */

static struct {
    long n;
    int64_t t0, t1;
} sj;

static void sj_child(void *arg)
{
    (void)arg;
}

static void sj_parent(void *arg)
{
    (void)arg;
    sj.t0 = now_ns();
    for (long i = 0; i < sj.n; i++) {
        int64_t id = gt_spawn(sj_child, NULL);
        CHECK(id, "gt_spawn");
        CHECK(gt_join(id, -1), "gt_join");
    }
    sj.t1 = now_ns();
}

static double run_spawn_join(long n)
{
    sj.n = n;
    CHECK(gt_spawn(sj_parent, NULL), "gt_spawn");
    int rc = gt_run();
    if (rc != 0) fail("gt_run returned %d (%s)", rc, gt_strerror(rc));
    return (double)(sj.t1 - sj.t0);
}

/* --- chan_pingpong ---------------------------------------------------------
 */

static struct {
    long rounds;
    gt_chan *ping, *pong;
    int64_t t0, t1;
} cp;

static void cp_a(void *arg)
{
    (void)arg;
    int v = 0;
    cp.t0 = now_ns();
    for (long i = 0; i < cp.rounds; i++) {
        CHECK(gt_chan_send(cp.ping, &v, -1), "gt_chan_send");
        CHECK(gt_chan_recv(cp.pong, &v, -1), "gt_chan_recv");
    }
    cp.t1 = now_ns();
    if (v != (int)cp.rounds)
        fail("chan_pingpong: got %d after %ld rounds", v, cp.rounds);
}

static void cp_b(void *arg)
{
    (void)arg;
    int v;
    for (long i = 0; i < cp.rounds; i++) {
        CHECK(gt_chan_recv(cp.ping, &v, -1), "gt_chan_recv");
        v++;
        CHECK(gt_chan_send(cp.pong, &v, -1), "gt_chan_send");
    }
}

static double run_chan(long n)
{
    cp.rounds = n / 2; /* two messages a round */
    CHECK(gt_chan_make(&cp.ping, sizeof(int), 0), "gt_chan_make");
    CHECK(gt_chan_make(&cp.pong, sizeof(int), 0), "gt_chan_make");
    CHECK(gt_spawn(cp_a, NULL), "gt_spawn");
    CHECK(gt_spawn(cp_b, NULL), "gt_spawn");
    int rc = gt_run();
    if (rc != 0) fail("gt_run returned %d (%s)", rc, gt_strerror(rc));
    CHECK(gt_chan_free(cp.ping), "gt_chan_free");
    CHECK(gt_chan_free(cp.pong), "gt_chan_free");
    return (double)(cp.t1 - cp.t0) * (double)n / (double)(2 * cp.rounds);
}

/* --- parked threads: RSS per thread ----------------------------------------
 */

typedef struct parked_result {
    int ok;
    long count;
    double bytes_per_thread;
    char note[320];
} parked_result;

static struct {
    gt_chan *ch;
    long parked, ended, bad;
} pk;

static void pk_fn(void *arg)
{
    (void)arg;
    int v;
    pk.parked++;
    int rc = gt_chan_recv(pk.ch, &v, -1);
    if (rc != -EPIPE) pk.bad++;
    pk.ended++;
}

/* Keeps a timer armed so that the loop never sees a deadlock while the
 * others wait on the channel. */
static void pk_keeper(void *arg)
{
    (void)arg;
    int rc = gt_sleep(gt_now() + (int64_t)3600 * 1000);
    if (rc != -ECANCELED) pk.bad++;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long resident = -1;
    if (f) {
        /* The second field: pages resident. */
        char line[128], *end;
        const char *p = fgets(line, sizeof line, f) ? strchr(line, ' ') : NULL;
        if (p) {
            resident = strtol(p + 1, &end, 10);
            if (end == p + 1) resident = -1;
        }
        fclose(f);
    }
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static long mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long kb = -1;
    if (!f) return -1;
    static const char key[] = "MemAvailable:";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, sizeof key - 1)) {
            kb = strtol(line + sizeof key - 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024L;
}

static void appendf(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (len < size) vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* In the child: park `want` threads (fewer if the map limit or memory says
 * so), measure the RSS they add, release them and let them end. */
static void parked_child(const char *name, int guard, long want,
                         parked_result *res)
{
    const size_t stack = guard ? GT_STACK_DEFAULT : (size_t)16 * 1024;
    long count = want;

    memset(res, 0, sizeof *res);
    if (!guard)
        CHECK(gt_set_default_stack(stack, GT_NOGUARD), "gt_set_default_stack");
    CHECK(gt_chan_make(&pk.ch, sizeof(int), 0), "gt_chan_make");
    int64_t keeper = gt_spawn(pk_keeper, NULL);
    CHECK(keeper, "gt_spawn");

    /* On kernels before 6.13 each guarded stack is two mappings, so
     * vm.max_map_count may stop the spawns: gt_spawn then says so and
     * the threads spawned so far are measured. */
    /* Never ask for more than 3/4 of the available memory, even if every
     * stack (control block included) were touched to the bottom. */
    long avail = mem_available();
    long worst = (long)stack + 64;
    if (avail > 0 && count > avail / 4 * 3 / worst) {
        long fit = avail / 4 * 3 / worst;
        appendf(res->note, sizeof res->note,
                "MemAvailable=%ld MiB: measured %ld instead of %ld. ",
                avail >> 20, fit, count);
        count = fit;
    }

    /* Let the keeper park, so its stack is in the baseline too. */
    CHECK(gt_dispatch(0), "gt_dispatch");
    long rss0 = rss_bytes();
    int64_t t0 = now_ns();
    long spawned = 0;
    for (; spawned < count; spawned++) {
        int64_t id = gt_spawn(pk_fn, NULL);
        if (id == GT_EMAPLIMIT || id == -ENOMEM) {
            appendf(res->note, sizeof res->note,
                    "gt_spawn failed with %s after %ld threads; measured "
                    "those. ",
                    gt_strerror((int)id), spawned);
            break;
        }
        CHECK(id, "gt_spawn");
    }
    while (pk.parked < spawned) {
        int rc = gt_dispatch(0);
        CHECK(rc, "gt_dispatch");
    }
    int64_t t1 = now_ns();
    long rss1 = rss_bytes();

    /* Release: every parked receiver wakes with -EPIPE and returns. */
    CHECK(gt_chan_close(pk.ch), "gt_chan_close");
    CHECK(gt_cancel(keeper), "gt_cancel");
    int rc = gt_run();
    if (rc != 0) fail("%s: gt_run returned %d (%s)", name, rc, gt_strerror(rc));
    int64_t t2 = now_ns();
    if (pk.ended != spawned || pk.bad != 0)
        fail("%s: %ld of %ld threads ended, %ld woke without -EPIPE", name,
             pk.ended, spawned, pk.bad);
    CHECK(gt_chan_free(pk.ch), "gt_chan_free");
    res->count = spawned;
    if (spawned == 0) {
        appendf(res->note, sizeof res->note, "nothing spawned. ");
        return;
    }
    res->bytes_per_thread = (double)(rss1 - rss0) / (double)spawned;
    appendf(res->note, sizeof res->note,
            "%.2f s to spawn and park, %.2f s to wake and end them. ",
            (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9);
    res->ok = 1;
}

/* Runs body(arg, res) in a forked child, which sends the size bytes of
 * *res back through a pipe.  Returns the child's wait status; *got says
 * how many bytes of *res came. */
static int run_forked(void (*body)(const void *arg, void *res), const void *arg,
                      void *res, size_t size, size_t *got)
{
    int fd[2];
    fflush(NULL);
    if (pipe(fd) < 0) fail("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fd[0]);
        body(arg, res);
        ssize_t w = write(fd[1], res, size);
        _exit(w == (ssize_t)size ? 0 : 1);
    }
    close(fd[1]);
    *got = 0;
    while (*got < size) {
        ssize_t r = read(fd[0], (char *)res + *got, size - *got);
        if (r <= 0) break;
        *got += (size_t)r;
    }
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

typedef struct parked_args {
    const char *name;
    int guard;
    long want;
} parked_args;

static void parked_body(const void *arg, void *res)
{
    const parked_args *a = arg;
    parked_child(a->name, a->guard, a->want, res);
}

/* Runs one parked measurement in a forked child and reads its result. */
static void bench_parked(const char *name, int guard, long want)
{
    parked_result res;
    parked_args args = {name, guard, want};
    size_t got;
    int status = run_forked(parked_body, &args, &res, sizeof res, &got);
    row *r;
    if (got != sizeof res || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        !res.ok) {
        r = add_row(name, NAN, "bytes", NULL, NAN,
                    got == sizeof res ? res.count : -1);
        if (WIFSIGNALED(status))
            snprintf(r->note, sizeof r->note,
                     "FAILED: child killed by signal %d", WTERMSIG(status));
        else
            snprintf(r->note, sizeof r->note,
                     "FAILED: child exit status %d. %s",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                     got == sizeof res ? res.note : "");
        failed = 1;
        return;
    }
    r = add_row(name, res.bytes_per_thread, "bytes", NULL, NAN, res.count);
    snprintf(r->note, sizeof r->note, "%s", res.note);
    size_t len = strlen(r->note);
    while (len && r->note[len - 1] == ' ') r->note[--len] = 0;
}

/* --- churn: short-lived threads, N at a time ------------------------------
 *
 * A server that spawns one green thread per event: each round spawns N
 * threads, which all hold their stacks at once (the round's working set),
 * touch a few KiB of stack as a handler would, and end.  After a few
 * warm-up rounds the stack pool should serve every spawn from warm stacks:
 * no page faults, no madvise, no mmap.  The row gives the time per spawn +
 * run + exit and, from getrusage, the minor page faults per thread over the
 * measured rounds; count the system calls from outside, e.g.
 *   perf stat -e 'syscalls:sys_enter_madvise,syscalls:sys_enter_mmap,
 *                 page-faults' socketloop-bench --only churn_10000
 * Each N runs in a forked child, like the parked measurements. */

typedef struct churn_result {
    int ok;
    long threads; /* measured: rounds × N */
    double ns_per_thread;
    double faults_per_thread;
    char note[200];
} churn_result;

static long churn_ran;

static void churn_fn(void *arg)
{
    /* A handler's worth of stack: 4 KiB, so that each thread touches the
     * page of its control block and the one below it. */
    volatile char buf[4096];
    buf[0] = (char)(uintptr_t)arg;
    buf[sizeof buf - 1] = buf[0];
    churn_ran++;
}

static long minor_faults(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : -1;
}

static void churn_round(long n)
{
    for (long i = 0; i < n; i++) CHECK(gt_spawn(churn_fn, NULL), "gt_spawn");
    int rc = gt_run();
    if (rc != 0) fail("churn: gt_run returned %d (%s)", rc, gt_strerror(rc));
}

static void churn_child(long n, churn_result *res)
{
    /* Rounds enough for about 2 million threads (200,000 with --quick),
     * and never fewer than 20. */
    long rounds = opt_rounds ? opt_rounds : (opt_quick ? 200000 : 2000000) / n;
    if (rounds < 20) rounds = 20;
    long warm = rounds / 10 < 5 ? 5 : rounds / 10;
    memset(res, 0, sizeof *res);
    for (long r = 0; r < warm; r++) churn_round(n);
    churn_ran = 0;
    long f0 = minor_faults();
    int64_t t0 = now_ns();
    for (long r = 0; r < rounds; r++) churn_round(n);
    int64_t t1 = now_ns();
    long f1 = minor_faults();
    if (churn_ran != rounds * n)
        fail("churn: %ld of %ld threads ran", churn_ran, rounds * n);
    res->threads = rounds * n;
    res->ns_per_thread = (double)(t1 - t0) / (double)res->threads;
    res->faults_per_thread = (double)(f1 - f0) / (double)res->threads;
    snprintf(res->note, sizeof res->note,
             "%ld rounds of %ld after %ld warm-up rounds: %.4f minor page "
             "faults per thread",
             rounds, n, warm, res->faults_per_thread);
    res->ok = 1;
}

static void churn_body(const void *arg, void *res)
{
    churn_child(*(const long *)arg, res);
}

static void bench_churn(const char *name, long n)
{
    churn_result res;
    size_t got;
    int status = run_forked(churn_body, &n, &res, sizeof res, &got);
    if (got != sizeof res || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        !res.ok) {
        row *r = add_row(name, NAN, "ns", NULL, NAN, -1);
        snprintf(r->note, sizeof r->note, "FAILED: child exit status %d",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        failed = 1;
        return;
    }
    row *r = add_row(name, res.ns_per_thread, "ns", NULL, NAN, res.threads);
    snprintf(r->note, sizeof r->note, "%s", res.note);
}

/* --- main ----------------------------------------------------------------- */

static void usage(FILE *out)
{
    fputs(
        "usage: socketloop-bench [--json] [--quick] [--only NAME[,NAME...]]\n"
        "                        [--rounds R] [--repeat N]\n"
        "names: switch, spawn_join, chan_pingpong, parked_guard, "
        "parked_noguard,\n"
        "       churn (churn_100, churn_1000, churn_10000)\n"
        "--rounds: churn rounds per N (default: about 2 million threads)\n"
        "--repeat, -r: measure each timed row and its reference N times\n"
        "              (at most 99) and give medians and the ratios' spread\n",
        out);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            opt_json = 1;
        else if (strcmp(argv[i], "--quick") == 0)
            opt_quick = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            opt_only = argv[++i];
        else if (strncmp(argv[i], "--only=", 7) == 0)
            opt_only = argv[i] + 7;
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            opt_rounds = strtol(argv[++i], NULL, 10);
            if (opt_rounds <= 0) {
                usage(stderr);
                return 2;
            }
        } else if ((strcmp(argv[i], "--repeat") == 0 ||
                    strcmp(argv[i], "-r") == 0) &&
                   i + 1 < argc) {
            opt_repeat = (int)strtol(argv[++i], NULL, 10);
            if (opt_repeat <= 0 || opt_repeat > SLB_REPEAT_MAX) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (opt_only) {
        static const char *const names[] = {
            "switch",       "spawn_join",     "chan_pingpong",
            "parked_guard", "parked_noguard", "churn",
            "churn_100",    "churn_1000",     "churn_10000"};
        int any = 0;
        for (size_t i = 0; i < sizeof names / sizeof *names; i++)
            any |= selected(names[i]);
        if (!any) {
            fprintf(stderr, "socketloop-bench: unknown name in --only %s\n",
                    opt_only);
            usage(stderr);
            return 2;
        }
    }

    if (selected("switch")) {
        add_pair("switch", run_switch, "fcontext", fctx_switch);
        add_pair("switch_vs_swapcontext", run_switch, "swapcontext",
                 run_swapcontext);
    }
    if (selected("spawn_join"))
        add_pair("spawn_join", run_spawn_join, "fcontext_create", fctx_create);
    if (selected("chan_pingpong"))
        add_pair("chan_pingpong", run_chan, "fcontext_switch", fctx_switch);
    if (selected("parked_guard"))
        bench_parked("parked_guard", 1, opt_quick ? 10000 : 100000);
    if (selected("parked_noguard"))
        bench_parked("parked_noguard", 0, opt_quick ? 10000 : 1000000);
    {
        static const char *const churn_names[] = {"churn_100", "churn_1000",
                                                  "churn_10000"};
        static const long churn_n[] = {100, 1000, 10000};
        for (int i = 0; i < 3; i++)
            if (selected("churn") || selected(churn_names[i]))
                bench_churn(churn_names[i], churn_n[i]);
    }
#ifndef SLB_HAVE_FCONTEXT
    if (nrows && (selected("switch") || selected("spawn_join") ||
                  selected("chan_pingpong")))
        snprintf(rows[0].note, sizeof rows[0].note,
                 "built without Boost.Context: fcontext references are n/a");
#endif
    print_rows();
    return failed;
}
