"""``rdb-mirror --server`` whose repository side works SECONDS on each of its first two
regular files before going on (a big file's increment, a slow disk): slow, but alive; with
``stop`` for SECONDS, it stops itself (SIGSTOP) there instead: connected, silent.

    python slow_server.py SECONDS TIMEOUT [HOST]

(``TIMEOUT``: the server's --timeout; HOST, which a remote schema adds, is ignored.)
"""

from __future__ import annotations

import os
import signal
import sys
import time

from rdb_mirror import repo_side
from rdb_mirror.cli import run_cli


def main() -> int:
    seconds = float("inf") if sys.argv[1] == "stop" else float(sys.argv[1])
    process = repo_side.RepositorySide._process
    slowed: list[object] = []

    def slow(self: repo_side.RepositorySide, item: repo_side._Item) -> None:
        if len(slowed) < 2 and item.entry is not None and item.entry.record.type == "reg":
            slowed.append(item)
            if seconds == float("inf"):
                os.kill(os.getpid(), signal.SIGSTOP)
            else:
                time.sleep(seconds)  # (the main thread: nothing read or sent meanwhile)
        process(self, item)

    repo_side.RepositorySide._process = slow  # type: ignore[method-assign]
    return run_cli(["--server", "--timeout", sys.argv[2]])


if __name__ == "__main__":
    sys.exit(main())
