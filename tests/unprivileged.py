"""Run a command as a user would: as root, without the capabilities that bypass permission
checks (util-linux setpriv), so that a file's mode denies access as it would to a user."""

from __future__ import annotations

import os

_NO_OVERRIDE = "-dac_override,-dac_read_search"

#: A command prefix (empty when not root).
AS_A_USER = (
    ["setpriv", f"--inh-caps={_NO_OVERRIDE}", f"--bounding-set={_NO_OVERRIDE}"]
    if os.geteuid() == 0
    else []
)
