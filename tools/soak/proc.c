/* socketloop-soak's view of the server process: starting it, its
 * descriptors and resident memory from /proc, and stopping it.  MIT
 * licence, see LICENSE. */
#define _GNU_SOURCE
#include "soak.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int child_status = -1; /* once our child has exited */

/* Starts `path -p 0 -i IDLE -o OP [-b POLLER]` with its stdout on a pipe
 * and waits (10 s at most) for its "listening on HOST:PORT" line. */
pid_t server_start(const char *path, const char *poller, int64_t idle_s,
                   int64_t op_ms, int *port)
{
    int fds[2];
    char idle[16], op[16], line[256];
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    snprintf(idle, sizeof idle, "%lld", (long long)idle_s);
    snprintf(op, sizeof op, "%lld", (long long)op_ms);
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        dup2(fds[1], 1);
        if (poller)
            execl(path, path, "-p", "0", "-i", idle, "-o", op, "-b", poller,
                  (char *)NULL);
        else
            execl(path, path, "-p", "0", "-i", idle, "-o", op, (char *)NULL);
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    struct pollfd pfd = {fds[0], POLLIN, 0};
    while (len < sizeof line - 1 && !memchr(line, '\n', len) &&
           poll(&pfd, 1, 10000) == 1) {
        ssize_t n = read(fds[0], line + len, sizeof line - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fds[0]); /* the server writes nothing else there */
    line[len] = 0;
    /* "listening on HOST:PORT": the port follows the last colon. */
    char *colon = strrchr(line, ':'), *end = line;
    long p = 0;
    if (colon && !strncmp(line, "listening on ", 13))
        p = strtol(colon + 1, &end, 10);
    if (p <= 0 || p > 65535 || (*end != '\n' && *end != 0)) {
        fprintf(stderr, "%s did not say where it listens: '%s'\n", path, line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -EPROTO;
    }
    *port = (int)p;
    return pid;
}

long proc_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -errno;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

long proc_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -ENOENT;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

long proc_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* utime and stime are fields 14 and 15; the name (field 2) is in
     * parentheses and may hold spaces, so count from the last ')', which
     * ends field 2. */
    char *at = strrchr(buf, ')');
    if (!at) return -EPROTO;
    unsigned long t[2] = {0, 0};
    for (int field = 3; field <= 15; field++) {
        at = strchr(at + 1, ' ');
        if (!at) return -EPROTO;
        if (field >= 14) t[field - 14] = strtoul(at + 1, NULL, 10);
    }
    return (long)((t[0] + t[1]) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/* A server we did not start is alive while its /proc entry is. */
int server_alive(pid_t pid)
{
    if (O.echo == NULL) return kill(pid, 0) == 0;
    if (child_status >= 0) return 0;
    int st;
    if (waitpid(pid, &st, WNOHANG) != pid) return 1;
    child_status = st;
    return 0;
}

int server_stop(pid_t pid)
{
    if (server_alive(pid)) kill(pid, SIGTERM);
    for (int i = 0; i < 500 && server_alive(pid); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    if (server_alive(pid)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return WIFEXITED(child_status) ? WEXITSTATUS(child_status) : -1;
}
