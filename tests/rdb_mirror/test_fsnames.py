"""The quoting a new repository gets from what its destination can store in a name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdb_format.quoting import ESCAPE_DOS_DEVICES, ESCAPE_TRAILING_SPACES, Quoting
from rdb_mirror.fsnames import NameSupport, choose_quoting, probe_names, source_case_sensitive


@pytest.mark.parametrize(
    ("support", "source_sensitive", "chars", "escapes"),
    [
        (NameSupport(), True, b"", set()),
        (NameSupport(case_sensitive=False), True, b"A-Z;", set()),
        (NameSupport(case_sensitive=False), False, b"", set()),
        (NameSupport(control_characters=False), True, b"\\000-\\037;", set()),
        (
            NameSupport(
                case_sensitive=False,
                control_characters=False,
                windows_reserved=False,
                dos_devices=False,
                trailing_dots_and_spaces=False,
            ),
            True,
            b'A-Z\\000-\\037"*:<>?\\\\|\\177;',
            {ESCAPE_DOS_DEVICES, ESCAPE_TRAILING_SPACES},
        ),
    ],
)
def test_choose_quoting(
    support: NameSupport, source_sensitive: bool, chars: bytes, escapes: set[str]
) -> None:
    quoting = choose_quoting(support, source_sensitive)
    assert quoting == Quoting(chars, frozenset(escapes))


def test_a_case_insensitive_destination_quotes_capitals_as_rdiff_backup_does() -> None:
    quoting = choose_quoting(NameSupport(case_sensitive=False))
    assert quoting.quote(b"Sub") == b";083ub"
    assert quoting.quote(b"semi;colon") == b"semi;059colon"
    assert quoting.unquote(b";083ub") == b"Sub"
    windows = choose_quoting(NameSupport(windows_reserved=False))
    assert windows.quote(b"a:b") == b"a;058b"
    assert windows.quotes_colon  # then time strings are written in the compatible form


def test_probe_of_a_linux_file_system(tmp_path: Path) -> None:
    assert probe_names(os.fsencode(tmp_path)) == NameSupport()
    assert os.listdir(tmp_path) == []  # the probe leaves nothing behind


def test_probe_sees_what_the_file_system_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refusing(path: bytes, flags: int, mode: int = 0o777) -> int:
        name = os.path.basename(path)
        if b":" in name or b"\x01" in name:
            raise OSError(22, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refusing)
    support = probe_names(os.fsencode(tmp_path))
    monkeypatch.undo()
    assert support == NameSupport(control_characters=False, windows_reserved=False)


def test_source_case_sensitivity_is_asked_read_only(tmp_path: Path) -> None:
    sensitive, insensitive = tmp_path / "a", tmp_path / "b"
    sensitive.mkdir()
    insensitive.mkdir()
    (sensitive / "Name").write_bytes(b"")
    (insensitive / "Name").write_bytes(b"")
    os.link(insensitive / "Name", insensitive / "nAME")  # as a case-insensitive lookup answers
    assert source_case_sensitive(os.fsencode(sensitive))
    assert not source_case_sensitive(os.fsencode(insensitive))
    assert source_case_sensitive(os.fsencode(tmp_path / "missing"))
