"""Copy stdin to stdout until N bytes have passed, then stop: a link that drops mid-session.

    rdb-restore --server | python cut_stream.py N

Unbuffered (``head -c`` holds small writes back, so the handshake would never arrive).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    left = int(sys.argv[1])
    while left > 0:
        data = os.read(0, min(left, 65536))
        if not data:
            return 0
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]
        left -= len(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
