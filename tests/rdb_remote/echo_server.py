"""A test server for the transport: echoes every message back (or misbehaves on request).

    python echo_server.py [HOST] [--protocol N] [--oldest N] [--program NAME] [--mode MODE]

MODE: ``echo`` (default), ``garbage`` (a malformed frame after the handshake), ``huge`` (a
frame announcing 4 GiB), ``die`` (exit 3 after the first message), ``text`` (prints a text
line instead of the handshake), ``slow-echo`` (echo, sleeping 0.2 s first each time),
``busy-echo`` (echo, its main thread busy for 5 s before the first answer), ``stall`` (stops
itself with SIGSTOP after the first message: a peer that stays connected and says nothing),
``flood`` (answers the first message with 14 notes of 5 MiB and a last small one, then
exits at once: a peer that said everything and left).
``--timeout SECONDS``: the server's inactivity timeout.
The optional HOST (what a remote schema puts for ``%s``) is ignored.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass

from rdb_format.errors import RdbError
from rdb_format.metadata import Record
from rdb_remote import Codec, Hello, serve_stdio


@dataclass(frozen=True, slots=True)
class Note:
    """A test message with one field of every kind the encoding carries."""

    number: int
    data: bytes
    text: str
    maybe: str | None
    flag: bool
    items: tuple[bytes, ...]
    record: Record | None = None


CODEC = Codec([Note])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host", nargs="?")
    parser.add_argument("--protocol", type=int, default=2)
    parser.add_argument("--oldest", type=int, default=1)
    parser.add_argument("--program", default="rdb-test")
    parser.add_argument("--mode", default="echo")
    parser.add_argument("--timeout", type=float, default=None)
    args = parser.parse_args()
    if args.mode == "text":
        print("Welcome to the machine", flush=True)
        return 0
    hello = Hello(args.program, "9.9", args.protocol, args.oldest)
    try:
        connection, _ = serve_stdio(hello, CODEC, timeout=args.timeout)
    except RdbError:
        return 17
    out = connection.raw_writer  # garbage goes around the writer thread (it is idle then)
    if args.mode in ("garbage", "huge"):  # at once: the client's messages need not decode
        out.write(b"\x00\x00\x00\x05Zjunk" if args.mode == "garbage" else b"\xff\xff\xff\xff")
        out.flush()
        connection.close()
        return 0
    while True:
        try:
            message = connection.receive()
        except RdbError:
            connection.close()
            return 0
        if args.mode == "die":
            os._exit(3)
        if args.mode == "slow-echo":
            time.sleep(0.2)
        if args.mode == "busy-echo":
            busy_until = time.monotonic() + 5  # the main thread busy, holding no lock
            while time.monotonic() < busy_until:
                sum(range(1000))
            args.mode = "echo"
        if args.mode == "flood":
            for number in range(14):
                connection.send(Note(number, bytes(5 << 20), "", None, False, ()))
            connection.send(Note(14, b"the end", "", None, True, ()))
            connection.close()
            return 0
        if args.mode == "stall":
            os.kill(os.getpid(), signal.SIGSTOP)
        connection.send(message)


if __name__ == "__main__":
    sys.exit(main())
