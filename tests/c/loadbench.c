/*
 * What loading a PAM module costs a PAM host: dlopen(RTLD_NOW) + dlclose,
 * as libpam does at every pam_start and pam_end, with libpam itself already
 * resident (linked here, as in sshd, login and su).
 *
 *   loadbench ROUNDS PER_ROUND NAME=PATH [NAME=PATH ...]
 *
 * Each round loads every library PER_ROUND times, the libraries taking turns
 * in an order rotated each round, so that no library always runs first or
 * last and a slow spell of the machine falls on all of them. It prints, per
 * library, the median over rounds of the mean cost of one load+unload, the
 * lowest and highest round, and, against the first library named, the
 * median of the per-round ratios (paired: the same round, the same spell),
 * and the page faults one load and unload takes (the same every time: a
 * property of the library, not of the machine's mood).
 *
 * Built by tests/bench.sh: cc -O2 -o loadbench loadbench.c -ldl -lpam
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: loadbench ROUNDS PER_ROUND NAME=PATH [NAME=PATH ...]\n");
        return 2;
    }
    /* libpam resident, as in every PAM host. */
    volatile void *keep = (void *)pam_start;
    (void)keep;
    int rounds = atoi(argv[1]), per = atoi(argv[2]), n = argc - 3;
    if (rounds < 1 || per < 1) {
        fprintf(stderr, "loadbench: ROUNDS and PER_ROUND must be positive\n");
        return 2;
    }
    char **name = calloc(n, sizeof *name), **path = calloc(n, sizeof *path);
    double *cost = calloc((size_t)n * rounds, sizeof *cost);
    double *faults = calloc(n, sizeof *faults);
    for (int i = 0; i < n; i++) {
        char *eq = strchr(argv[i + 3], '=');
        if (!eq) {
            fprintf(stderr, "loadbench: %s: want NAME=PATH\n", argv[i + 3]);
            return 2;
        }
        *eq = 0;
        name[i] = argv[i + 3];
        path[i] = eq + 1;
        void *h = dlopen(path[i], RTLD_NOW);
        if (!h) {
            fprintf(stderr, "loadbench: %s: %s\n", name[i], dlerror());
            return 1;
        }
        dlclose(h);
    }
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < n; k++) {
            int i = (k + r) % n;
            struct rusage before, after;
            getrusage(RUSAGE_SELF, &before);
            double t0 = now_us();
            for (int j = 0; j < per; j++) {
                void *h = dlopen(path[i], RTLD_NOW);
                if (!h) {
                    fprintf(stderr, "loadbench: %s: %s\n", name[i], dlerror());
                    return 1;
                }
                dlclose(h);
            }
            cost[i * rounds + r] = (now_us() - t0) / per;
            getrusage(RUSAGE_SELF, &after);
            faults[i] += (double)(after.ru_minflt - before.ru_minflt) / per / rounds;
        }
    }
    printf("%-16s %10s %10s %10s %14s %8s\n", "library", "median_us", "min_us", "max_us", "ratio_to_first", "faults");
    double *ratio = calloc(rounds, sizeof *ratio);
    for (int i = 0; i < n; i++) {
        double *c = cost + (size_t)i * rounds;
        for (int r = 0; r < rounds; r++)
            ratio[r] = c[r] / cost[r];
        double lo = c[0], hi = c[0];
        for (int r = 0; r < rounds; r++) {
            lo = c[r] < lo ? c[r] : lo;
            hi = c[r] > hi ? c[r] : hi;
        }
        double m = median(ratio, rounds);
        double copy[rounds];
        memcpy(copy, c, sizeof copy);
        printf("%-16s %10.1f %10.1f %10.1f %14.2f %8.1f\n", name[i], median(copy, rounds), lo, hi, m,
               faults[i]);
    }
    return 0;
}
