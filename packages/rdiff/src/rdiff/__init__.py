"""librsync's signature / delta / patch in Python, byte-compatible with rdiff 2.3.

The public API lives in :mod:`rdiff.api` and is re-exported here lazily, so that importing
``rdiff.cli`` for ``--help`` or ``--version`` does not load the C extension.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "Signature", "SignatureParams", "Stats", "signature", "signature_params", "iter_signature",
    "load_signature", "delta", "iter_delta", "patch", "iter_patch", "check_signature",
}

if TYPE_CHECKING:
    from rdiff.api import (
        Signature, SignatureParams, Stats, check_signature, delta, iter_delta, iter_patch,
        iter_signature, load_signature, patch, signature, signature_params,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        from rdiff import api

        return getattr(api, name)
    raise AttributeError(f"module 'rdiff' has no attribute {name!r}")
