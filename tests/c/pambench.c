/*
 * pambench - in-process benchmark of the cost per login of a PAM stack.
 *
 * Build:
 *   cc -O2 -Wall -Wextra -Werror -o pambench tests/c/pambench.c -lpam
 *
 * Usage:
 *   pambench --confdir DIR --service NAME --users FILE --iterations N
 *            [--answer STR] [--offset K] [--latencies FILE] [--rhost HOST]
 *            [--password STR] [--prefix STR]
 *   pambench --users FILE --print-codes
 *
 * Each iteration is one full login: pam_start_confdir(NAME, user, conv, DIR),
 * pam_authenticate(pamh, 0), pam_end. Users are taken from FILE in order,
 * from the K-th (--offset, default 0), cycling when N exceeds their number;
 * several pambench processes with distinct offsets are several hosts.
 * --latencies writes each login's time in microseconds, one a line.
 * --rhost sets PAM_RHOST of every login. The result is one line on stdout:
 *   service=NAME iterations=N total_s=S per_login_us=U ok=K fail=F faults=P
 * timed with clock_gettime(CLOCK_MONOTONIC) around the whole loop; P is
 * the page faults a login took (getrusage's minor and major faults over the
 * loop, per login): what loading, running and unloading a module maps.
 *
 * FILE has one user per line: "user<TAB>base32secret". Every prompt
 * (echo on or off) is answered with that user's current RFC 6238 code
 * (HMAC-SHA1, 30 s step, 6 digits), computed here when the prompt arrives;
 * the check value is RFC 6238 itself, and `oathtool --totp -b SECRET` gives
 * the same code. With --answer STR every prompt gets STR instead and FILE
 * may hold bare user names (for pam_permit, pam_deny, ...).
 * --password STR answers a prompt that starts with "Password:" (pam_unix's)
 * with STR, for a stack that asks the password and then the code;
 * --prefix STR puts STR before every code typed, for one answer that holds
 * both (pam_twostep's `preauth single`).
 * --print-codes prints "user code" for every user of FILE and exits (to
 * check the codes against oathtool, or to feed pamdrive).
 *
 * REPLAY: pam_twostep, and pam_google_authenticator with DISALLOW_REUSE,
 * accept a time step once per user. A user can therefore succeed only once
 * per 30 s step: use at least as many distinct users as iterations (for
 * example 2000 users and N=2000), and a run that crosses a step boundary
 * is fine, but repeating a run within the same 30 s step fails (ok=0).
 * Leave 30 s between runs on the same users, or use fresh users.
 *
 * Failed logins are not slowed down: a no-op PAM_FAIL_DELAY callback is
 * installed, so fail= counts are cheap and visible rather than hidden in 2 s
 * sleeps. Exit status: 0 if every login succeeded, 1 otherwise, 64 on bad
 * usage.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <security/pam_appl.h>
#include <stdint.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- SHA-1 (FIPS 180-4) and HMAC-SHA1 (RFC 2104), minimal ---- */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
		else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
		else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
		else { f = b ^ c ^ d; k = 0xCA62C1D6; }
		uint32_t t = ROL(a, 5) + f + e + k + w[i];
		e = d; d = c; c = ROL(b, 30); b = a; a = t;
	}
	h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

