/*
 * synccount - counts the flushes a process asks for: loaded with
 * LD_PRELOAD, it appends one line ("fdatasync", "fsync" or "syncfs") to
 * the file SYNCCOUNT_LOG names for each call, then makes the real call.
 * For tests/flushes.rs, which counts what a login costs the disk.
 *
 * Build: cc -O2 -shared -fPIC -o synccount.so tests/c/synccount.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void note(const char *what)
{
    const char *path = getenv("SYNCCOUNT_LOG");
    if (!path)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    char line[32];
    size_t n = strlen(what);
    memcpy(line, what, n);
    line[n] = '\n';
    (void)!write(fd, line, n + 1);
    close(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    note("fdatasync");
    return real(fd);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    note("fsync");
    return real(fd);
}

int syncfs(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    note("syncfs");
    return real(fd);
}
