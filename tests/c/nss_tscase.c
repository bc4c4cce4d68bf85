/*
 * libnss_tscase.so.2 - a case-insensitive NSS source, for tests only.
 *
 * It answers getpwnam and getspnam for names that start with "ts-rev-"
 * in any case, from /etc/passwd and /etc/shadow, matching without regard to
 * case and returning the entry under its own name: what SSSD does by
 * default, and winbind and nslcd with ignorecase. tests/review.rs installs
 * it as "passwd: files tscase" / "shadow: files tscase" for one test and
 * restores nsswitch.conf after.
 *
 * Build:
 *   cc -O2 -Wall -Wextra -Werror -shared -fPIC -o libnss_tscase.so.2 nss_tscase.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <nss.h>
#include <pwd.h>
#include <shadow.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int ours(const char *name)
{
	return strncasecmp(name, "ts-rev-", 7) == 0;
}

enum nss_status _nss_tscase_getpwnam_r(const char *name, struct passwd *pwd,
				       char *buf, size_t buflen, int *errnop)
{
	struct passwd *found = NULL;
	enum nss_status status = NSS_STATUS_NOTFOUND;
	FILE *f;

	if (!ours(name))
		return NSS_STATUS_NOTFOUND;
	f = fopen("/etc/passwd", "re");
	if (f == NULL) {
		*errnop = errno;
		return NSS_STATUS_UNAVAIL;
	}
	for (;;) {
		int rc = fgetpwent_r(f, pwd, buf, buflen, &found);
		if (rc == ERANGE) {
			*errnop = ERANGE;
			status = NSS_STATUS_TRYAGAIN;
			break;
		}
		if (rc != 0 || found == NULL)
			break;
		if (strcasecmp(found->pw_name, name) == 0) {
			status = NSS_STATUS_SUCCESS;
			break;
		}
	}
	fclose(f);
	return status;
}

enum nss_status _nss_tscase_getspnam_r(const char *name, struct spwd *sp,
				       char *buf, size_t buflen, int *errnop)
{
	struct spwd *found = NULL;
	enum nss_status status = NSS_STATUS_NOTFOUND;
	FILE *f;

	if (!ours(name))
		return NSS_STATUS_NOTFOUND;
	f = fopen("/etc/shadow", "re");
	if (f == NULL) {
		*errnop = errno;
		return NSS_STATUS_UNAVAIL;
	}
	for (;;) {
		int rc = fgetspent_r(f, sp, buf, buflen, &found);
		if (rc == ERANGE) {
			*errnop = ERANGE;
			status = NSS_STATUS_TRYAGAIN;
			break;
		}
		if (rc != 0 || found == NULL)
			break;
		if (strcasecmp(found->sp_namp, name) == 0) {
			status = NSS_STATUS_SUCCESS;
			break;
		}
	}
	fclose(f);
	return status;
}