/* SHA-1 of the concatenation of two buffers (enough for HMAC). */
static void sha1_2(const uint8_t *a, size_t alen, const uint8_t *b,
		   size_t blen, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
			  0xC3D2E1F0 };
	uint8_t blk[64];
	size_t total = alen + blen, n = 0;
	uint64_t bits = (uint64_t)total * 8;
	for (size_t i = 0; i < total; i++) {
		blk[n++] = i < alen ? a[i] : b[i - alen];
		if (n == 64) { sha1_block(h, blk); n = 0; }
	}
	blk[n++] = 0x80;
	if (n > 56) {
		memset(blk + n, 0, 64 - n);
		sha1_block(h, blk);
		n = 0;
	}
	memset(blk + n, 0, 56 - n);
	for (int i = 0; i < 8; i++)
		blk[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha1_block(h, blk);
	for (int i = 0; i < 20; i++)
		out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void hmac_sha1(const uint8_t *key, size_t klen, const uint8_t *msg,
		      size_t mlen, uint8_t out[20])
{
	uint8_t k[64] = { 0 }, ipad[64], opad[64], inner[20];
	if (klen > 64)
		sha1_2(key, klen, NULL, 0, k);
	else
		memcpy(k, key, klen);
	for (int i = 0; i < 64; i++) {
		ipad[i] = k[i] ^ 0x36;
		opad[i] = k[i] ^ 0x5c;
	}
	sha1_2(ipad, 64, msg, mlen, inner);
	sha1_2(opad, 64, inner, 20, out);
}

/* ---- RFC 4648 base32 decode (case-insensitive, '=' and spaces skipped) */

static int base32_decode(const char *s, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	for (; *s; s++) {
		int c = toupper((unsigned char)*s), v;
		if (c == '=' || c == ' ' || c == '-')
			continue;
		if (c >= 'A' && c <= 'Z') v = c - 'A';
		else if (c >= '2' && c <= '7') v = c - '2' + 26;
		else return -1;
		acc = (acc << 5) | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			if (n == cap)
				return -1;
			out[n++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	return (int)n;
}

/* RFC 6238: 6-digit TOTP, SHA1, 30 s step, at the current time. */
static void totp_now(const uint8_t *key, size_t klen, char out[7])
{
	uint64_t step = (uint64_t)time(NULL) / 30;
	uint8_t msg[8], mac[20];
	for (int i = 0; i < 8; i++)
		msg[i] = (uint8_t)(step >> (56 - 8 * i));
	hmac_sha1(key, klen, msg, 8, mac);
	int off = mac[19] & 0x0f;
	uint32_t bin = (uint32_t)(mac[off] & 0x7f) << 24 |
		       (uint32_t)mac[off + 1] << 16 |
		       (uint32_t)mac[off + 2] << 8 | mac[off + 3];
	snprintf(out, 7, "%06u", bin % 1000000);
}

/* ---- the benchmark ---- */

struct user {
	char *name;
	uint8_t key[128];
	int klen; /* -1: no secret */
};

struct ctx {
	const struct user *u;
	const char *answer; /* fixed answer, or NULL for TOTP */
	const char *password; /* the answer to "Password:", or NULL */
	const char *prefix; /* typed before a code, or NULL */
};

static int conv(int num_msg, const struct pam_message **msg,
		struct pam_response **resp, void *appdata)
{
	const struct ctx *c = appdata;
	if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	struct pam_response *r = calloc((size_t)num_msg, sizeof(*r));
	if (!r)
		return PAM_BUF_ERR;
	for (int i = 0; i < num_msg; i++) {
		int style = msg[i]->msg_style;
		if (style != PAM_PROMPT_ECHO_OFF && style != PAM_PROMPT_ECHO_ON)
			continue; /* INFO / ERROR text: ignored */
		char code[7], joined[512];
		const char *a = c->answer;
		if (!a && c->password &&
		    !strncmp(msg[i]->msg, "Password:", strlen("Password:")))
			a = c->password;
		if (!a) {
			if (c->u->klen < 0)
				goto fail;
			totp_now(c->u->key, (size_t)c->u->klen, code);
			a = code;
			if (c->prefix) {
				int len = snprintf(joined, sizeof(joined),
						   "%s%s", c->prefix, code);
				if (len < 0 || (size_t)len >= sizeof(joined))
					goto fail;
				a = joined;
			}
		}
		r[i].resp = strdup(a);
		if (!r[i].resp)
			goto fail;
	}
	*resp = r;
	return PAM_SUCCESS;
fail:
	for (int i = 0; i < num_msg; i++)
		free(r[i].resp);
	free(r);
	return PAM_CONV_ERR;
}

static void no_delay(int retval, unsigned usec_delay, void *appdata)
{
	(void)retval;
	(void)usec_delay;
	(void)appdata;
}

static struct user *load_users(const char *path, size_t *count)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return NULL;
	}
	struct user *v = NULL;
	size_t n = 0, cap = 0, lcap = 0;
	char *line = NULL;
	ssize_t len;
	while ((len = getline(&line, &lcap, f)) >= 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct user *nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				exit(1);
			v = nv;
		}
		char *tab = strchr(line, '\t');
		v[n].klen = -1;
		if (tab) {
			*tab = '\0';
			v[n].klen = base32_decode(tab + 1, v[n].key,
						  sizeof(v[n].key));
			if (v[n].klen <= 0) {
				fprintf(stderr, "%s: bad base32 secret for %s\n",
					path, line);
				exit(1);
			}
		}
		v[n].name = strdup(line);
		if (!v[n].name)
			exit(1);
		n++;
	}
	free(line);
	fclose(f);
	*count = n;
	return v;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: pambench --confdir DIR --service NAME --users FILE"
		" --iterations N [--answer STR] [--offset K]"
		" [--password STR] [--prefix STR]"
		" [--latencies FILE] [--rhost HOST]\n"
		"       pambench --users FILE --print-codes\n");
	return 64;
}

