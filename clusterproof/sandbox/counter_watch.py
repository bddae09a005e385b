"""The watcher behind ``clusterproof sandbox fault counter NODE COUNTER DELTA --during-run``.

``python -m clusterproof.sandbox.counter_watch NODE_DIR NETNS COUNTER DELTA``: waits (up to 10 minutes) until a
process named ``*_perf`` (a collective: the nccl-tests stand-in) runs in the node's network namespace, then
grows the node's counter by DELTA and exits. Started and stopped (by its pid file) by :mod:`health_faults`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from clusterproof.sandbox import health_standins as st

POLL_S = 0.02
GIVE_UP_S = 600.0


def collective_running(netns_inode: int) -> bool:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv0 = Path(entry.path, "cmdline").read_bytes().split(b"\0", 1)[0]
            if argv0.rsplit(b"/", 1)[-1].endswith(b"_perf") and os.stat(f"{entry.path}/ns/net").st_ino == netns_inode:
                return True
        except OSError:
            continue
    return False


def main(argv: list[str]) -> int:
    node_dir, netns, counter, delta = Path(argv[0]), argv[1], argv[2], int(argv[3])
    inode = os.stat(f"/run/netns/{netns}").st_ino
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        if collective_running(inode):
            st.write_counter(node_dir, counter, st.read_counter(node_dir, counter) + delta)
            (st.standin_dir(node_dir) / "counter-watch.pid").unlink(missing_ok=True)
            return 0
        time.sleep(POLL_S)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
