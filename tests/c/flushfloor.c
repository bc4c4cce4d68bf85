/*
 * The durable-write floor: what one login's state update costs the disk at
 * the least, one in-place pwrite of 1 KiB and one fdatasync of a per-user
 * file, measured beside the logins in the same directory (tests/bench.sh).
 *
 *   flushfloor DIR USERS     prints "service=floor iterations=N total_s=S
 *                            per_login_us=U ok=N fail=0", bench's format
 *
 * The files (DIR/floor-NNNN, 2 KiB each) are made the first time, outside
 * the timing, as the users' state files are by the warm-up.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: flushfloor DIR USERS\n");
        return 2;
    }
    int users = atoi(argv[2]);
    char path[4096], block[1024];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < users; i++) {
        snprintf(path, sizeof path, "%s/floor-%04d", argv[1], i);
        if (access(path, F_OK) == 0)
            continue;
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || pwrite(fd, block, sizeof block, 0) != sizeof block ||
            pwrite(fd, block, sizeof block, sizeof block) != sizeof block || fsync(fd) != 0) {
            perror(path);
            return 1;
        }
        close(fd);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < users; i++) {
        snprintf(path, sizeof path, "%s/floor-%04d", argv[1], i);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        block[0] = (char)i;
        if (fd < 0 || pwrite(fd, block, sizeof block, (i % 2) * sizeof block) != sizeof block ||
            fdatasync(fd) != 0) {
            perror(path);
            return 1;
        }
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("service=floor iterations=%d total_s=%.3f per_login_us=%.1f ok=%d fail=0\n", users, s,
           s * 1e6 / users, users);
    return 0;
}
