"""``python -m rdb_restore``: the rdb-restore command."""

from rdb_restore.cli import main

main()
