"""Statistics over an rdiff-backup 2.2 repository's history (the ``rdb-stats`` command).

The library entry point is :func:`rdb_stats.core.collect`; :mod:`rdb_stats.export` turns its
result into JSON/CSV, :mod:`rdb_stats.plot` into SVG/PNG pictures.
"""

__version__ = "0.1.0"
