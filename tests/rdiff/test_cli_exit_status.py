"""The rdiff command's exit statuses: 0 success, 1 environmental problem, 2 corrupt input,
3 internal error (the rdiff manual's table; librsync's own binary exits 100-108 instead),
130 / 143 when interrupted. Every failure prints one line (usage errors add rdiff's "Try"
paragraph), never a traceback, and leaves neither an output nor a temporary file behind.
"""

from __future__ import annotations

import io
import random
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
RDIFF = shutil.which("rdiff", path=str(BIN))
TIMEOUT = 60
TRY = b"\n\nTry `rdiff --help' for more information.\n"


def run(*args: str, cwd: Path, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    assert RDIFF is not None, f"rdiff console script not found in {BIN}"
    return subprocess.run(
        [RDIFF, *args], input=input, capture_output=True, cwd=cwd, timeout=TIMEOUT, check=False
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    rng = random.Random(99)
    old = rng.randbytes(100_000)
    new = old[:30_000] + b"changed" * 50 + old[30_000:90_000] + rng.randbytes(3000)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    (tmp_path / "tiny").write_bytes(b"0123456789")
    assert run("signature", "old", "old.sig", cwd=tmp_path).returncode == 0
    assert run("delta", "old.sig", "new", "new.delta", cwd=tmp_path).returncode == 0
    sig = (tmp_path / "old.sig").read_bytes()
    delta = (tmp_path / "new.delta").read_bytes()
    corrupt = {
        "trunc.sig": sig[:-7],
        "header.sig": sig[:6],
        "magic.sig": sig[:2] + bytes([sig[2] ^ 0xFF]) + sig[3:],
        "strong.sig": sig[:11] + b"\x40" + sig[12:],
        "random": rng.randbytes(5000),
        "trunc.delta": delta[:-1],
        "half.delta": delta[: len(delta) // 2],
        "magic.delta": delta[:1] + bytes([delta[1] ^ 1]) + delta[2:],
        "opcode.delta": delta[:4] + b"\xff" + delta[5:],
        # COPY 255 bytes from offset 240: beyond the end of a 10-byte basis
        "pastend.delta": b"rs\x026" + bytes([0x45, 0xF0, 0xFF]) + b"\x00",
    }
    for name, content in corrupt.items():
        (tmp_path / name).write_bytes(content)
    return tmp_path


def listing(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def check_failure(result: subprocess.CompletedProcess[bytes], status: int) -> str:
    """The exit status, one `rdiff: ` line (plus rdiff's Try paragraph), no traceback."""
    assert result.returncode == status, result.stderr
    assert b"Traceback" not in result.stderr
    text = result.stderr.removesuffix(TRY)
    assert text.startswith(b"rdiff: ")
    assert text.count(b"\n") == 1 and text.endswith(b"\n"), text
    return text.decode()


# --- 2: corrupt or truncated signature or delta ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["delta", "trunc.sig", "new"], "unexpected end of input"),
        (["delta", "header.sig", "new"], "unexpected end of input"),
        (["delta", "magic.sig", "new"], "bad magic number"),
        (["delta", "strong.sig", "new"], "stream corrupt"),
        (["delta", "random", "new"], "stream corrupt"),
        (["delta", "new.delta", "new"], "stream corrupt"),  # a delta given as signature
        (["patch", "old", "trunc.delta"], "unexpected end of input"),
        (["patch", "old", "half.delta"], "unexpected end of input"),
        (["patch", "old", "magic.delta"], "bad magic number"),
        (["patch", "old", "opcode.delta"], "stream corrupt"),
        (["patch", "old", "random"], "bad magic number"),
        (["patch", "old", "old.sig"], "bad magic number"),  # a signature given as delta
        (["patch", "tiny", "pastend.delta"], "copies past the end of basis"),
        (["patch", "--check-signature", "random", "old", "new.delta"], "not a signature"),
    ],
)
@pytest.mark.parametrize("to_file", [True, False])
def test_corrupt_input_exits_2(work: Path, args: list[str], expect: str, to_file: bool) -> None:
    before = listing(work)
    result = run(*args, *(["out"] if to_file else []), cwd=work)
    line = check_failure(result, 2)
    assert expect in line
    assert listing(work) == before  # no output, no temporary file
    if not to_file:
        # What was written to stdout before the damage cannot be taken back; it is a prefix.
        assert (work / "new").read_bytes().startswith(result.stdout)


def test_corrupt_delta_on_stdin_exits_2(work: Path) -> None:
    result = run("patch", "old", "-", "out", cwd=work, input=(work / "half.delta").read_bytes())
    check_failure(result, 2)
    assert not (work / "out").exists()


# --- 1: environmental problems: options, files, I/O -----------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--x"], "rdiff: unknown option: --x"),
        (["-j"], "rdiff: missing argument: -j"),
        ([], "rdiff: You must specify an action: `signature', `delta', or `patch'."),
        (["sgn", "old"], "rdiff: You must specify an action: `signature', `delta', or `patch'."),
        (["-b", "abc", "sig"], "rdiff: invalid numeric value: abc"),
        (["-b", "4294967296", "sig"], "rdiff: number too large or too small: 4294967296"),
        (["delta"], "rdiff: Usage for delta: rdiff [OPTIONS] delta SIGNATURE [NEWFILE [DELTA]]"),
        (["patch"], "rdiff: Usage for patch: rdiff [OPTIONS] patch BASIS [DELTA [NEW]]"),
        (["signature", "old", "o.sig", "x"], "rdiff: Too many arguments."),
        (["-H", "X", "signature", "old", "o.sig"], "rdiff: Unknown hash algorithm 'X'."),
        (["-R", "X", "signature", "old", "o.sig"], "rdiff: Unknown rollsum algorithm 'X'."),
    ],
)
def test_usage_errors_exit_1_with_try_help(work: Path, args: list[str], message: str) -> None:
    before = listing(work)
    result = run(*args, cwd=work)
    assert result.returncode == 1
    assert result.stderr == message.encode() + TRY
    assert result.stdout == b""
    assert listing(work) == before


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["-b", "-5", "signature", "old", "o.sig"], "rdiff: invalid -b/--block-size -5: "),
        (["-b", "2147483647", "signature", "old", "o"], "rdiff: invalid -b/--block-size"),
        (["-I", "-1", "signature", "old", "o.sig"], "rdiff: invalid -I/--input-size -1: "),
        (["-O", "2000000000", "patch", "old", "new.delta", "o"], "rdiff: invalid -O/"),
        (["-S", "33", "signature", "old", "o.sig"], "rdiff: invalid signature parameters"),
        (["-S", "-2", "signature", "old", "o.sig"], "rdiff: invalid -S/--sum-size -2: "),
        (["delta", "nope.sig", "new", "o"], 'rdiff: Error opening "nope.sig" for read: No such'),
        (["signature", "nope"], 'rdiff: Error opening "nope" for read: No such file'),
        (["signature", ".", "o.sig"], 'rdiff: Error opening "." for read: Is a directory'),
        (["signature", "old", "old.sig"], 'rdiff: File exists "old.sig", aborting!'),
        (["delta", "old.sig", "new", "/dev/null"], 'rdiff: File exists "/dev/null", aborting!'),
        (["signature", "old", "no/such/dir/o"], 'rdiff: Error opening "no/such/dir/o" for write'),
        (["-f", "signature", "old", "/dev/full"], "rdiff: Error writing"),
        (["-f", "patch", "old", "new.delta", "/dev/full"], "rdiff: Error writing"),
        (["patch", "--check-signature", "old.sig", "new", "new.delta", "o"], 'rdiff: Basis "new"'),
        (["patch", "--check-signature", "nope", "old", "new.delta", "o"], "rdiff: Error opening"),
    ],
)
def test_environment_errors_exit_1(work: Path, args: list[str], start: str) -> None:
    before = listing(work)
    line = check_failure(run(*args, cwd=work), 1)
    assert line.startswith(start), line
    assert listing(work) == before


