/* socketloop-soak's summary: the checks, a table for people and one JSON
 * object for scripts.  MIT licence, see LICENSE. */
#include "soak.h"

#include <stdio.h>

enum { C_BYTES, C_PEERS, C_CONNECT, C_ANSWERS, C_FDS, C_RSS, C_STOP, C_N };

static const char *const check_names[C_N] = {
    "bytes", "peers", "connects", "answers", "descriptors", "rss", "stop",
};

static double mib(long kb)
{
    return (double)kb / 1024;
}

static double rss_growth(void)
{
    return R.rss_warm > 0
               ? 100.0 * (double)(R.rss_late - R.rss_warm) / (double)R.rss_warm
               : 0;
}

/* Of the time from the start of the load to the last sample. */
static double cpu_pct(void)
{
    int64_t span = R.ns ? R.s[R.ns - 1].t - R.t0 : 0;
    return span > 0 ? 100.0 * (double)(R.cpu1 - R.cpu0) / (double)span : 0;
}

static void run_checks(int ok[C_N])
{
    long failed = 0, absent = 0;
    for (int k = 0; k < K_KINDS; k++) {
        failed += ST.failed[k];
        absent += ST.started[k] == 0;
    }
    ok[C_BYTES] = ST.mismatches == 0 && ST.verified > 0;
    ok[C_PEERS] = failed == 0 && absent == 0 && !R.stuck;
    ok[C_CONNECT] = ST.connect_errors == 0;
    ok[C_ANSWERS] = ST.probe_failures == 0 && R.final_probe;
    ok[C_FDS] = R.fds_back_ms >= 0;
    ok[C_RSS] = R.rss_warm > 0 && rss_growth() <= O.rss_pct;
    ok[C_STOP] = R.stop_status == 0;
}

static void print_table(const int ok[C_N], int pass)
{
    long made = 0;
    printf("socketloop-soak: %.0f s, %d connections held (%ld at most), "
           "seed %llu, server pid %d (-i %lld -o %lld)\n\n",
           O.duration, O.conns, ST.live_max, (unsigned long long)O.seed,
           (int)R.pid, (long long)O.idle_s, (long long)O.op_ms);
    printf("%-14s %12s %12s %10s %8s\n", "peers", "connections", "as expected",
           "cut at end", "failed");
    for (int k = 0; k < K_KINDS; k++) {
        printf("%-14s %12ld %12ld %10ld %8ld\n", kind_names[k], ST.started[k],
               ST.ok[k], ST.cut[k], ST.failed[k]);
        made += ST.started[k];
    }
    printf("%-14s %12ld\n\n", "all", made);
    printf("%-26s %llu (%.2f GiB), %llu wrong\n", "bytes verified",
           (unsigned long long)ST.verified, (double)ST.verified / (1 << 30),
           (unsigned long long)ST.mismatches);
    printf("%-26s %lld ms\n", "longest wait for an echo",
           (long long)ST.max_echo_wait);
    printf("%-26s %.1f MiB echoed to the peer streaming in bursts\n", "stream",
           (double)ST.flood_bytes / (1 << 20));
    printf("%-26s %ld reset by the server, longest blocked send %lld ms, "
           "%.0f KiB sent each\n",
           "never-readers", ST.ok[K_DEAF], (long long)ST.max_deaf_drop,
           ST.started[K_DEAF]
               ? (double)ST.deaf_bytes / 1024 / (double)ST.started[K_DEAF]
               : 0);
    printf("%-26s %ld silent, %ld slowloris, after %lld..%lld ms quiet\n",
           "dropped when idle", ST.ok[K_SILENT], ST.ok[K_SLOW],
           (long long)ST.idle_drop_min, (long long)ST.idle_drop_max);
    printf("%-26s %ld, longest %lld ms, %ld failed\n", "fresh connections",
           ST.probes, (long long)ST.max_probe_ms, ST.probe_failures);
    printf("%-26s %ld\n", "connect errors", ST.connect_errors);
    printf("%-26s %.0f%% of one core\n", "server CPU", cpu_pct());
    printf("%-26s %lld ms%s\n", "soak client late by", (long long)ST.max_lag,
           ST.max_lag > O.idle_s * 250
               ? ": overloaded, timing failures may be its own"
               : "");
    printf("%-26s start %ld, peak %ld, end %ld", "server descriptors", R.fds0,
           R.fds_peak, R.fds_end);
    if (R.fds_back_ms >= 0)
        printf(" (back %lld ms after the last peer)\n",
               (long long)R.fds_back_ms);
    else
        printf(" (not back after %lld s)\n",
               (long long)O.idle_s + O.grace_ms / 1000);
    printf("%-26s start %.1f, after warm-up %.1f, late max %.1f (%+.1f%%), "
           "end %.1f MiB\n\n",
           "server RSS", mib(R.rss0), mib(R.rss_warm), mib(R.rss_late),
           rss_growth(), mib(R.rss_end));
    for (int c = 0; c < C_N; c++)
        printf("%s %s\n", ok[c] ? "PASS" : "FAIL", check_names[c]);
    printf("%s (%ld failures)\n", pass ? "PASS" : "FAIL", ST.failures);
}

