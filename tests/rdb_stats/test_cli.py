"""The rdb-stats command: outputs, pictures, exit statuses and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from xml.etree import ElementTree

import pytest
from tests.rdb_stats.conftest import T1, T2, T3, Synthetic, stamp

from rdb_clikit.run import run
from rdb_stats.cli import app

SESSION_KEYS = {
    "time",
    "time_utc",
    "statistics",
    "statistics_complete",
    "errors",
    "error_log_entries",
    "error_types",
    "file_statistics_lines",
    "increment_bytes",
    "increment_files",
    "cumulative_bytes",
}
SUMMED = {
    "elapsed_time",
    "source_files",
    "source_file_size",
    "mirror_files",
    "mirror_file_size",
    "new_files",
    "new_file_size",
    "deleted_files",
    "deleted_file_size",
    "changed_files",
    "changed_source_size",
    "changed_mirror_size",
    "increment_files",
    "increment_file_size",
    "total_destination_size_change",
    "errors_reported",
    "errors",
}


def stats(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(app, prog="rdb-stats", argv=list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_matches_the_documented_schema(
    full_repo: Synthetic, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = stats(capsys, "--json", str(full_repo.root))
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert set(doc) == {
        "schema",
        "repository",
        "current_time",
        "range",
        "sessions",
        "averages",
        "totals",
        "counted",
        "growth",
        "minimum_ratio",
        "top",
        "warnings",
        "exit_code",
    }
    assert doc["schema"] == "rdb-stats/1"
    assert doc["current_time"] == T3
    assert doc["range"] == {"begin": None, "end": None}
    assert [s["time"] for s in doc["sessions"]] == [T1, T2, T3]
    for session in doc["sessions"]:
        assert set(session) == SESSION_KEYS
        assert set(session["statistics"]) == (SUMMED - {"errors"}) | {"start_time", "end_time"}
    assert doc["sessions"][1]["time_utc"] == stamp(T2)
    assert doc["sessions"][1]["errors"] == 2
    assert doc["sessions"][1]["error_types"] == {"UpdateError": 1, "ListError": 1}
    assert set(doc["averages"]) == set(doc["totals"]) == set(doc["counted"]) == SUMMED
    assert doc["averages"]["source_files"] == 20.0
    assert doc["totals"]["increment_file_size"] == 900
    assert doc["growth"] == {
        "mirror_bytes": 150,
        "mirror_entries": 5,
        "increment_bytes": 35,
        "total_bytes": 185,
    }
    assert set(doc["top"]) == {"source_size", "increment_size", "changed_files"}
    assert doc["top"]["source_size"][0] == {"path": "a/big", "value": 2700, "percent": 90.0}
    assert doc["warnings"] == []
    assert doc["exit_code"] == 0


def test_csv_has_one_row_per_session(
    full_repo: Synthetic, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = stats(capsys, "--csv", "--no-files", str(full_repo.root))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["time"]) for r in rows] == [T1, T2, T3]
    assert [r["source_files"] for r in rows] == ["10", "20", "30"]
    assert [r["errors"] for r in rows] == ["0", "2", "0"]
    assert [r["increment_bytes"] for r in rows] == ["30", "5", "0"]
    assert [r["cumulative_bytes"] for r in rows] == ["185", "155", "150"]


def test_tables_on_stdout(full_repo: Synthetic, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = stats(capsys, str(full_repo.root))
    assert (code, err) == (0, "")
    assert "Sessions" in out
    assert "average of 3" in out
    assert "Repository growth" in out
    assert "Top files and directories by source size" in out
    assert "a/big" in out
    assert "\x1b[" not in out  # not a terminal: no colour


def test_truncated_statistics_warn_on_stderr_and_exit_3(
    full_repo: Synthetic, capsys: pytest.CaptureFixture[str]
) -> None:
    path = full_repo.data_file("session_statistics", T2)
    path.write_bytes(path.read_bytes()[:100])
    code, out, err = stats(capsys, str(full_repo.root))
    assert code == 3
    assert f"rdb-stats: warning: session {stamp(T2)}: session_statistics" in err
    assert "truncated" in err
    assert "Sessions" in out
    code, out, err = stats(capsys, "--json", "-q", str(full_repo.root))
    assert code == 3
    assert err == ""
    doc = json.loads(out)
    assert doc["exit_code"] == 3
    assert len(doc["warnings"]) == 1


def test_not_a_repository_is_10_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = stats(capsys, str(tmp_path))
    assert code == 10
    assert out == ""
    assert err.startswith(f"rdb-stats: {tmp_path}: is not a backup repository")
    assert err.count("\n") == 1
    code, out, err = stats(capsys, "--json", str(tmp_path / "missing"))
    assert code == 10
    assert json.loads(out)["error"]["exit_code"] == 10


@pytest.mark.parametrize(
    "argv",
    [
        ["--begin-time", "yesterday"],
        ["--csv", "--json"],
        ["--plot", "x.gif"],
        ["--minimum-ratio", "-1"],
        ["--no-such-option"],
    ],
)
def test_usage_errors_are_2(
    full_repo: Synthetic, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = stats(capsys, *argv, str(full_repo.root))
    assert code == 2
    if "--json" in argv:  # with --json the error is a JSON object on stdout
        assert json.loads(out)["error"]["exit_code"] == 2
        return
    assert err.startswith("rdb-stats: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = stats(capsys, "--help")
    assert code == 0
    for text in ("--begin-time", "--minimum-ratio", "--plot", "Examples", "Exit status"):
        assert text in out


def test_svg_has_one_point_and_bar_per_session(
    full_repo: Synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "growth.svg"
    code, _, _ = stats(capsys, "--plot", str(picture), "--no-files", str(full_repo.root))
    assert code == 0
    root = ElementTree.parse(picture).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    points = root.findall(".//s:circle[@class='changed']", ns)
    bars = root.findall(".//s:rect[@class='increment']", ns)
    assert [int(p.get("data-time", "")) for p in points] == [T1, T2, T3]
    assert [int(b.get("data-time", "")) for b in bars] == [T1, T2, T3]
    xs = [float(p.get("cx", "")) for p in points]
    assert xs == sorted(xs)
    heights = [float(b.get("height", "")) for b in bars]  # IncrementFileSize 100 / 200 / 600
    assert heights[2] == pytest.approx(3 * heights[1], abs=0.02)
    assert heights[2] == pytest.approx(6 * heights[0], abs=0.02)
    # every session changed 4 + 5 + 1 files: the points share one height
    assert len({p.get("cy") for p in points}) == 1


def read_png(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, dict[bytes, bytes]()
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == height * (1 + 3 * width)
    rows = b"".join(raw[y * (1 + 3 * width) + 1 : (y + 1) * (1 + 3 * width)] for y in range(height))
    assert all(raw[y * (1 + 3 * width)] == 0 for y in range(height))
    return width, height, rows


def test_png_has_bars_and_points_in_each_sessions_columns(
    full_repo: Synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "growth.png"
    code, _, _ = stats(capsys, "--plot", str(picture), "--no-files", str(full_repo.root))
    assert code == 0
    width, height, pixels = read_png(picture.read_bytes())
    assert (width, height) == (800, 400)

    def pixel(x: int, y: int) -> tuple[int, ...]:
        start = (y * width + x) * 3
        return tuple(pixels[start : start + 3])

    # Documented geometry: margin 60, session i owns columns [60 + i*680/3, 60 + (i+1)*680/3).
    bottom, area = height - 60, height - 120
    bar, point, white = (70, 130, 180), (200, 40, 40), (255, 255, 255)
    for i, increment in enumerate((100, 200, 600)):
        left = 60 + i * 680 / 3
        edge = 60 + (i + 1) * 680 / 3
        quarter = int(left + (edge - left) / 4)  # inside the bar, beside the point
        top = bottom - area * increment / 600
        assert pixel(quarter, bottom - 1) == bar
        assert pixel(quarter, int(top) + 2) == bar
        assert pixel(quarter, int(top) - 3) == white
        center = int((left + edge) / 2)
        assert pixel(center, 60) == point  # every session has the most changes: at the top
    assert pixel(5, 5) == white


def test_installed_script_and_module(full_repo: Synthetic) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rdb_stats", "--json", "--no-files", str(full_repo.root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["sessions"]) == 3
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "rdb-stats"), "/nonexistent/repo"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 10
    assert proc.stderr == (
        "rdb-stats: /nonexistent/repo: does not exist; give the directory that was the "
        "backup destination\n"
    )
