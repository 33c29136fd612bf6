"""Fixtures of the rdb-remote tests: the real test sshd (tests/sshd.py)."""

from __future__ import annotations

from tests.sshd import sshd

__all__ = ["sshd"]
