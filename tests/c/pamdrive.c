/*
 * pamdrive - drive one real PAM authentication through libpam, for tests.
 *
 * One process is one login attempt. The PAM stack is read from
 * DIR/NAME through pam_start_confdir() (Linux-PAM >= 1.4), so tests never
 * touch /etc/pam.d.
 *
 * Build:
 *   cc -O2 -Wall -Wextra -Werror -o pamdrive tests/c/pamdrive.c -lpam
 *
 * Usage:
 *   pamdrive --confdir DIR --service NAME [--user USER]
 *            [--rhost HOST] [--tty TTY] [--ruser U] [--setcred] [--nodelay]
 *            [--lookup] [--clock] [--delay-prompt US] [--delay-result US]
 *
 * Conversation:
 *   Every message the module sends is printed on stdout, prefixed by its
 *   style, and stdout is flushed after each one:
 *     PROMPT_OFF: <text>   PROMPT_ON: <text>   ERROR: <text>   INFO: <text>
 *   (multi-line text is printed as-is after the prefix). Each PROMPT_OFF or
 *   PROMPT_ON is answered with one line read from stdin, without its "\n".
 *   Answers may be up to ANSWER_MAX bytes (1 MiB, so >= 64 KiB is fine);
 *   a longer line, or end of input before any byte of the answer, makes the
 *   conversation fail with PAM_CONV_ERR. A last line without "\n" counts.
 *   stdin is read one byte at a time with read(2), so no other copy of an
 *   answer stays in a stdio buffer; our copy is wiped with explicit_bzero.
 *
 * Without --user, pam_start gets no user, so a module's pam_get_user asks
 * for one through the conversation (a PROMPT_ON, like login(1)'s "login: ").
 *
 * Flow: pam_start_confdir, set PAM_RHOST / PAM_TTY / PAM_RUSER if given,
 *   pam_authenticate(pamh, 0); with --setcred and a successful
 *   authentication, pam_setcred(pamh, PAM_ESTABLISH_CRED) (printed as
 *   "SETCRED: <n> <text>"). --nodelay installs a PAM_FAIL_DELAY callback that
 *   does nothing, so failed attempts return at once instead of sleeping the
 *   delay modules request (pam_unix: 2 s).
 *   --lookup looks USER up with getpwnam(3) before pam_start, as sshd does
 *   before PAM (getpwnamallow): the NSS modules a miss loads are then the
 *   host's, loaded before any PAM module runs. With --clock, a second
 *   lookup is timed ("CLOCK: lookup-start <ns>", "CLOCK: lookup-end <ns>"):
 *   what the host's account database takes to answer a module's lookup.
 *   --clock prints CLOCK_MONOTONIC readings, in nanoseconds, on lines of
 *   their own: "CLOCK: start <ns>" just before pam_authenticate, "CLOCK:
 *   prompt <ns>" on entering the conversation (before the message is
 *   printed), "CLOCK: answered <ns>" when the answer has been read, and
 *   "CLOCK: result <ns>" when pam_authenticate returns: the module's own
 *   time, without process start-up or pipe latency (tests/timing.rs).
 *   --delay-prompt US spins US microseconds on entering the conversation,
 *   before the "prompt" reading; --delay-result US spins US microseconds
 *   after the "answered" reading, before the answer is handed back. Either
 *   is what a module that worked that much longer would show: the timing
 *   test injects them to prove it can see such a difference.
 *   The last line printed is "RESULT: <n> <pam_strerror text>", where n is
 *   the authentication result (or the setcred result after a successful
 *   authentication). pam_end is called, and the exit status is n
 *   (0 = PAM_SUCCESS). Bad usage exits 64.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX (1024 * 1024)

static char answer[ANSWER_MAX + 1];
static int clock_on;
static long delay_prompt_us, delay_result_us;

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Busy-waits `us` microseconds: exact, unlike a sleep's timer slack. */
static void spin(long us)
{
	long long until = now_ns() + (long long)us * 1000LL;
	while (now_ns() < until)
		;
}

/* A reading taken at `ns`, printed (and flushed) only with --clock. */
static void clock_line(const char *what, long long ns)
{
	if (!clock_on)
		return;
	printf("CLOCK: %s %lld\n", what, ns);
	fflush(stdout);
}