static void print_json(const int ok[C_N], int pass)
{
    printf("{\"duration_s\":%g,\"conns\":%d,\"live_max\":%ld,\"seed\":%llu,"
           "\"idle_s\":%lld,\"op_ms\":%lld,\"peers\":{",
           O.duration, O.conns, ST.live_max, (unsigned long long)O.seed,
           (long long)O.idle_s, (long long)O.op_ms);
    for (int k = 0; k < K_KINDS; k++)
        printf("%s\"%s\":{\"connections\":%ld,\"ok\":%ld,\"cut\":%ld,"
               "\"failed\":%ld}",
               k ? "," : "", kind_names[k], ST.started[k], ST.ok[k], ST.cut[k],
               ST.failed[k]);
    printf("},\"bytes_verified\":%llu,\"bytes_wrong\":%llu,"
           "\"max_echo_wait_ms\":%lld,\"stream_bytes\":%llu,"
           "\"max_deaf_drop_ms\":%lld,"
           "\"deaf_bytes\":%llu,\"idle_drop_ms\":[%lld,%lld],"
           "\"probes\":%ld,\"probe_failures\":%ld,\"max_probe_ms\":%lld,"
           "\"connect_errors\":%ld,\"server_cpu_pct\":%.1f,\"client_lag_ms\":%"
           "lld,",
           (unsigned long long)ST.verified, (unsigned long long)ST.mismatches,
           (long long)ST.max_echo_wait, (unsigned long long)ST.flood_bytes,
           (long long)ST.max_deaf_drop, (unsigned long long)ST.deaf_bytes,
           (long long)ST.idle_drop_min, (long long)ST.idle_drop_max, ST.probes,
           ST.probe_failures, (long long)ST.max_probe_ms, ST.connect_errors,
           cpu_pct(), (long long)ST.max_lag);
    printf("\"fds\":{\"start\":%ld,\"peak\":%ld,\"end\":%ld,\"back_ms\":%lld},"
           "\"rss_kb\":{\"start\":%ld,\"warm\":%ld,\"late_max\":%ld,"
           "\"end\":%ld,\"growth_pct\":%.2f},\"server_exit\":%d,\"checks\":{",
           R.fds0, R.fds_peak, R.fds_end, (long long)R.fds_back_ms, R.rss0,
           R.rss_warm, R.rss_late, R.rss_end, rss_growth(), R.stop_status);
    for (int c = 0; c < C_N; c++)
        printf("%s\"%s\":%s", c ? "," : "", check_names[c],
               ok[c] ? "true" : "false");
    printf("},\"failures\":%ld,\"pass\":%s}\n", ST.failures,
           pass ? "true" : "false");
}

int soak_report(void)
{
    int ok[C_N], pass = ST.failures == 0;
    run_checks(ok);
    for (int c = 0; c < C_N; c++) pass &= ok[c];
    if (O.json)
        print_json(ok, pass);
    else
        print_table(ok, pass);
    if (O.verbose)
        for (int i = 0; i < R.ns; i++)
            fprintf(stderr, "sample %3lld s: %ld KiB, %ld fds\n",
                    (long long)(R.s[i].t - R.t0) / 1000, R.s[i].rss_kb,
                    R.s[i].fds);
    return pass ? 0 : 1;
}
