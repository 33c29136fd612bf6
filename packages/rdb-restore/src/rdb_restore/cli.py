"""The ``rdb-restore`` command (temporary minimal version)."""

from __future__ import annotations

import sys
from typing import NoReturn

from rdb_restore.restore import RestoreOptions, restore


def main() -> NoReturn:
    args = sys.argv[1:]
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    at = None
    if "--at" in args:
        i = args.index("--at")
        at = args[i + 1]
        del args[i : i + 2]
    result = restore(args[0], args[1], at=at, options=RestoreOptions(force=force))
    print(result, file=sys.stderr)
    sys.exit(0)
