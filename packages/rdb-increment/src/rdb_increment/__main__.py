"""``python -m rdb_increment``."""

from rdb_increment.cli import main

main()
