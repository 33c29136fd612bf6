"""The rdiff command: its parser in-process, and the installed console script in subprocesses.

What is asserted is what a user sees: output bytes, exit status, the text on stderr.
Exit statuses for every kind of failure are in test_cli_exit_status.py.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rdiff import _argv
from rdiff._argv import ArgvError, parse

BIN = Path(sys.executable).parent
RDIFF = shutil.which("rdiff", path=str(BIN))
TIMEOUT = 60
TRY = "\n\nTry `rdiff --help' for more information.\n"


def run(
    *args: str | Path, input: bytes | None = None, cwd: Path | None = None, exe: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    assert RDIFF is not None, f"rdiff console script not found in {BIN}"
    return subprocess.run(
        [exe or RDIFF, *map(str, args)],
        input=input if input is not None else b"",
        capture_output=True,
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    rng = random.Random(1234)
    old = rng.randbytes(150_000)
    new = old[:40_000] + b"inserted text" * 100 + old[41_000:120_000] + rng.randbytes(5_000)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    (tmp_path / "small").write_bytes(rng.randbytes(1024))
    return tmp_path


def without_ours(args: list[str]) -> list[str]:
    """The arguments minus our -j N, for the reference rdiff (which has no such option)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "-j":
            skip = True
        else:
            out.append(arg)
    return out


def listing(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


# --- the parser, in-process -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "attr", "value"),
    [
        (["-b", "1024"], "block_size", 1024),
        (["-b1024"], "block_size", 1024),
        (["-b=1024"], "block_size", 1024),
        (["--block-size", "2048"], "block_size", 2048),
        (["--block-size=2048"], "block_size", 2048),
        (["--block-size="], "block_size", 0),
        (["-b", "0x10"], "block_size", 16),
        (["-b", "010"], "block_size", 8),
        (["-b", " 12"], "block_size", 12),
        (["-b", "+256"], "block_size", 256),
        (["-S", "-1"], "sum_size", -1),
        (["-S-1"], "sum_size", -1),
        (["--sum-size", "-1"], "sum_size", -1),
        (["--sum-size=8"], "sum_size", 8),
        (["-H", "md4"], "hash", "md4"),
        (["-Hmd4"], "hash", "md4"),
        (["--hash", "md4"], "hash", "md4"),
        (["--hash=md4"], "hash", "md4"),
        (["-R", "rollsum"], "rollsum", "rollsum"),
        (["-Rrollsum"], "rollsum", "rollsum"),
        (["--rollsum", "rollsum"], "rollsum", "rollsum"),
        (["--rollsum=rollsum"], "rollsum", "rollsum"),
        (["-I", "4096"], "input_size", 4096),
        (["-I4096"], "input_size", 4096),
        (["--input-size", "4096"], "input_size", 4096),
        (["--input-size=4096"], "input_size", 4096),
        (["-O", "4096"], "output_size", 4096),
        (["-O4096"], "output_size", 4096),
        (["--output-size", "4096"], "output_size", 4096),
        (["--output-size=4096"], "output_size", 4096),
        (["-j", "3"], "jobs", 3),
        (["-j3"], "jobs", 3),
        (["--jobs", "3"], "jobs", 3),
        (["--jobs=3"], "jobs", 3),
        (["-f"], "force", True),
        (["--force"], "force", True),
        (["-s"], "statistics", True),
        (["--statistics"], "statistics", True),
        (["--stats"], "statistics", True),
        (["-v"], "verbose", True),
        (["--verbose"], "verbose", True),
        (["-b", "256", "-b", "512"], "block_size", 512),
    ],
)
def test_option_forms(argv: list[str], attr: str, value: object) -> None:
    # Options are accepted anywhere: before, between and after the operands.
    for where in range(3):
        words = ["signature", "a", "b"]
        opts = parse([*words[:where], *argv, *words[where:]], {})
        assert getattr(opts, attr) == value
        assert opts.action == "signature"
        assert opts.operands == ["a", "b"]


def test_bundled_flags_and_value() -> None:
    opts = parse(["-fsb1024", "sig", "x"], {})
    assert (opts.force, opts.statistics, opts.block_size) == (True, True, 1024)
    opts = parse(["-fb", "1024", "sig"], {})
    assert (opts.force, opts.block_size) == (True, 1024)


