"""Command-line glue shared by the rdb-* commands (typer + rich).

Import the submodules directly (``rdb_clikit.run``, ``rdb_clikit.options``, ...). This package
module imports nothing, so a core may use :mod:`rdb_clikit.protocol` without loading rich.
"""

__version__ = "0.1.0"
