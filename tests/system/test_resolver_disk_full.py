"""A reload whose commit fails because the store's file system is full is
retried by itself once there is room again, and its error says why.

Needs root to mount a small tmpfs for the store; skipped (77) otherwise.
"""

import os
import subprocess
import sys

from resolver_common import Run, check, fail, poll

KEY = "hostname"


def main():
    run = Run(sys.argv)
    check(run.dump_bin is not None, "needs configstream-dump")
    store = run.store
    os.makedirs(store)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs",
                       store], capture_output=True).returncode != 0:
        print("SKIP: cannot mount a tmpfs (needs root)")
        run.cleanup()
        sys.exit(77)
    try:
        with open(run.config, "w") as f:
            f.write(run.base_config("%s: before\n" % KEY))
        run.start()

        # Fill the file system with runtime values until a commit fails.
        for i in range(200):
            rc, _, err = run.ctl(["set", "filler.k%d" % i, "x" * 40000])
            if rc != 0:
                break
        else:
            fail("the store never filled up")
        check("store commit" in err, "set on a full store: " + err)

        # A change larger than the value that did not fit.
        after = "after" + "y" * 120000
        with open(run.config, "w") as f:
            f.write(run.base_config("%s: %s\n" % (KEY, after)))
        poll(lambda: "; retrying in" in run.log_text(),
             "the failed commit to be retried")
        line = [ln for ln in run.log_text().splitlines()
                if "; retrying in" in ln][-1]
        check("is full" in line, "full disk not named: " + line)

        subprocess.run(["mount", "-o", "remount,size=64m", store],
                       check=True)
        # No file event, no ctl reload: the retry alone applies it.
        poll(lambda: any(c["key"] == KEY and c["value"] == after
                         for c in run.changes()),
             "the retry to apply the change", timeout=40)
        check(run.status()["last_reload"]["ok"], "status after the retry")
        print("ok: " + line.split(" reload: ", 1)[1])
        run.stop()
    finally:
        if run.proc is not None:
            run.proc.kill()
            run.proc.wait()
            run.proc = None
        subprocess.run(["umount", store], capture_output=True)
        run.cleanup()


if __name__ == "__main__":
    main()
