#!/usr/bin/env python3
"""Hot reload of a running configstream-resolver.

The config file is changed in every way deployments change files: a
Kubernetes-style `..data` symlink swap, an editor's rename-over, an
in-place rewrite, delete-and-recreate. Each change must land exactly once
(one new sequence id, the right value, source `file`); a rewrite with the
same content must land nowhere; a broken edit must leave the store as it
was and log its file:line:column; the fix must then be picked up.

usage: test_resolver_reload.py RESOLVER CTL [DUMP]
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resolver_common import (SETTLE_S, Run, check, fail, poll,  # noqa: E402
                             write_file)

KEY = "test_marker"


def expect_change(run, what, action, value, source="file", unset=""):
    h0 = run.head()
    action()
    poll(lambda: (run.get(KEY) or {}).get("value") == value,
         "%s: %s = %r" % (what, KEY, value))
    time.sleep(SETTLE_S)

    got = run.get(KEY)
    check(got["source"] == source, "%s: source %r" % (what, got["source"]))
    check(run.head() == h0 + 1, "%s: head %d, want exactly one new id "
          "after %d" % (what, run.head(), h0))
    check(got["seq"] == h0 + 1, "%s: seq %d, want %d" % (what, got["seq"],
                                                          h0 + 1))

    changes = run.changes()
    if changes is not None:
        mine = [c for c in changes if c["seq"] > h0]
        check(len(mine) == 1, "%s: changelog has %r" % (what, mine))
        c = mine[0]
        check(c["key"] == KEY and c["value"] == value
              and c["source"] == source
              and c.get("unset_source", "") == unset,
              "%s: changelog entry %r" % (what, c))
    print("ok: %s" % what)


def expect_nothing(run, what, action):
    h0 = run.head()
    action()
    time.sleep(SETTLE_S)
    check(run.head() == h0, "%s: head moved %d -> %d" % (what, h0,
                                                         run.head()))
    print("ok: %s" % what)


def config(run, value):
    return run.base_config("%s: %s\n" % (KEY, value))


def main():
    run = Run(sys.argv)
    try:
        cfg = run.cfgdir
        v1 = os.path.join(cfg, "..v1")
        os.mkdir(v1)
        write_file(os.path.join(v1, "datadog.yaml"), config(run, 1))
        os.symlink("..v1", os.path.join(cfg, "..data"))
        os.symlink("..data/datadog.yaml", run.config)

        run.start()
        check(run.get(KEY)["value"] == 1, "initial value")
        check(run.status()["origin"] == "datadog.yaml", "origin")

        def swap():
            v2 = os.path.join(cfg, "..v2")
            os.mkdir(v2)
            write_file(os.path.join(v2, "datadog.yaml"), config(run, 2))
            os.symlink("..v2", os.path.join(cfg, "..data_tmp"))
            os.rename(os.path.join(cfg, "..data_tmp"),
                      os.path.join(cfg, "..data"))
            os.unlink(os.path.join(v1, "datadog.yaml"))
            os.rmdir(v1)
        expect_change(run, "symlink swap", swap, 2)

        def rename_over():
            tmp = run.config + ".tmp"
            write_file(tmp, config(run, 3))
            os.rename(tmp, run.config)
        expect_change(run, "rename-over", rename_over, 3)

        def in_place():
            with open(run.config, "r+") as f:
                f.seek(0)
                f.truncate()
                f.write(config(run, 4))
        expect_change(run, "in-place rewrite", in_place, 4)

        def recreate():
            os.unlink(run.config)
            write_file(run.config, config(run, 5))
        expect_change(run, "delete and recreate", recreate, 5)

        expect_nothing(run, "same content rewritten",
                       lambda: write_file(run.config, config(run, 5)))
        expect_nothing(run, "sighup without changes",
                       lambda: run.proc.send_signal(signal.SIGHUP))

        # A broken edit: nothing written, one positioned error line.
        h0 = run.head()
        errors0 = run.log_text().count(" error reload: ")
        write_file(run.config, config(run, 5) + "broken: [1, 2\n")
        pattern = re.compile(r" error reload: \S*datadog\.yaml:\d+:\d+: ")
        poll(lambda: run.log_text().count(" error reload: ") > errors0,
             "the reload error to be logged")
        time.sleep(SETTLE_S)
        line = [ln for ln in run.log_text().splitlines()
                if " error reload: " in ln][-1]
        check(pattern.search(line), "error line without position: " + line)
        check(run.head() == h0, "a broken edit wrote to the store")
        check(run.get(KEY)["value"] == 5, "a broken edit changed the value")
        st = run.status()
        check(not st["last_reload"]["ok"]
              and re.search(r"datadog\.yaml:\d+:\d+: ",
                            st["last_reload"]["error"]),
              "status does not report the failed reload: %r" % st)
        print("ok: broken edit refused: " + line.split(" reload: ", 1)[1])

        rc, _, err = run.ctl(["reload"])
        check(rc == 1 and re.search(r"datadog\.yaml:\d+:\d+: ", err),
              "ctl reload of a broken file: exit %d: %s" % (rc, err))
        check(run.head() == h0, "ctl reload of a broken file wrote")

        # A daemon setting the processes would refuse at their next start
        # is refused at reload too, with its position.
        errors0 = run.log_text().count(" error reload: ")
        write_file(run.config, config(run, 5).replace("log_level: debug",
                                                      "log_level: verbose"))
        poll(lambda: run.log_text().count(" error reload: ") > errors0,
             "the invalid log_level to be refused")
        line = [ln for ln in run.log_text().splitlines()
                if " error reload: " in ln][-1]
        check(re.search(r"datadog\.yaml:\d+:\d+: log_level: ", line),
              "invalid own setting without position: " + line)
        check(run.head() == h0, "an invalid own setting wrote to the store")
        print("ok: invalid own setting refused: "
              + line.split(" reload: ", 1)[1])

        expect_change(run, "fix picked up",
                      lambda: write_file(run.config, config(run, 6)), 6)
        check(run.status()["last_reload"]["ok"], "status after the fix")

        # Fleet policies: a watched directory, any file in it counts.
        fleet = os.path.join(run.dir, "fleet")
        os.mkdir(fleet)
        fleet_line = "fleet_policies_dir: %s\n" % fleet
        write_file(run.config, config(run, 6) + fleet_line)
        poll(lambda: (run.get("fleet_policies_dir") or {}).get("value")
             == fleet, "fleet_policies_dir to be set")

        def policy_added():
            tmp = os.path.join(fleet, ".policy.tmp")
            write_file(tmp, "%s: 7\n" % KEY)
            os.rename(tmp, os.path.join(fleet, "policy.yaml"))
        expect_change(run, "fleet policy added", policy_added, 7,
                      "fleet-policies")
        expect_change(run, "fleet policy removed",
                      lambda: os.unlink(os.path.join(fleet, "policy.yaml")),
                      6, "file", "fleet-policies")

        # A link to a file elsewhere: that file's directory is watched too.
        other = os.path.join(run.dir, "other")
        os.mkdir(other)
        real = os.path.join(other, "real.yaml")

        def link_elsewhere():
            write_file(real, config(run, 8) + fleet_line)
            tmp = run.config + ".lnk"
            os.symlink(real, tmp)
            os.rename(tmp, run.config)
        expect_change(run, "symlink to another directory", link_elsewhere,
                      8)

        def edit_target():
            with open(real, "r+") as f:
                f.seek(0)
                f.truncate()
                f.write(config(run, 9) + fleet_line)
        expect_change(run, "in-place edit of the link's target",
                      edit_target, 9)

        rc = run.stop()
        check(rc == 0, "resolver exit status %r on SIGTERM" % rc)
        check(not os.path.exists(run.socket), "control socket left behind")
    except SystemExit:
        print(run.log_text(), file=sys.stderr)
        raise
    finally:
        run.cleanup()


if __name__ == "__main__":
    main()