def test_check_signature_option() -> None:
    for argv in (["--check-signature", "s"], ["--check-signature=s"]):
        opts = parse(["patch", *argv, "b", "d", "n"], {})
        assert opts.check_signature == "s"
        assert opts.operands == ["b", "d", "n"]


@pytest.mark.parametrize(
    ("word", "action"),
    [
        ("signature", "signature"),
        ("sig", "signature"),
        ("s", "signature"),
        ("", "signature"),
        ("delta", "delta"),
        ("d", "delta"),
        ("patch", "patch"),
        ("p", "patch"),
    ],
)
def test_action_prefixes(word: str, action: str) -> None:
    assert parse([word, "x"], {}).action == action


def test_operands_dash_and_double_dash() -> None:
    assert parse(["sig", "-", "-"], {}).operands == ["-", "-"]
    assert parse(["--", "sig", "-x"], {}).operands == ["-x"]
    assert parse(["sig", "--", "-f"], {}).operands == ["-f"]
    assert parse(["sig", "--", "-f"], {}).force is False


def test_posixly_correct_stops_at_first_operand() -> None:
    assert parse(["sig", "-s", "a"], {}).statistics is True
    opts = parse(["sig", "-s", "a"], {"POSIXLY_CORRECT": "1"})
    assert (opts.statistics, opts.operands) == (False, ["-s", "a"])


@pytest.mark.parametrize(
    ("argv", "show"),
    [
        (["-V"], "version"),
        (["--version"], "version"),
        (["-V", "-x"], "version"),
        (["-Vx"], "version"),
        (["-sfV"], "version"),
        (["-h"], "help"),
        (["-?"], "help"),
        (["--help"], "help"),
        (["-h", "-V"], "help"),
        (["-?", "--bogus"], "help"),
    ],
)
def test_help_and_version_act_when_read(argv: list[str], show: str) -> None:
    assert parse(argv, {}).show == show


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-x", "-V"], "unknown option: -x"),
        (["-sx", "sig"], "unknown option: -sx"),
        (["--x", "sig"], "unknown option: --x"),
        (["--blo", "1024", "sig"], "unknown option: --blo"),  # popt: no prefix matching
        (["--block=1024", "sig"], "unknown option: --block=1024"),
        (["--h"], "unknown option: --h"),
        (["-z", "sig"], "unknown option: -z"),
        (["--debug", "sig"], "unknown option: --debug"),
        (["--statistics=1", "sig"], "option does not take an argument: --statistics=1"),
        (["-f=1", "sig"], "option does not take an argument: -f=1"),
        (["-b"], "missing argument: -b"),
        (["--hash"], "missing argument: --hash"),
        (["-b", "abc", "sig"], "invalid numeric value: abc"),
        (["-S", "abc", "sig"], "invalid numeric value: abc"),
        (["-bs", "sig"], "invalid numeric value: -bs"),
        (["-b", "sig", "x"], "invalid numeric value: sig"),
        (["-b", "1k", "sig"], "invalid numeric value: 1k"),
        (["-b", "08", "sig"], "invalid numeric value: 08"),
        (["-b", "12 ", "sig"], "invalid numeric value: 12 "),
        (["-j", "x", "sig"], "invalid numeric value: x"),
        (["-b", "99999999999", "sig"], "number too large or too small: 99999999999"),
        (["-S", "2147483648", "sig"], "number too large or too small: 2147483648"),
        ([], "You must specify an action: `signature', `delta', or `patch'."),
        (["--"], "You must specify an action: `signature', `delta', or `patch'."),
        (["Sig", "x"], "You must specify an action: `signature', `delta', or `patch'."),
        (["signatures"], "You must specify an action: `signature', `delta', or `patch'."),
        (["delta"], "Usage for delta: rdiff [OPTIONS] delta SIGNATURE [NEWFILE [DELTA]]"),
        (["patch"], "Usage for patch: rdiff [OPTIONS] patch BASIS [DELTA [NEW]]"),
        (["sig", "a", "b", "c"], "Too many arguments."),
        (["delta", "a", "b", "c", "d"], "Too many arguments."),
        (["patch", "a", "b", "c", "d"], "Too many arguments."),
        (["-H", "sha1", "sig"], "Unknown hash algorithm 'sha1'."),
        (["--hash=", "sig"], "Unknown hash algorithm ''."),
        (["-H", "-f", "sig"], "Unknown hash algorithm '-f'."),
        (["-R", "adler", "sig"], "Unknown rollsum algorithm 'adler'."),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ArgvError) as caught:
        parse(argv, {})
    assert str(caught.value) == message
    assert caught.value.try_help
    assert caught.value.exit_status == 1


