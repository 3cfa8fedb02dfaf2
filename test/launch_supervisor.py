"""Run a command in its own session as a child subreaper and report every exit of it and its descendants.

Why: ``ros2 launch`` may exit before the nodes it started (SIGTERM to the whole group, as systemd or a
terminal hang-up sends it). An orphaned node is then re-parented to the nearest subreaper, so its exit
status reaches this script instead of init, and a test can check that the node itself ended cleanly.

Usage: ``python launch_supervisor.py LOG CMD...``. CMD's output goes to LOG; this script prints JSON lines
on stdout: ``{"started": PID}`` (CMD's pid, also its process group), then ``{"exit": PID, "code": N}`` for
each process reaped here, then ``{"done": true}`` once none is left.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def main(argv: list[str]) -> int:
    log_path, cmd = argv[0], argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), 'prctl(PR_SET_CHILD_SUBREAPER) failed')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    print(json.dumps({'started': proc.pid}), flush=True)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        print(json.dumps({'exit': pid, 'code': os.waitstatus_to_exitcode(status)}), flush=True)
    print(json.dumps({'done': True}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
