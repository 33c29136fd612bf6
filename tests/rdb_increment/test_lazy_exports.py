"""rdb_increment's names are imported on first use (rdb_format.lazy): a command that lists
increments does not load the removal code, and every name still resolves as before."""

from __future__ import annotations

import subprocess
import sys


def test_names_resolve_on_first_use_only() -> None:
    code = (
        "import sys\n"
        "import rdb_increment\n"
        "assert 'rdb_increment.remove' not in sys.modules\n"
        "from rdb_increment import remove_sessions, rebuild, RetentionPolicy\n"
        "import rdb_increment.remove as remove\n"
        "assert remove_sessions is remove.remove_sessions\n"
        "assert callable(rebuild) and rebuild.__module__ == 'rdb_increment.rebuild'\n"
        "assert {'remove_sessions', 'walk_increments', 'rebuild'} <= set(dir(rdb_increment))\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout == "ok\n", done.stderr
