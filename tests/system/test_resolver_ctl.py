#!/usr/bin/env python3
"""configstream-ctl against a running configstream-resolver: set, unset,
get, status and reload; wrong-typed values, bad keys, text that is not
UTF-8 and oversized requests refused; runtime values kept across a
resolver restart; clear errors when the resolver is not running.

usage: test_resolver_ctl.py RESOLVER CTL [DUMP]
"""

import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resolver_common import Run, check, write_file  # noqa: E402


def ok(run, args, use_config=False):
    rc, out, err = run.ctl(args, use_config)
    check(rc == 0, "ctl %s: exit %d: %s" % (" ".join(args), rc, err))
    return out


def main():
    run = Run(sys.argv)
    try:
        write_file(run.config, run.base_config("cmd_port: 5005\n"))
        run.start()

        mode = os.stat(run.socket).st_mode & 0o777
        check(mode == 0o600, "control socket mode %o" % mode)

        # --once refuses to write beside a running resolver.
        p = subprocess.run([run.resolver, "-c", run.config, "--once"],
                           capture_output=True, text=True, timeout=30)
        check(p.returncode == 1 and "already runs" in p.stderr,
              "--once beside a running resolver: %d %s" % (p.returncode,
                                                           p.stderr))

        # -c FILE finds the socket through the config's run_path.
        out = ok(run, ["status"], use_config=True)
        check("head: " in out and "settings: " in out, "status: " + out)

        st = run.status()
        check(st["settings"] > 1000, "status settings %r" % st["settings"])
        check(len(st["epoch"]) == 32, "status epoch %r" % st["epoch"])
        check(st["last_reload"]["ok"], "status last reload %r" % st)
        h0 = st["head"]

        g = run.get("cmd_port")
        check(g["value"] == 5005 and g["source"] == "file",
              "get cmd_port: %r" % g)
        check(g["layers"] == {"default": 5001, "file": 5005},
              "layers: %r" % g["layers"])

        # A wrong type is refused and changes nothing.
        rc, out, err = run.ctl(["set", "cmd_port", "abc"])
        check(rc == 1, "wrong-typed set exit %d" % rc)
        check("cmd_port: expected an integer, got 'abc'" in err,
              "wrong-typed set message: " + err)
        check(len(err.strip().splitlines()) == 1, "more than one line")
        check(run.head() == h0, "a refused set moved the head")

        rc, out, err = run.ctl(["set", "logs_config", "{enabled: true}"])
        check(rc == 1 and "logs_config is a section" in err,
              "section set: exit %d: %s" % (rc, err))

        # Bad keys, text that is not UTF-8, out-of-range numbers,
        # collections for scalar keys and oversized requests are refused
        # with one clear line, and change nothing.
        refused = [
            ([b"bad\xffkey", b"v"], b"key is not valid UTF-8"),
            ([b"k", b"bad\xffvalue"], b"k: value is not valid UTF-8"),
            ([b"a\x01b", b"v"], b"key contains control characters"),
            ([b"k" * 600, b"1"], b"key too long (600 bytes, at most 255)"),
            ([b"cmd_port", b"99999999999999999999"],
             b"cmd_port: expected an integer between"),
            ([b"logs_enabled", b"{x: 1}"],
             b"logs_enabled: expected a boolean, got a mapping"),
            ([b"k", b"v" * 70000], b"request too large ("),
        ]
        for args, want in refused:
            p = subprocess.run([run.ctl_bin, "--socket", run.socket, "set"]
                               + args, capture_output=True, timeout=30)
            what = repr(args)[:60]
            check(p.returncode == 1 and want in p.stderr,
                  "set %s: exit %d: %r" % (what, p.returncode, p.stderr))
            check(len(p.stderr.strip().splitlines()) == 1,
                  "set %s: more than one line" % what)
        check(run.head() == h0, "a refused set moved the head")

        # The resolver answers an oversized request rather than hang up.
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(10)
            s.connect(run.socket)
            s.send(b"x" * 70000)
            answer = s.recv(65536)
        check(b"request too large (70000 bytes, at most 65536)" in answer,
              "oversized request answered %r" % answer[:80])
        check(run.ctl(["status"])[0] == 0, "resolver gone after big request")

        ok(run, ["set", "cmd_port", "6000"])
        g = run.get("cmd_port")
        check(g["value"] == 6000 and g["source"] == "agent-runtime"
              and g["seq"] == h0 + 1, "after set: %r" % g)

        ok(run, ["set", "cmd_port", "7000", "--source", "cli"])
        ok(run, ["set", "extra_tags", "[a, b]", "--source", "remote-config"])
        g = run.get("extra_tags")
        check(g["value"] == ["a", "b"] and g["source"] == "remote-config",
              "flow list: %r" % g)
        g = run.get("cmd_port")
        check(g["value"] == 7000 and g["source"] == "cli", "cli: %r" % g)
        check(g["layers"] == {"default": 5001, "file": 5005,
                              "agent-runtime": 6000, "cli": 7000},
              "layers: %r" % g["layers"])

        # Secrets are redacted unless asked for.
        ok(run, ["set", "api_key", "0123456789abcdef"])
        rc, out, _ = run.ctl(["get", "api_key"])
        check(rc == 0 and "0123456789abcdef" not in out, "secret shown")
        out = ok(run, ["--show-secrets", "get", "api_key"])
        check("0123456789abcdef" in out, "--show-secrets: " + out)
        check("0123456789abcdef" not in run.log_text(), "secret logged")

        h1 = run.head()
        out = ok(run, ["unset", "cmd_port", "--source", "cli"])
        g = run.get("cmd_port")
        check(g["value"] == 6000 and g["source"] == "agent-runtime"
              and g["seq"] == h1 + 1, "after unset: %r" % g)
        changes = run.changes()
        if changes is not None:
            last = [c for c in changes if c["seq"] == h1 + 1]
            check(len(last) == 1 and last[0]["unset_source"] == "cli"
                  and last[0]["value"] == 6000
                  and last[0]["source"] == "agent-runtime",
                  "unset changelog entry: %r" % last)

        rc, _, err = run.ctl(["unset", "cmd_port", "--source", "bogus"])
        check(rc == 2 and "unknown source 'bogus'" in err, "bad source")
        # The daemon's own settings are checked as in the file.
        for args, text in [(["set", "cmd_port", "99999"],
                            "cmd_port: must be between 1 and 65535"),
                           (["set", "--", "cmd_port", "-1"],
                            "cmd_port: must be between 1 and 65535"),
                           (["set", "log_level", "verbose"],
                            "log_level: unknown log level")]:
            h = run.head()
            rc, _, err = run.ctl(args)
            check(rc == 1 and text in err, "%r: %d %s" % (args, rc, err))
            check(run.head() == h, "%r changed the store" % args)

        out = ok(run, ["unset", "log_format_json"])
        check("unset in agent-runtime: 0 changes" in out,
              "unset defaults to agent-runtime: " + out)
        rc, _, err = run.ctl(["set", "no_such.setting", "1"])
        check(rc == 0 and "not in the schema" in err,
              "set of an unknown key says so: %d %s" % (rc, err))
        ok(run, ["unset", "no_such.setting"])
        rc, _, _ = run.ctl(["unset"])
        check(rc == 2, "unset without a key is a usage error")
        rc, _, _ = run.ctl(["frobnicate"])
        check(rc == 2, "unknown command exit %d" % rc)

        out = ok(run, ["reload"])
        check("0 changes" in out, "reload output: " + out)

        # Runtime layers survive a restart; nothing is rewritten.
        h2 = run.head()
        check(run.stop() == 0, "clean exit on SIGTERM")
        run.start()
        g = run.get("cmd_port")
        check(g["value"] == 6000 and g["source"] == "agent-runtime",
              "after restart: %r" % g)
        check(run.get("extra_tags")["value"] == ["a", "b"], "remote-config")
        check(run.head() == h2, "a restart without changes wrote ids")
        print("ok: runtime values survive a restart")

        # Not running: one clear line, exit 1.
        run.stop(signal.SIGKILL)
        rc, out, err = run.ctl(["status"])
        check(rc == 1, "status without resolver: exit %d" % rc)
        check(err.startswith("configstream-ctl: cannot connect to resolver "
                             "at %s: " % run.socket), "message: " + err)
        check(len(err.strip().splitlines()) == 1, "more than one line")
        print("ok: " + err.strip())

        # A stale socket left by a killed resolver is replaced; the
        # environment outranks the file but not the runtime layers.
        run.start(env={"DD_CMD_PORT": "5007", "DD_LOG_FORMAT_JSON": "yes"})
        g = run.get("cmd_port")
        check(g["value"] == 6000 and g["layers"].get(
            "environment-variable") == 5007, "env under runtime: %r" % g)
        g = run.get("log_format_json")
        check(g["value"] is True and g["source"] == "environment-variable",
              "env bool: %r" % g)
        ok(run, ["unset", "cmd_port", "--source", "agent-runtime"])
        g = run.get("cmd_port")
        check(g["value"] == 5007 and g["source"] == "environment-variable",
              "env after unset: %r" % g)
        run.stop()
        print("ok: ctl")
    except SystemExit:
        print(run.log_text(), file=sys.stderr)
        raise
    finally:
        run.cleanup()


if __name__ == "__main__":
    main()