def test_existing_output_is_untouched(work: Path) -> None:
    content = (work / "old.sig").read_bytes()
    check_failure(run("signature", "new", "old.sig", cwd=work), 1)
    assert (work / "old.sig").read_bytes() == content


def test_pipe_basis_exits_1(work: Path) -> None:
    result = run("patch", "-", "new.delta", "o", cwd=work, input=(work / "old").read_bytes())
    line = check_failure(result, 1)
    assert "stdin is not seekable" in line
    assert not (work / "o").exists()


# --- 0 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["-V", "--bogus"],
        ["signature", "old", "o.sig"],
        ["-f", "delta", "old.sig", "new", "/dev/null"],
        ["patch", "old", "new.delta", "o"],
        ["patch", "--check-signature", "old.sig", "old", "new.delta", "o"],
    ],
)
def test_success_exits_0(work: Path, args: list[str]) -> None:
    result = run(*args, cwd=work)
    assert (result.returncode, result.stderr) == (0, b"")


# --- 3: internal errors, in-process ----------------------------------------------------------


def test_internal_error_exits_3(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rdiff import api, cli

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(api, "signature", broken)
    monkeypatch.chdir(work)
    for verbose, traceback in ((False, False), (True, True)):
        err = io.StringIO()
        with redirect_stderr(err):
            status = cli.run([*(["-v"] if verbose else []), "signature", "old", "o.sig"])
        assert status == 3
        lines = err.getvalue().splitlines()
        assert "rdiff: internal error: ValueError: boom second line" in lines
        assert ("Traceback (most recent call last):" in lines) == traceback
        assert not (work / "o.sig").exists()
        assert listing(work) == listing(work) - {n for n in listing(work) if n.endswith(".tmp")}


def test_rdiff_error_statuses_in_process(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rdiff import api, cli
    from rdiff.errors import CorruptInput, InternalError

    monkeypatch.chdir(work)
    for error, status in ((CorruptInput("bad"), 2), (InternalError("oops"), 3)):

        def raising(*args: object, _error: Exception = error, **kwargs: object) -> None:
            raise _error

        monkeypatch.setattr(api, "signature", raising)
        err = io.StringIO()
        with redirect_stderr(err):
            assert cli.run(["signature", "old", "o.sig"]) == status
        assert err.getvalue() == f"rdiff: {error}\n"


# --- interrupted: 130 on SIGINT, 143 on SIGTERM, output cleaned up ---------------------------


def reading(pid: int) -> bool:
    """Whether the process sleeps in a pipe read (a signal sent just before the read()
    system call would only be acted on when the read returns: a CPython limitation)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() in ("anon_pipe_read", "pipe_read")
    except OSError:
        return True  # no /proc: the .tmp file and a pause must do
    finally:
        time.sleep(0.05)


def default_signals() -> None:
    # A shell's background job inherits SIGINT ignored, and one started by nohup SIGHUP:
    # rdiff rightly keeps them ignored then.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_interrupt_cleans_up(work: Path, signum: int, status: int) -> None:
    assert RDIFF is not None
    before = listing(work)
    proc = subprocess.Popen(
        [RDIFF, "delta", "old.sig", "-", "out.delta"], cwd=work, stdin=subprocess.PIPE,
        stderr=subprocess.PIPE, preexec_fn=default_signals,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write(b"x" * 100_000)
        proc.stdin.flush()
        deadline = time.monotonic() + TIMEOUT
        while not any(n.endswith(".tmp") for n in listing(work)) or not reading(proc.pid):
            assert time.monotonic() < deadline  # waiting for it to block reading stdin
            time.sleep(0.01)
        proc.send_signal(signum)
        assert proc.wait(TIMEOUT) == status
        assert b"Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stderr.close()
        proc.wait(TIMEOUT)
    assert listing(work) == before
