"""Helpers shared by the resolver's system tests: a temporary run
directory, a real configstream-resolver process and configstream-ctl.

Every wait is bounded: poll() retries a check until it holds or the
deadline passes.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

WAIT_S = 10.0
# Longer than the resolver's reload debounce, so an extra (wrong) change
# would have landed by then.
SETTLE_S = 0.6


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def poll(pred, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            fail("timed out waiting for " + what)
        time.sleep(0.05)


def clean_env():
    """The environment without DD_* variables, so only the files count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DD_")}


class Run:
    """A run directory and the binaries: resolver, ctl, dump (optional)."""

    def __init__(self, argv):
        if len(argv) < 3:
            fail("usage: %s RESOLVER CTL [DUMP]" % argv[0])
        self.resolver = argv[1]
        self.ctl_bin = argv[2]
        self.dump_bin = argv[3] if len(argv) > 3 and os.path.exists(
            argv[3]) else None
        self.dir = tempfile.mkdtemp(prefix="cs-resolver-test.")
        self.cfgdir = os.path.join(self.dir, "etc")
        os.mkdir(self.cfgdir)
        self.config = os.path.join(self.cfgdir, "datadog.yaml")
        self.socket = os.path.join(self.dir, "configstream", "resolver.sock")
        self.store = os.path.join(self.dir, "configstream", "store")
        self.log = os.path.join(self.dir, "resolver.log")
        self.proc = None

    def base_config(self, extra=""):
        return "run_path: %s\nlog_level: debug\n%s" % (self.dir, extra)

    def start(self, args=None, env=None):
        logf = open(self.log, "ab")
        argv = [self.resolver, "-c", self.config] + (args or [])
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=logf,
                                     env=dict(clean_env(), **(env or {})))
        logf.close()
        poll(lambda: self.ctl(["status"])[0] == 0 or self.proc.poll()
             is not None, "the resolver to answer")
        check(self.proc.poll() is None, "resolver exited at start:\n" +
              self.log_text())

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("resolver did not exit on signal %d" % sig)
        self.proc = None
        return rc

    def cleanup(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, args, use_config=False):
        where = ["-c", self.config] if use_config else ["--socket",
                                                        self.socket]
        p = subprocess.run([self.ctl_bin] + where + args,
                           capture_output=True, text=True, env=clean_env(),
                           timeout=WAIT_S)
        return p.returncode, p.stdout, p.stderr

    def get(self, key):
        rc, out, _ = self.ctl(["--json", "get", key])
        return json.loads(out) if rc == 0 else None

    def status(self):
        rc, out, err = self.ctl(["--json", "status"])
        check(rc == 0, "ctl status failed: " + err)
        return json.loads(out)

    def head(self):
        return self.status()["head"]

    def changes(self):
        """The changelog, from configstream-dump (None without it)."""
        if self.dump_bin is None:
            return None
        p = subprocess.run([self.dump_bin, "--json", "--store", self.store],
                           capture_output=True, text=True, timeout=WAIT_S)
        check(p.returncode == 0, "configstream-dump failed: " + p.stderr)
        out = []
        for line in p.stdout.splitlines():
            o = json.loads(line)
            if o.get("kind") == "change":
                out.append(o)
        return out


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)
