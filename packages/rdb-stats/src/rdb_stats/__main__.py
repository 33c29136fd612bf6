"""``python -m rdb_stats``."""

from rdb_stats.cli import main

main()