def test_hash_and_rollsum_checked_for_signature_only() -> None:
    # As rdiff: delta and patch ignore -H and -R.
    assert parse(["-H", "bogus", "delta", "s"], {}).hash == "bogus"


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["-b", "-5", "sig"], "invalid -b/--block-size -5:"),
        (["-b", "2147483647", "sig"], "invalid -b/--block-size 2147483647:"),
        (["-I", "-1", "sig"], "invalid -I/--input-size -1:"),
        (["-O", "-1", "sig"], "invalid -O/--output-size -1:"),
        (["-O", "2000000000", "sig"], "invalid -O/--output-size 2000000000:"),
        (["-S", "-2", "sig"], "invalid -S/--sum-size -2:"),
        (["-j", "-1", "sig"], "invalid -j/--jobs -1:"),
        (["--check-signature", "s", "delta", "x"], "--check-signature is an option of patch"),
    ],
)
def test_range_errors(argv: list[str], start: str) -> None:
    with pytest.raises(ArgvError) as caught:
        parse(argv, {})
    assert str(caught.value).startswith(start)
    assert "\n" not in str(caught.value)


def test_c_int_follows_strtol() -> None:
    assert _argv.c_int("", "") == 0
    assert _argv.c_int("0X1f", "") == 31
    assert _argv.c_int("-2147483648", "") == -(2**31)
    for bad in ("+", "-", "0x", "1_0", "１２", " ", "0b1"):
        with pytest.raises(ArgvError):
            _argv.c_int(bad, bad)


# --- the command: round trips, stdin and stdout ---------------------------------------------


def test_round_trip_files(work: Path) -> None:
    assert run("signature", "old", "old.sig", cwd=work).returncode == 0
    assert run("delta", "old.sig", "new", "new.delta", cwd=work).returncode == 0
    result = run("patch", "old", "new.delta", "out", cwd=work)
    assert (result.returncode, result.stderr) == (0, b"")
    assert (work / "out").read_bytes() == (work / "new").read_bytes()


def test_round_trip_pipes(work: Path) -> None:
    sig = run("signature", input=(work / "old").read_bytes())
    assert sig.returncode == 0 and sig.stdout
    (work / "old.sig").write_bytes(sig.stdout)
    delta = run("delta", "old.sig", input=(work / "new").read_bytes(), cwd=work)
    assert delta.returncode == 0
    patched = run("patch", "old", "-", "-", input=delta.stdout, cwd=work)
    assert patched.returncode == 0
    assert patched.stdout == (work / "new").read_bytes()
    # A delta given as '-' and an omitted output are the same thing.
    assert run("patch", "old", input=delta.stdout, cwd=work).stdout == patched.stdout


def test_prefix_actions_work(work: Path) -> None:
    assert run("s", "old", "a.sig", cwd=work).returncode == 0
    assert run("d", "a.sig", "new", "a.delta", cwd=work).returncode == 0
    assert run("p", "old", "a.delta", "a.out", cwd=work).returncode == 0
    assert (work / "a.out").read_bytes() == (work / "new").read_bytes()


def test_ssh_style_pipeline(work: Path) -> None:
    # rdiff signature old | rdiff delta - new | rdiff patch old - out
    assert RDIFF is not None
    sig = subprocess.Popen([RDIFF, "signature", "old"], cwd=work, stdout=subprocess.PIPE)
    delta = subprocess.Popen(
        [RDIFF, "delta", "-", "new"], cwd=work, stdin=sig.stdout, stdout=subprocess.PIPE
    )
    assert sig.stdout is not None
    sig.stdout.close()
    out = subprocess.run(
        [RDIFF, "patch", "old", "-", "out"], cwd=work, stdin=delta.stdout, timeout=TIMEOUT
    )
    assert delta.stdout is not None
    delta.stdout.close()
    assert delta.wait(TIMEOUT) == 0 and sig.wait(TIMEOUT) == 0
    assert out.returncode == 0
    assert (work / "out").read_bytes() == (work / "new").read_bytes()


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["-j", "1"],
        ["-b", "1024"],
        ["-b1024", "-S-1"],
        ["--hash=md4", "--rollsum", "rollsum"],
        ["-S", "8", "-Hmd4"],
        ["-I", "100", "-O", "7"],
    ],
)
def test_signature_bytes_equal_reference(
    work: Path, reference_rdiff: str, options: list[str]
) -> None:
    ours = run(*options, "signature", "old", "ours.sig", cwd=work)
    theirs = run(
        *without_ours(options), "signature", "old", "ref.sig", cwd=work, exe=reference_rdiff
    )
    assert ours.returncode == theirs.returncode == 0
    assert (work / "ours.sig").read_bytes() == (work / "ref.sig").read_bytes()
    assert ours.stderr == theirs.stderr


