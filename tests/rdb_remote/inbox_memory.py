"""Prints the peak RSS (KiB) of a connection whose peer sends 96 frames of 15 MiB that
nobody receives, and how many of them the peer could write: what a hostile peer can make us
hold (run by test_transport.py)."""

from __future__ import annotations

import io
import os
import threading
import time

from tests.rdb_remote.echo_server import CODEC, Note

from rdb_remote.connection import Connection
from rdb_remote.framing import MAX_FRAME, write_frame

FRAMES = 96


def main() -> None:
    inbound, outbound = os.pipe()
    connection = Connection(
        io.FileIO(inbound, "rb"),
        io.FileIO(os.open(os.devnull, os.O_WRONLY), "wb"),
        CODEC,
        peer="peer",
    )
    connection.start()
    payload = CODEC.encode(Note(0, b"x" * (MAX_FRAME - (1 << 20)), "", None, False, ()))
    sent = [0]

    def flood() -> None:
        with io.FileIO(outbound, "wb") as pipe:
            for _ in range(FRAMES):
                write_frame(pipe, payload)
                sent[0] += 1

    threading.Thread(target=flood, daemon=True).start()
    last, still = -1, 0.0
    while still < 2.0 and sent[0] < FRAMES:  # until the peer is held back (or done)
        time.sleep(0.2)
        still = still + 0.2 if sent[0] == last else 0.0
        last = sent[0]
    time.sleep(1.0)
    print(_peak_rss_kib(), sent[0])


def _peak_rss_kib() -> int:
    """This process's peak RSS: VmHWM, the high-water mark of its own memory map. Not
    getrusage's ru_maxrss, which Linux carries over an exec from the image it replaced: a child
    of a big pytest process (vfork) would report the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main()
