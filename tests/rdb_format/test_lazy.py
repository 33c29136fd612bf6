"""rdb_format.lazy: a package's names resolve on first use, exactly as eager imports did."""

from __future__ import annotations

import pytest


def test_unknown_names_are_attribute_errors() -> None:
    from rdb_format.lazy import lazy_exports

    get, names = lazy_exports("rdb_format", {"rdb_format.timestamps": ("format_timestring",)})
    from rdb_format.timestamps import format_timestring

    assert get("format_timestring") is format_timestring
    assert "format_timestring" in names()
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        get("nope")
