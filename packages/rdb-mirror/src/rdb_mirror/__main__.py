"""``python -m rdb_mirror``: the rdb-mirror command."""

from rdb_mirror.cli import main

main()
