"""rdiff-backup 2.2 compatible repository format: names, times, records, state and errors."""

__version__ = "0.1.0"
