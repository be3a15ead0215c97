#!/usr/bin/env python3
"""configstream-ctl sessions and revoke against a real configstream-broker,
and the resolver publishing its head in the broker's shared memory.

usage: test_ctl_sessions.py RESOLVER CTL BROKER
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resolver_common import (WAIT_S, Run, check, clean_env, poll,  # noqa
                             write_file)


def main():
    broker = sys.argv[3] if len(sys.argv) > 3 else None
    run = Run(sys.argv[:3])
    bproc = None
    try:
        write_file(run.config, run.base_config())

        # Without the broker: one clear line, exit 1.
        rc, out, err = run.ctl(["sessions"], use_config=True)
        check(rc == 1 and "cannot reach broker at " in err
              and len(err.strip().splitlines()) == 1,
              "sessions without broker: exit %d: %s" % (rc, err))
        print("ok: " + err.strip())

        run.start()
        check(not run.status()["broker_attached"], "attached to nothing")

        logf = open(run.log, "ab")
        bproc = subprocess.Popen([broker, "-c", run.config], stdout=logf,
                                 stderr=logf, env=clean_env())
        logf.close()

        # The resolver finds the broker's segment once it appears.
        poll(lambda: run.status()["broker_attached"],
             "the resolver to attach to the broker's segment")
        print("ok: resolver attached to the broker's segment")

        rc, out, err = run.ctl(["sessions"], use_config=True)
        check(rc == 0 and out.startswith("ID "), "sessions: %d %s %s" %
              (rc, out, err))
        rc, out, err = run.ctl(["--json", "sessions"], use_config=True)
        check(rc == 0 and out.strip() == "", "no sessions: %r" % out)

        rc, out, err = run.ctl(["revoke", "abcdefgh"], use_config=True)
        check(rc == 1 and "no remote agent found with session ID" in err,
              "revoke unknown: exit %d: %s" % (rc, err))
        print("ok: " + err.strip())

        rc, _, _ = run.ctl(["revoke"], use_config=True)
        check(rc == 2, "revoke without an id is a usage error")
        run.stop()
    except SystemExit:
        print(run.log_text(), file=sys.stderr)
        raise
    finally:
        if bproc is not None:
            bproc.terminate()
            try:
                bproc.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                bproc.kill()
                bproc.wait()
        run.cleanup()


if __name__ == "__main__":
    main()