/* Read one line from fd 0 into `answer`. Returns its length, or -1. */
static long read_answer(void)
{
	long len = 0;
	for (;;) {
		char c;
		ssize_t n = read(0, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return len > 0 ? len : -1; /* EOF */
		if (c == '\n')
			break;
		if (len == ANSWER_MAX) {
			fprintf(stderr, "pamdrive: answer longer than %d bytes\n",
				ANSWER_MAX);
			return -1;
		}
		answer[len++] = c;
	}
	answer[len] = '\0';
	return len;
}

static void free_responses(struct pam_response *r, int n)
{
	for (int i = 0; i < n; i++) {
		if (r[i].resp) {
			explicit_bzero(r[i].resp, strlen(r[i].resp));
			free(r[i].resp);
		}
	}
	free(r);
}

static int conv(int num_msg, const struct pam_message **msg,
		struct pam_response **resp, void *appdata)
{
	(void)appdata;
	spin(delay_prompt_us);
	long long entered = now_ns();
	if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	struct pam_response *r = calloc((size_t)num_msg, sizeof(*r));
	if (!r)
		return PAM_BUF_ERR;

	for (int i = 0; i < num_msg; i++) {
		const char *text = msg[i]->msg ? msg[i]->msg : "";
		const char *prefix;
		int prompt = 0;
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF: prefix = "PROMPT_OFF"; prompt = 1; break;
		case PAM_PROMPT_ECHO_ON:  prefix = "PROMPT_ON";  prompt = 1; break;
		case PAM_ERROR_MSG:       prefix = "ERROR"; break;
		case PAM_TEXT_INFO:       prefix = "INFO"; break;
		default:
			printf("UNKNOWN(%d): %s\n", msg[i]->msg_style, text);
			fflush(stdout);
			free_responses(r, i);
			return PAM_CONV_ERR;
		}
		if (prompt && i == 0)
			clock_line("prompt", entered);
		printf("%s: %s\n", prefix, text);
		fflush(stdout);
		if (!prompt)
			continue;

		long len = read_answer();
		clock_line("answered", now_ns());
		spin(delay_result_us);
		if (len < 0) {
			explicit_bzero(answer, sizeof(answer));
			free_responses(r, i);
			return PAM_CONV_ERR;
		}
		r[i].resp = malloc((size_t)len + 1);
		if (r[i].resp)
			memcpy(r[i].resp, answer, (size_t)len + 1);
		explicit_bzero(answer, (size_t)len + 1);
		if (!r[i].resp) {
			free_responses(r, i);
			return PAM_BUF_ERR;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static void no_delay(int retval, unsigned usec_delay, void *appdata)
{
	(void)retval;
	(void)usec_delay;
	(void)appdata;
}

/* A whole number of microseconds, up to 10 s. */
static int parse_us(const char *text, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < 0 || v > 10000000)
		return 0;
	*out = v;
	return 1;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: pamdrive --confdir DIR --service NAME [--user USER]\n"
		"                [--rhost HOST] [--tty TTY] [--ruser U]"
		" [--setcred] [--nodelay]\n"
		"                [--lookup] [--clock]"
		" [--delay-prompt US] [--delay-result US]\n");
	return 64;
}

int main(int argc, char **argv)
{
	const char *confdir = NULL, *service = NULL, *user = NULL;
	const char *rhost = NULL, *tty = NULL, *ruser = NULL;
	int setcred = 0, nodelay = 0, lookup = 0;
	const char *delay_prompt = NULL, *delay_result = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (!strcmp(a, "--setcred")) { setcred = 1; continue; }
		if (!strcmp(a, "--nodelay")) { nodelay = 1; continue; }
		if (!strcmp(a, "--lookup")) { lookup = 1; continue; }
		if (!strcmp(a, "--clock")) { clock_on = 1; continue; }
		if (!strcmp(a, "--confdir")) dst = &confdir;
		else if (!strcmp(a, "--service")) dst = &service;
		else if (!strcmp(a, "--user")) dst = &user;
		else if (!strcmp(a, "--rhost")) dst = &rhost;
		else if (!strcmp(a, "--tty")) dst = &tty;
		else if (!strcmp(a, "--ruser")) dst = &ruser;
		else if (!strcmp(a, "--delay-prompt")) dst = &delay_prompt;
		else if (!strcmp(a, "--delay-result")) dst = &delay_result;
		if (!dst || i + 1 >= argc)
			return usage();
		*dst = argv[++i];
	}
	if (!confdir || !service || (lookup && !user))
		return usage();
	if (delay_prompt && !parse_us(delay_prompt, &delay_prompt_us))
		return usage();
	if (delay_result && !parse_us(delay_result, &delay_result_us))
		return usage();
	if (lookup) {
		(void)getpwnam(user);
		/* What one more lookup of the name costs now: the module's own,
		 * if it makes one, costs about as much. */
		clock_line("lookup-start", now_ns());
		(void)getpwnam(user);
		clock_line("lookup-end", now_ns());
	}

	struct pam_conv pc = { conv, NULL };
	pam_handle_t *pamh = NULL;
	int rc = pam_start_confdir(service, user, &pc, confdir, &pamh);
	if (rc != PAM_SUCCESS) {
		printf("RESULT: %d %s\n", rc, pam_strerror(pamh, rc));
		return rc;
	}
	if (rhost && rc == PAM_SUCCESS)
		rc = pam_set_item(pamh, PAM_RHOST, rhost);
	if (tty && rc == PAM_SUCCESS)
		rc = pam_set_item(pamh, PAM_TTY, tty);
	if (ruser && rc == PAM_SUCCESS)
		rc = pam_set_item(pamh, PAM_RUSER, ruser);
	if (nodelay && rc == PAM_SUCCESS)
		rc = pam_set_item(pamh, PAM_FAIL_DELAY, (const void *)no_delay);
	if (rc == PAM_SUCCESS) {
		clock_line("start", now_ns());
		rc = pam_authenticate(pamh, 0);
		clock_line("result", now_ns());
	}
	if (rc == PAM_SUCCESS && setcred) {
		rc = pam_setcred(pamh, PAM_ESTABLISH_CRED);
		printf("SETCRED: %d %s\n", rc, pam_strerror(pamh, rc));
	}
	printf("RESULT: %d %s\n", rc, pam_strerror(pamh, rc));
	fflush(stdout);
	pam_end(pamh, rc);
	return rc;
}
