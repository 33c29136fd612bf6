"""A stand-in for ssh in a --remote-schema (``python fake_ssh.py %s COMMAND...``): runs
COMMAND (what ssh would run on the host) with our stdin/stdout, stops the client that
started it at once (SIGSTOP: a client that stalls with its link open, before the end of
the handshake: the server's Python takes longer to start than that), and when the command ends
writes its exit status and how long it ran to the file named by $FAKE_SSH_REPORT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def main() -> int:
    command = sys.argv[2:]
    started = time.monotonic()
    server = subprocess.Popen(command)
    os.kill(os.getppid(), signal.SIGSTOP)
    status = server.wait()
    with open(os.environ["FAKE_SSH_REPORT"], "w") as report:
        report.write(f"{status} {time.monotonic() - started:.1f} {' '.join(command)}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
