#!/usr/bin/env python3
"""Bad input to configstream-resolver: a missing or unreadable -c file, a
broken config, an unwritable store directory or an unknown flag gives one
clear line and a non-zero exit. And --once resolves, commits and exits 0.

usage: test_resolver_badinput.py RESOLVER CTL [DUMP]
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resolver_common import (WAIT_S, Run, check, clean_env,  # noqa: E402
                             write_file)

EXIT_FATAL_CONFIG = 78


def unprivileged():
    """argv prefix running a command as nobody (when we are root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def resolver(run, args, prefix=()):
    p = subprocess.run(list(prefix) + [run.resolver] + args,
                       capture_output=True, text=True, env=clean_env(),
                       timeout=WAIT_S)
    return p.returncode, p.stderr


def one_line(what, rc, err, want_rc=None, needle=None):
    lines = err.strip().splitlines()
    check(rc != 0, "%s: exit 0" % what)
    if want_rc is not None:
        check(rc == want_rc, "%s: exit %d, want %d" % (what, rc, want_rc))
    check(len(lines) == 1, "%s: want one line, got:\n%s" % (what, err))
    if needle is not None:
        check(needle in lines[0], "%s: %r not in %r" % (what, needle,
                                                        lines[0]))
    print("ok: %s: exit %d: %s" % (what, rc, lines[0]))


def main():
    run = Run(sys.argv)
    try:
        missing = os.path.join(run.dir, "absent.yaml")
        rc, err = resolver(run, ["-c", missing])
        one_line("missing -c file", rc, err, EXIT_FATAL_CONFIG, missing)

        rc, err = resolver(run, ["--frobnicate"])
        one_line("unknown flag", rc, err, 2, "--frobnicate")

        rc, err = resolver(run, ["-c"])
        one_line("flag without its value", rc, err, 2, "-c")

        broken = os.path.join(run.dir, "broken.yaml")
        write_file(broken, run.base_config("cmd_port: [1\n"))
        rc, err = resolver(run, ["-c", broken, "--once"])
        one_line("broken config", rc, err, EXIT_FATAL_CONFIG,
                 "broken.yaml:")

        # The rest runs unprivileged: root reads and writes anything.
        prefix = unprivileged()
        os.chmod(run.dir, 0o755)
        if prefix is None:
            print("skip: unreadable/unwritable cases need setpriv as root")
        else:
            secret = os.path.join(run.dir, "unreadable.yaml")
            write_file(secret, run.base_config())
            os.chmod(secret, 0)
            rc, err = resolver(run, ["-c", secret, "--once"], prefix)
            one_line("unreadable -c file", rc, err, EXIT_FATAL_CONFIG,
                     secret)

            ro = os.path.join(run.dir, "ro")
            os.mkdir(ro, 0o555)
            cfg = os.path.join(run.dir, "ro.yaml")
            write_file(cfg, "run_path: %s\n" % ro)
            os.chmod(cfg, 0o644)
            rc, err = resolver(run, ["-c", cfg, "--once"], prefix)
            one_line("unwritable store directory", rc, err, None, ro)

        # --once: resolve, commit, exit 0; a second run commits nothing.
        write_file(run.config, run.base_config("cmd_port: 5010\n"))
        rc, err = resolver(run, ["-c", run.config, "--once"])
        check(rc == 0, "--once exit %d: %s" % (rc, err))
        check(os.path.isdir(run.store), "--once made no store")
        changes = run.changes()
        if changes is not None:
            n = len(changes)
            check(n > 1000, "--once recorded %d changes" % n)
            check(any(c["key"] == "cmd_port" and c["value"] == 5010
                      and c["source"] == "file" for c in changes),
                  "cmd_port not recorded")
            rc, err = resolver(run, ["-c", run.config, "--once"])
            check(rc == 0, "second --once exit %d" % rc)
            check(len(run.changes()) == n, "a second --once wrote ids")
        print("ok: --once")
    except SystemExit:
        raise
    finally:
        run.cleanup()


if __name__ == "__main__":
    main()
