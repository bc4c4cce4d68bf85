/*
 * stopper - what a local user can do to a setuid program they started:
 * stop it at the moment it holds locks that other logins wait on.
 *
 * Usage (run as the user, never as root):
 *   stopper PID LOCKS SECONDS
 *
 * Sends PID SIGSTOP, reads /proc/locks (which any user may read), and if
 * PID then holds at least LOCKS flock()s, leaves it stopped and prints
 * "held"; otherwise sends SIGCONT, waits 300 us and tries again, until PID
 * is gone or SECONDS have passed ("never"). Also prints how many kill()
 * calls the kernel refused ("refused N"): a process whose real uid is no
 * longer the user's cannot be signalled by them.
 *
 * Build: cc -O2 -Wall -Wextra -Werror -o stopper tests/c/stopper.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How many FLOCK lines of /proc/locks name `pid`. */
static int flocks_of(long pid)
{
	FILE *f = fopen("/proc/locks", "r");
	if (!f)
		return -1;
	char line[512];
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		char type[32], kind[32], mode[32];
		long owner;
		/* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; blocked
		 * waiters are "1: -> FLOCK ..." and do not match. */
		if (sscanf(line, "%*d: %31s %31s %31s %ld", type, kind, mode, &owner) == 4 &&
		    strcmp(type, "FLOCK") == 0 && owner == pid)
			n++;
	}
	fclose(f);
	return n;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: stopper PID LOCKS SECONDS\n");
		return 64;
	}
	long pid = strtol(argv[1], NULL, 10);
	int want = atoi(argv[2]);
	double until = now() + atof(argv[3]);
	long refused = 0;
	while (now() < until) {
		if (kill((pid_t)pid, SIGSTOP) != 0) {
			if (errno == ESRCH)
				break;
			refused++;
		} else if (flocks_of(pid) >= want) {
			printf("held\nrefused %ld\n", refused);
			return 0;
		} else if (kill((pid_t)pid, SIGCONT) != 0 && errno != ESRCH) {
			refused++;
		}
		usleep(300);
	}
	kill((pid_t)pid, SIGCONT);
	printf("never\nrefused %ld\n", refused);
	return 1;
}
