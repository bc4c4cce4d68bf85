#!/usr/bin/env python3
"""mkbenchsecrets.py WORK N - the benchmark users' secrets, one new key each.

Writes WORK/users.txt ("tsbenchNNNN<TAB>base32 key" per user) and, for each
of tsbench0001..tsbenchNNNN, the secret files of every module WORK has a
directory for, all with the same key (so that one code serves every module
in a round):

  WORK/secrets/USER     pam_twostep's (always)
  WORK/ga/USER          google-authenticator's, with its replay and
                        rate-limit guards on (if WORK/ga exists)
  WORK/secrets-8/USER   pam_twostep's with eight authenticators, the key
                        typed being the last (if WORK/secrets-8 exists)

Used by tests/bench.sh and tests/ab.sh; files are created, never replaced.
"""
import base64
import os
import sys


def new_key():
    return base64.b32encode(os.urandom(20)).decode().rstrip("=")


def create(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.write(fd, text.encode())
    os.close(fd)


work, n = sys.argv[1], int(sys.argv[2])
with open(work + "/users.txt", "w") as users:
    for i in range(1, n + 1):
        u = "tsbench%04d" % i
        b32 = new_key()
        users.write("%s\t%s\n" % (u, b32))
        create("%s/secrets/%s" % (work, u), 'secret = "%s"\n' % b32, 0o600)
        if os.path.isdir(work + "/ga"):
            create("%s/ga/%s" % (work, u),
                   '%s\n" RATE_LIMIT 3 30\n" WINDOW_SIZE 3\n" DISALLOW_REUSE\n" TOTP_AUTH\n' % b32,
                   0o400)
        if os.path.isdir(work + "/secrets-8"):
            # Seven others first: the code typed is the last one's.
            keys = [new_key() for _ in range(7)] + [b32]
            text = "".join('[[authenticator]]\nname = "d%d"\nsecret = "%s"\n' % (i, k)
                           for i, k in enumerate(keys))
            create("%s/secrets-8/%s" % (work, u), text, 0o600)
