/* Runs a fuzz target on every file of the directories (or on the files)
 * named on the command line, so that its corpus is a regression test in
 * builds without libFuzzer.  Each input is copied into a buffer of its
 * exact size, as libFuzzer does, so that a read past its end shows under
 * ASan and Valgrind. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    uint8_t *in = n >= 0 ? malloc(n ? (size_t)n : 1) : NULL;
    int ok = in && fseek(f, 0, SEEK_SET) == 0 &&
             fread(in, 1, (size_t)n, f) == (size_t)n;
    if (f) fclose(f);
    if (ok)
        LLVMFuzzerTestOneInput(in, (size_t)n);
    else
        fprintf(stderr, "%s: cannot read\n", path);
    free(in);
    return ok ? 0 : -1;
}

static int visible(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Runs every file of a directory, in name order; returns how many. */
static int run_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, visible, alphasort), done = 0;
    if (n < 0) {
        perror(dir);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (done >= 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            done = run_file(path) < 0 ? -1 : done + 1;
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int n = stat(argv[i], &st) < 0 ? (perror(argv[i]), -1)
                : S_ISDIR(st.st_mode)  ? run_dir(argv[i])
                                       : (run_file(argv[i]) < 0 ? -1 : 1);
        if (n < 0) return 1;
        total += n;
    }
    /* An empty corpus would make a test that cannot fail. */
    if (!total) {
        fprintf(stderr, "usage: %s DIR|FILE...: no inputs\n", argv[0]);
        return 1;
    }
    printf("%d inputs\n", total);
    return 0;
}