int main(int argc, char **argv)
{
	const char *confdir = NULL, *service = NULL, *users = NULL;
	const char *iters = NULL, *answer = NULL, *offset_arg = NULL;
	const char *password = NULL, *prefix = NULL;
	const char *latencies = NULL, *rhost = NULL;
	int print_codes = 0;
	for (int i = 1; i < argc; i++) {
		const char **dst = NULL;
		if (!strcmp(argv[i], "--print-codes")) {
			print_codes = 1;
			continue;
		}
		if (!strcmp(argv[i], "--confdir")) dst = &confdir;
		else if (!strcmp(argv[i], "--service")) dst = &service;
		else if (!strcmp(argv[i], "--users")) dst = &users;
		else if (!strcmp(argv[i], "--iterations")) dst = &iters;
		else if (!strcmp(argv[i], "--answer")) dst = &answer;
		else if (!strcmp(argv[i], "--offset")) dst = &offset_arg;
		else if (!strcmp(argv[i], "--latencies")) dst = &latencies;
		else if (!strcmp(argv[i], "--password")) dst = &password;
		else if (!strcmp(argv[i], "--prefix")) dst = &prefix;
		else if (!strcmp(argv[i], "--rhost")) dst = &rhost;
		if (!dst || i + 1 >= argc)
			return usage();
		*dst = argv[++i];
	}
	if (!users || (!print_codes && (!confdir || !service || !iters)))
		return usage();

	size_t nusers;
	struct user *u = load_users(users, &nusers);
	if (!u || nusers == 0) {
		fprintf(stderr, "pambench: no users in %s\n", users);
		return 1;
	}
	if (print_codes) {
		for (size_t i = 0; i < nusers; i++) {
			char code[7] = "-";
			if (u[i].klen > 0)
				totp_now(u[i].key, (size_t)u[i].klen, code);
			printf("%s %s\n", u[i].name, code);
		}
		return 0;
	}
	char *end;
	long n = strtol(iters, &end, 10);
	if (*end || n <= 0)
		return usage();
	if (!answer && (size_t)n > nusers)
		fprintf(stderr, "pambench: warning: %ld iterations over %zu "
			"users: repeated users in one 30 s step are refused "
			"as replays\n", n, nusers);

	long offset = 0;
	if (offset_arg) {
		offset = strtol(offset_arg, &end, 10);
		if (*end || offset < 0)
			return usage();
	}
	FILE *lat = NULL;
	if (latencies && !(lat = fopen(latencies, "w"))) {
		perror(latencies);
		return 1;
	}

	long ok = 0, fail = 0;
	struct timespec t0, t1, a, b;
	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < n; i++) {
		struct ctx c = { &u[(size_t)(i + offset) % nusers], answer,
				 password, prefix };
		clock_gettime(CLOCK_MONOTONIC, &a);
		struct pam_conv pc = { conv, &c };
		pam_handle_t *pamh = NULL;
		int rc = pam_start_confdir(service, c.u->name, &pc, confdir,
					   &pamh);
		if (rc == PAM_SUCCESS) {
			pam_set_item(pamh, PAM_FAIL_DELAY,
				     (const void *)no_delay);
			if (rhost)
				pam_set_item(pamh, PAM_RHOST, rhost);
			rc = pam_authenticate(pamh, 0);
			pam_end(pamh, rc);
		}
		if (rc == PAM_SUCCESS)
			ok++;
		else
			fail++;
		if (lat) {
			clock_gettime(CLOCK_MONOTONIC, &b);
			fprintf(lat, "%.1f\n",
				(double)(b.tv_sec - a.tv_sec) * 1e6 +
					(double)(b.tv_nsec - a.tv_nsec) / 1e3);
		}
	}
	if (lat)
		fclose(lat);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_SELF, &r1);
	double faults = (double)(r1.ru_minflt - r0.ru_minflt + r1.ru_majflt -
				 r0.ru_majflt) /
			(double)n;
	double total = (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("service=%s iterations=%ld total_s=%.3f per_login_us=%.1f "
	       "ok=%ld fail=%ld faults=%.1f\n", service, n, total,
	       total * 1e6 / (double)n, ok, fail, faults);
	return fail ? 1 : 0;
}