def test_delta_bytes_equal_reference(work: Path, reference_rdiff: str) -> None:
    run("signature", "old", "old.sig", cwd=work, exe=reference_rdiff)
    ours = run("delta", "old.sig", "new", cwd=work)
    theirs = run("delta", "old.sig", "new", cwd=work, exe=reference_rdiff)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout


def test_weak_sum_warning_as_rdiff_prints_it(work: Path, reference_rdiff: str) -> None:
    ours = run("-S", "2", "signature", "small", cwd=work)
    theirs = run("-S", "2", "signature", "small", cwd=work, exe=reference_rdiff)
    assert ours.returncode == 0
    assert ours.stderr == theirs.stderr
    assert ours.stderr.startswith(b"librsync: Warning: (rs_sig_args) strong_len=2 smaller")
    assert ours.stdout == theirs.stdout


def test_python_dash_m(work: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rdiff", "signature", "small"],
        cwd=work,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == run("signature", "small", cwd=work).stdout


# --- statistics, verbose, help, version -----------------------------------------------------


def _before_speed(stderr: bytes) -> list[str]:
    return [line.split(" speed[")[0] for line in stderr.decode().splitlines()]


@pytest.mark.parametrize(
    "action",
    [
        ["signature", "old", "{out}"],
        ["signature", "-j", "1", "old", "{out}"],
        ["delta", "old.sig", "new", "{out}"],
        ["delta", "empty.sig", "new", "{out}"],
        ["patch", "old", "new.delta", "{out}"],
    ],
)
def test_statistics_equal_reference(work: Path, reference_rdiff: str, action: list[str]) -> None:
    run("signature", "old", "old.sig", cwd=work, exe=reference_rdiff)
    (work / "empty").write_bytes(b"")
    run("signature", "empty", "empty.sig", cwd=work, exe=reference_rdiff)
    run("delta", "old.sig", "new", "new.delta", cwd=work, exe=reference_rdiff)
    ours = run("-s", *[a.format(out="ours") for a in action], cwd=work)
    theirs_args = without_ours([a.format(out="theirs") for a in action])
    theirs = run("-s", *theirs_args, cwd=work, exe=reference_rdiff)
    assert ours.returncode == theirs.returncode == 0
    lines = _before_speed(ours.stderr)
    assert lines == _before_speed(theirs.stderr)
    assert lines and all(line.startswith("librsync: ") for line in lines)
    assert (work / "ours").read_bytes() == (work / "theirs").read_bytes()


def test_statistics_order_for_delta(work: Path) -> None:
    run("signature", "old", "old.sig", cwd=work)
    result = run("--stats", "delta", "old.sig", "new", "d", cwd=work)
    ops = [line.split(" statistics")[0] for line in result.stderr.decode().splitlines()]
    assert ops == ["librsync: loadsig", "librsync: match", "librsync: delta"]


def test_verbose_says_trace_unsupported(work: Path, reference_rdiff: str) -> None:
    ours = run("-v", "signature", "small", cwd=work)
    theirs = run("-v", "signature", "small", cwd=work, exe=reference_rdiff)
    assert ours.returncode == 0
    assert ours.stderr == theirs.stderr == b"rdiff: Library does not support trace.\n"


def test_help(reference_rdiff: str) -> None:
    ours = run("--help")
    theirs = run("--help", exe=reference_rdiff)
    assert (ours.returncode, ours.stderr) == (0, b"")
    # rdiff's text first, unchanged, then our extras.
    assert ours.stdout.startswith(theirs.stdout)
    extra = ours.stdout[len(theirs.stdout) :].decode()
    assert "-j, --jobs=N" in extra and "--check-signature=SIG" in extra
    assert "rdiff signature old | ssh host rdiff delta - new | rdiff patch old - out" in extra
    for spelling in ("-h", "-?"):
        assert run(spelling).stdout == ours.stdout


def test_version(reference_rdiff: str) -> None:
    ours = run("--version")
    theirs = run("--version", exe=reference_rdiff)
    assert (ours.returncode, ours.stderr) == (0, b"")
    first, *rest = ours.stdout.decode().splitlines()
    assert first == theirs.stdout.decode().splitlines()[0] == "rdiff (librsync 2.3.2)"
    assert rest[0].startswith("rdiff 0.1.0: the Python rdiff")
    assert "\n".join(rest[1:]) == "\n".join(theirs.stdout.decode().splitlines()[1:])
    assert run("-V").stdout == ours.stdout


def test_help_and_version_do_not_load_the_extension() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from rdiff import cli\n"
        "for arg in ('--help', '--version'):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert cli.run([arg]) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('rdiff')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=TIMEOUT, check=True
    )
    loaded = result.stdout.decode()
    assert "_librsync" not in loaded and "rdiff.api" not in loaded, loaded


