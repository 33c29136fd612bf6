"""librsync's signature / delta / patch in Python, byte-compatible with rdiff 2.3.

The public API lives in :mod:`rdiff.api` and is re-exported here lazily, so that importing
``rdiff.cli`` for ``--help`` or ``--version`` does not load the C extension.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs start-up time; see docs/architecture.md

__version__ = "0.1.0"
__all__ = [
    "Signature",
    "SignatureParams",
    "Stats",
    "check_signature",
    "delta",
    "iter_delta",
    "iter_patch",
    "iter_signature",
    "load_signature",
    "patch",
    "signature",
    "signature_params",
]

if TYPE_CHECKING:
    from rdiff.api import Signature as Signature
    from rdiff.api import SignatureParams as SignatureParams
    from rdiff.api import Stats as Stats
    from rdiff.api import check_signature as check_signature
    from rdiff.api import delta as delta
    from rdiff.api import iter_delta as iter_delta
    from rdiff.api import iter_patch as iter_patch
    from rdiff.api import iter_signature as iter_signature
    from rdiff.api import load_signature as load_signature
    from rdiff.api import patch as patch
    from rdiff.api import signature as signature
    from rdiff.api import signature_params as signature_params


def __getattr__(name: str) -> object:
    if name in __all__:
        from rdiff import api

        return getattr(api, name)
    raise AttributeError(f"module 'rdiff' has no attribute {name!r}")
