"""Package namespaces whose names are imported on first use (PEP 562).

A command's start-up imports only what it runs: ``from rdb_increment import remove_sessions``
still works, but ``rdb-restore list`` no longer loads the removal code because
``rdb_increment/__init__`` imports it. Usage, in a package's ``__init__.py``::

    if TYPE_CHECKING:  # what type checkers and readers see
        from pkg.sub import Name
    __getattr__, __dir__ = lazy_exports(__name__, {"pkg.sub": ("Name",)})

A name that is also a submodule's name (``rdb_increment.rebuild``) must stay an eager import:
importing the submodule would set the package attribute to the module.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a module to its names."""
    where = {name: module for module, names in exports.items() for name in names}

    def get_attribute(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # looked up once
        return value

    def names() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return get_attribute, names