# --- outputs: force, existing files, temp files ---------------------------------------------


def test_existing_output_refused_and_unchanged(work: Path) -> None:
    (work / "old.sig").write_bytes(b"precious")
    before = listing(work)
    result = run("signature", "old", "old.sig", cwd=work)
    assert result.returncode == 1
    assert result.stderr == b'rdiff: File exists "old.sig", aborting!\n'
    assert (work / "old.sig").read_bytes() == b"precious"
    assert listing(work) == before


def test_dev_null_counts_as_existing(work: Path) -> None:
    result = run("signature", "old", "/dev/null", cwd=work)
    assert result.returncode == 1
    assert result.stderr == b'rdiff: File exists "/dev/null", aborting!\n'
    assert run("-f", "signature", "old", "/dev/null", cwd=work).returncode == 0


def test_force_replaces_regular_file_keeping_mode(work: Path) -> None:
    target = work / "old.sig"
    target.write_bytes(b"x" * 1_000_000)
    target.chmod(0o640)
    inode = target.stat().st_ino
    result = run("-f", "signature", "old", "old.sig", cwd=work)
    assert (result.returncode, result.stderr) == (0, b"")
    assert target.read_bytes() == run("signature", "old", cwd=work).stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert listing(work) == {"old", "new", "small", "old.sig"}


def test_new_output_mode_follows_umask(work: Path) -> None:
    assert run("signature", "old", "a.sig", cwd=work).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((work / "a.sig").stat().st_mode) == 0o666 & ~umask


def test_force_writes_fifo_in_place(work: Path) -> None:
    fifo = work / "fifo"
    os.mkfifo(fifo)
    assert RDIFF is not None
    proc = subprocess.Popen(
        [RDIFF, "-f", "signature", "small", "fifo"], cwd=work, stderr=subprocess.PIPE
    )
    with open(fifo, "rb") as reader:
        got = reader.read()
    assert proc.wait(TIMEOUT) == 0
    assert proc.stderr is not None
    proc.stderr.close()
    assert got == run("signature", "small", cwd=work).stdout
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_force_through_symlink_replaces_target(work: Path) -> None:
    (work / "target").write_bytes(b"old")
    (work / "link").symlink_to("target")
    assert run("-f", "signature", "small", "link", cwd=work).returncode == 0
    assert (work / "link").is_symlink()
    assert (work / "target").read_bytes() == run("signature", "small", cwd=work).stdout


def test_too_many_arguments_creates_nothing(work: Path) -> None:
    before = listing(work)
    result = run("signature", "old", "new.sig", "extra", cwd=work)
    assert result.returncode == 1
    assert result.stderr == b"rdiff: Too many arguments." + TRY.encode()
    assert listing(work) == before  # rdiff 2.3.2 leaves an empty new.sig


def test_bad_hash_creates_nothing(work: Path) -> None:
    before = listing(work)
    result = run("-H", "sha1", "signature", "old", "new.sig", cwd=work)
    assert result.returncode == 1
    assert result.stderr == b"rdiff: Unknown hash algorithm 'sha1'." + TRY.encode()
    assert listing(work) == before


def test_missing_input(work: Path) -> None:
    result = run("delta", "nope.sig", "new", "out", cwd=work)
    assert result.returncode == 1
    assert result.stderr == b'rdiff: Error opening "nope.sig" for read: No such file or directory\n'
    assert not (work / "out").exists()


def test_open_order_input_before_output(work: Path) -> None:
    # As rdiff: the basis is opened before the output, so its error is the one reported.
    (work / "exists").write_bytes(b"")
    result = run("signature", "nope", "exists", cwd=work)
    assert result.stderr.startswith(b'rdiff: Error opening "nope" for read')


def test_write_error_dev_full(work: Path) -> None:
    assert RDIFF is not None, f"rdiff console script not found in {BIN}"
    result = run("-f", "signature", "old", "/dev/full", cwd=work)
    assert result.returncode == 1
    assert result.stderr.count(b"\n") == 1
    assert b"No space left on device" in result.stderr
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [RDIFF, "patch", "old", "-"], cwd=work, stdout=full, stderr=subprocess.PIPE,
            input=b"rs\x026\x00", timeout=TIMEOUT, check=False,
        )  # fmt: skip
    assert proc.returncode == 0  # an empty result: nothing to write, nothing fails
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [RDIFF, "signature", "old"], cwd=work, stdout=full, stderr=subprocess.PIPE,
            timeout=TIMEOUT, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count(b"\n") == 1 and b"No space left on device" in proc.stderr


def test_failure_leaves_no_output_nor_temp(work: Path) -> None:
    (work / "bad.sig").write_bytes((work / "small").read_bytes())
    before = listing(work)
    result = run("delta", "bad.sig", "new", "out.delta", cwd=work)
    assert result.returncode == 2
    assert listing(work) == before


def test_broken_pipe_is_quiet(work: Path) -> None:
    big = work / "big"
    big.write_bytes(random.Random(5).randbytes(4_000_000))
    (work / "empty.sig").write_bytes(run("signature", input=b"").stdout)
    assert RDIFF is not None
    proc = subprocess.Popen(
        [RDIFF, "delta", "empty.sig", "big"], cwd=work, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()
    assert proc.wait(TIMEOUT) == 1
    assert proc.stderr.read() == b""
    proc.stderr.close()


# --- patch: --check-signature, non-seekable basis -------------------------------------------


def test_check_signature_accepts_right_basis(work: Path) -> None:
    run("signature", "old", "old.sig", cwd=work)
    run("delta", "old.sig", "new", "new.delta", cwd=work)
    result = run("patch", "--check-signature", "old.sig", "old", "new.delta", "out", cwd=work)
    assert (result.returncode, result.stderr) == (0, b"")
    assert (work / "out").read_bytes() == (work / "new").read_bytes()


def test_check_signature_refuses_wrong_basis(work: Path) -> None:
    run("signature", "old", "old.sig", cwd=work)
    run("delta", "old.sig", "new", "new.delta", cwd=work)
    before = listing(work)
    result = run("patch", "--check-signature=old.sig", "new", "new.delta", "out", cwd=work)
    assert result.returncode == 1
    assert result.stderr == (
        b'rdiff: Basis "new" does not match signature "old.sig": this delta was made for '
        b"another file; nothing was written.\n"
    )
    assert listing(work) == before
    # to stdout: nothing written either
    result = run("patch", "--check-signature", "old.sig", "new", "new.delta", cwd=work)
    assert (result.returncode, result.stdout) == (1, b"")


def test_non_seekable_basis(work: Path) -> None:
    run("signature", "old", "old.sig", cwd=work)
    run("delta", "old.sig", "new", "new.delta", cwd=work)
    before = listing(work)
    result = run("patch", "-", "new.delta", "out", input=(work / "old").read_bytes(), cwd=work)
    assert result.returncode == 1
    assert result.stderr == (
        b"rdiff: Basis stdin is not seekable (a pipe?): patch reads the basis at random "
        b"offsets, so give it a regular file.\n"
    )
    assert listing(work) == before


def test_two_inputs_from_stdin_refused(work: Path) -> None:
    result = run("delta", "-", "-", input=b"")
    assert result.returncode == 1
    assert result.stderr.startswith(b"rdiff: Only one input can be standard input")
