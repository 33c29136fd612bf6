"""Byte-for-byte comparison with Debian's /usr/bin/rdiff 2.3.2 (signatures, deltas, patches).

Every expected output here is produced by the reference rdiff at test time; nothing is
hard-coded from our own tool.
"""

from __future__ import annotations

import gzip
import io
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypedDict, cast

import pytest

from rdiff import api, parallel

if TYPE_CHECKING:
    from tests.rdiff.conftest import OurCli, Reference

    from rdiff.params import HashName, RollsumName

pytestmark = pytest.mark.golden

HASHES: tuple[HashName, ...] = ("md4", "blake2")
ROLLSUMS: tuple[RollsumName, ...] = ("rollsum", "rabinkarp")
HASH_NAMES: dict[str, HashName] = {name: name for name in HASHES}
ROLLSUM_NAMES: dict[str, RollsumName] = {name: name for name in ROLLSUMS}
# 0 = max, -1 = recommended minimum, 8 = explicit, 4 = below the minimum (only a warning)
SUM_SIZES = (0, -1, 8, 4)
BLOCK_SIZES = (0, 256, 1000, 2048, 4096)
SIG_INPUTS = ("empty", "one", "size-255", "size-2049", "size-10241", "text", "zero-runs")


def sig_opts(hash_name: str, rollsum: str, strong: int, block: int) -> list[str]:
    return ["-H", hash_name, "-R", rollsum, f"-S{strong}", "-b", str(block)]


class SigOptions(TypedDict, total=False):
    """The signature parameters of api.signature, as keyword arguments."""

    hash_name: HashName
    rollsum: RollsumName
    strong_len: int
    block_len: int


def sig_kwargs(hash_name: HashName, rollsum: RollsumName, strong: int, block: int) -> SigOptions:
    return {"hash_name": hash_name, "rollsum": rollsum, "strong_len": strong, "block_len": block}


def opts_to_kwargs(opts: list[str]) -> SigOptions:
    """rdiff's signature options as keyword arguments of api.signature."""
    kwargs: SigOptions = {}
    for flag, value in zip(opts[::2], opts[1::2], strict=True):
        if flag == "-b":
            kwargs["block_len"] = int(value)
        elif flag == "-S":
            kwargs["strong_len"] = int(value)
        elif flag == "-H":
            kwargs["hash_name"] = HASH_NAMES[value]
        elif flag == "-R":
            kwargs["rollsum"] = ROLLSUM_NAMES[value]
        else:
            raise ValueError(f"not a signature option: {flag}")
    return kwargs


# --- signatures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hash_name", "rollsum", "strong", "block"),
    list(itertools.product(HASHES, ROLLSUMS, SUM_SIZES, BLOCK_SIZES)),
)
def test_signature_matrix(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    api_sig: Callable[..., bytes],
    hash_name: HashName,
    rollsum: RollsumName,
    strong: int,
    block: int,
) -> None:
    """Regular file (size picks the defaults) and pipe (2048 / 12) both equal rdiff's bytes."""
    opts = sig_opts(hash_name, rollsum, strong, block)
    kwargs = sig_kwargs(hash_name, rollsum, strong, block)
    for name in SIG_INPUTS:
        expected_file = ref.signature_file(files[name], *opts)
        assert api_sig(files[name], **kwargs) == expected_file, f"{name} as a regular file"
        expected_pipe = ref.signature_pipe(data[name], *opts)
        assert api_sig(data[name], **kwargs) == expected_pipe, f"{name} as a pipe"


def test_regular_file_and_pipe_defaults_differ(
    ref: Reference, files: dict[str, Path], data: dict[str, bytes], api_sig: Callable[..., bytes]
) -> None:
    """The premise of the matrix: for a 100 kB input the two default headers differ."""
    as_file = ref.signature_file(files["text"])
    as_pipe = ref.signature_pipe(data["text"])
    assert as_file[4:12] != as_pipe[4:12]
    assert int.from_bytes(as_pipe[4:8], "big") == 2048
    assert api_sig(files["text"]) == as_file
    assert api_sig(data["text"]) == as_pipe


def test_signature_from_real_pipe(ref: Reference, data: dict[str, bytes]) -> None:
    """A real OS pipe (fileno present, not a regular file) counts as unknown size."""
    import os
    import threading

    content = data["zero-runs"]
    rfd, wfd = os.pipe()

    def feed() -> None:
        with os.fdopen(wfd, "wb") as w:
            w.write(content)

    writer = threading.Thread(target=feed)
    writer.start()
    out = io.BytesIO()
    with os.fdopen(rfd, "rb") as r:
        api.signature(r, out)
    writer.join()
    assert out.getvalue() == ref.signature_pipe(content)


@pytest.mark.parametrize("opts", [[], ["-b", "4096", "-S", "-1"], ["-H", "md4", "-R", "rollsum"]])
def test_signature_big_file(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    api_sig: Callable[..., bytes],
    opts: list[str],
) -> None:
    kwargs = opts_to_kwargs(opts)
    assert api_sig(files["big-3m"], jobs=1, **kwargs) == ref.signature_file(files["big-3m"], *opts)
    assert api_sig(data["big-3m"], **kwargs) == ref.signature_pipe(data["big-3m"], *opts)


@pytest.fixture
def count_parallel(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts calls of the parallel signature / delta paths (proof that they really ran)."""
    calls = {"signature": 0, "delta": 0}
    real_sig, real_delta = parallel.signature, parallel.delta

    def sig(*args: Any, **kwargs: Any) -> Any:
        calls["signature"] += 1
        return real_sig(*args, **kwargs)

    def dlt(*args: Any, **kwargs: Any) -> Any:
        calls["delta"] += 1
        return real_delta(*args, **kwargs)

    monkeypatch.setattr(parallel, "signature", sig)
    monkeypatch.setattr(parallel, "delta", dlt)
    return calls


@pytest.mark.parametrize(
    "opts",
    [[], ["-b", "1000", "-S", "8", "-H", "md4", "-R", "rollsum"], ["-b", "4096", "-S", "-1"]],
    ids=["default", "b1000-md4-rollsum", "b4096-min"],
)
@pytest.mark.parametrize("to_file", [False, True], ids=["out-stream", "out-file"])
def test_parallel_signature(
    ref: Reference,
    files: dict[str, Path],
    count_parallel: dict[str, int],
    tmp_path: Path,
    opts: list[str],
    to_file: bool,
) -> None:
    name = "big-9m"
    assert files[name].stat().st_size >= parallel.MIN_SPLIT
    kwargs = opts_to_kwargs(opts)
    expected = ref.signature_file(files[name], *opts)
    with open(files[name], "rb") as basis:
        if to_file:
            target = tmp_path / "sig"
            with open(target, "wb") as plain:
                plain.write(b"PREFIX")  # the signature must land after what is already there
                api.signature(basis, plain, jobs=2, **kwargs)
                plain.write(b"SUFFIX")
            got = target.read_bytes()
            assert got[:6] == b"PREFIX" and got[-6:] == b"SUFFIX"
            got = got[6:-6]
        else:
            out = io.BytesIO()
            api.signature(basis, out, jobs=2, **kwargs)
            got = out.getvalue()
    assert count_parallel["signature"] == 1, "the parallel path did not run"
    assert got == expected


# --- deltas -------------------------------------------------------------------------------

DELTA_PAIRS = [
    (base, f"{base}.{kind}")
    for base in ("text", "random", "zero-runs")
    for kind in ("insert", "delete", "move", "repeat", "overwrite", "mixed")
] + [
    ("text", "text"),
    ("random", "text"),
    ("zeros", "zero-runs"),
    ("size-2049", "size-2048"),
    ("size-16384", "size-16385"),
    ("one", "size-255"),
    ("text", "empty"),
]
DELTA_SIG_OPTS = {
    "default": [],
    "b1000-S8-md4-rollsum": ["-b", "1000", "-S", "8", "-H", "md4", "-R", "rollsum"],
    "b256-min": ["-b", "256", "-S", "-1"],
    "b4096-S4-blake2-rollsum": ["-b", "4096", "-S", "4", "-R", "rollsum"],
}


@pytest.mark.parametrize("sig_id", list(DELTA_SIG_OPTS))
@pytest.mark.parametrize(("old", "new"), DELTA_PAIRS, ids=[f"{a}->{b}" for a, b in DELTA_PAIRS])
def test_delta_equals_rdiff(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    api_delta: Callable[..., bytes],
    api_patch: Callable[..., bytes],
    sig_id: str,
    old: str,
    new: str,
) -> None:
    sig = ref.signature_file(files[old], *DELTA_SIG_OPTS[sig_id])
    expected = ref.delta(sig, files[new])
    assert api_delta(sig, files[new]) == expected
    assert api_delta(sig, data[new]) == expected, "unknown-size new file"
    # patch output equals rdiff's, for both deltas (they are the same bytes, but patch anyway)
    assert api_patch(files[old], expected) == ref.patch(files[old], expected) == data[new]


@pytest.mark.parametrize("io_size", [1, 7, 100, 10000, 200000])
def test_delta_io_sizes_nonempty_signature(
    ref: Reference, files: dict[str, Path], api_delta: Callable[..., bytes], io_size: int
) -> None:
    """Against a non-empty signature -I / -O do not change the bytes; compare anyway."""
    sig = ref.signature_file(files["zero-runs"], "-b", "1000")
    new = files["zero-runs.mixed"]
    expected = ref.delta(sig, new, "-I", str(io_size), "-O", str(io_size))
    assert api_delta(sig, new, in_size=io_size, out_size=io_size) == expected


@pytest.mark.parametrize("sig_id", ["default", "b4096-md4"])
def test_delta_big(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    api_delta: Callable[..., bytes],
    api_patch: Callable[..., bytes],
    sig_id: str,
) -> None:
    opts = {"default": [], "b4096-md4": ["-b", "4096", "-H", "md4"]}[sig_id]
    sig = ref.signature_file(files["big-3m"], *opts)
    new = files["big-3m.mixed"]
    expected = ref.delta(sig, new)
    assert api_delta(sig, new, jobs=1) == expected
    assert api_patch(files["big-3m"], expected) == data["big-3m.mixed"]


# Deltas against an EMPTY signature ("slack" deltas): one literal per input refill, so the
# bytes depend on rdiff's chunking: -I, or else the signature's block length.
SLACK_IO = [1, 2, 3, 7, 100, 10000, 200000, None]
EMPTY_SIGS = {
    "file-default": ("file", []),  # block 256
    "file-b4096": ("file", ["-b", "4096"]),
    "pipe-default": ("pipe", []),  # block 2048
    "file-b1000-md4": ("file", ["-b", "1000", "-H", "md4", "-R", "rollsum"]),
}


@pytest.mark.parametrize("sig_id", list(EMPTY_SIGS))
@pytest.mark.parametrize("io_size", SLACK_IO, ids=[f"I{n}" if n else "I-default" for n in SLACK_IO])
def test_slack_delta(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    api_delta: Callable[..., bytes],
    parse_delta: Callable[[bytes], list[tuple[Any, ...]]],
    sig_id: str,
    io_size: int | None,
) -> None:
    how, opts = EMPTY_SIGS[sig_id]
    sig = (
        ref.signature_file(files["empty"], *opts)
        if how == "file"
        else ref.signature_pipe(b"", *opts)
    )
    assert len(sig) == 12
    names = ["size-2999", "size-16385"] if io_size is not None and io_size < 100 else ["text"]
    if io_size is None or io_size >= 10000:
        names.append("big-3m")
    for name in names:
        io_opts = ["-I", str(io_size)] if io_size else []
        expected = ref.delta(sig, files[name], *io_opts)
        got = api_delta(sig, files[name], in_size=io_size or 0)
        assert got == expected, name
        # the premise: all literals, chunked as rdiff chunks its input
        chunk = io_size or int.from_bytes(sig[4:8], "big")
        lits = [c for c in parse_delta(expected) if c[0] == "LIT"]
        assert b"".join(c[1] for c in lits) == data[name]
        assert all(len(c[1]) == chunk for c in lits[:-1]), name


@pytest.mark.parametrize("out_size", [1, 13, 100000])
def test_slack_delta_output_size(
    ref: Reference, files: dict[str, Path], api_delta: Callable[..., bytes], out_size: int
) -> None:
    sig = ref.signature_file(files["empty"])
    new = files["size-10241"]
    expected = ref.delta(sig, new, "-O", str(out_size))
    assert api_delta(sig, new, out_size=out_size) == expected


# --- patch and cross-application ------------------------------------------------------------


@pytest.mark.parametrize(("in_size", "out_size"), [(0, 0), (1, 1), (7, 3), (100, 10000)])
def test_patch_equals_rdiff(
    ref: Reference,
    files: dict[str, Path],
    api_patch: Callable[..., bytes],
    in_size: int,
    out_size: int,
) -> None:
    sig = ref.signature_file(files["text"], "-b", "256")
    delta = ref.delta(sig, files["text.mixed"])
    io_opts = ["-I", str(in_size), "-O", str(out_size)] if in_size else []
    expected = ref.patch(files["text"], delta, *io_opts)
    assert api_patch(files["text"], delta, in_size=in_size, out_size=out_size) == expected


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("text", "text.move"),
        ("random", "random.mixed"),
        ("empty", "text"),
        ("big-3m", "big-3m.repeat"),
    ],
)
def test_cross_application(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    api_sig: Callable[..., bytes],
    api_delta: Callable[..., bytes],
    api_patch: Callable[..., bytes],
    old: str,
    new: str,
) -> None:
    """Our patch applies rdiff's deltas; rdiff's patch applies ours (built on our signature)."""
    their_delta = ref.delta(ref.signature_file(files[old]), files[new])
    assert api_patch(files[old], their_delta) == data[new]
    our_delta = api_delta(api_sig(files[old], jobs=1), files[new])
    assert ref.patch(files[old], our_delta) == data[new]
    # and rdiff's delta from our signature equals ours
    assert ref.delta(api_sig(files[old], jobs=1), files[new]) == our_delta


@pytest.mark.parametrize(
    ("old", "new"), [("big-9m", "big-9m.mixed"), ("empty", "big-9m"), ("big-9m", "big-9m")]
)
def test_parallel_delta_applies_with_rdiff(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    count_parallel: dict[str, int],
    old: str,
    new: str,
) -> None:
    """-j 2 deltas may differ in bytes but rdiff's patch must rebuild the new file from them."""
    sig = ref.signature_file(files[old])
    out = io.BytesIO()
    with open(files[new], "rb") as f:
        api.delta(io.BytesIO(sig), f, out, jobs=2)
    assert count_parallel["delta"] == 1, "the parallel path did not run"
    assert ref.patch(files[old], out.getvalue()) == data[new]


def _write_through(dest: str, tmp_path: Path, produce: Callable[[BinaryIO], None]) -> bytes:
    """What ``produce(out)`` wrote, for ``out`` a BytesIO, a GzipFile over a real file (whose
    fileno() is the compressed file's) or a plain file that already holds a prefix."""
    if dest == "bytesio":
        out = io.BytesIO()
        produce(out)
        return out.getvalue()
    target = tmp_path / dest
    if dest == "gzip":
        with gzip.open(target, "wb") as zipped:
            produce(cast(BinaryIO, zipped))  # a GzipFile is a binary file; typeshed's is nominal
        return gzip.decompress(target.read_bytes())
    with open(target, "wb") as plain:
        plain.write(b"PREFIX")
        produce(plain)
        plain.write(b"SUFFIX")
    got = target.read_bytes()
    assert got[:6] == b"PREFIX" and got[-6:] == b"SUFFIX"
    return got[6:-6]


@pytest.mark.parametrize("dest", ["bytesio", "gzip", "plain-file"])
def test_parallel_delta_into_any_writer(
    ref: Reference,
    files: dict[str, Path],
    data: dict[str, bytes],
    count_parallel: dict[str, int],
    tmp_path: Path,
    dest: str,
) -> None:
    """The spooled ranges reach the destination through its own write() unless it is a plain
    file: a GzipFile's fileno() is the compressed file's, a kernel copy there would bypass
    the compressor (the bytes would not decompress to the delta)."""
    sig = ref.signature_file(files["big-9m"])

    def produce(out: BinaryIO) -> None:
        with open(files["big-9m.mixed"], "rb") as new:
            api.delta(io.BytesIO(sig), new, out, jobs=2)

    written = _write_through(dest, tmp_path, produce)
    assert count_parallel["delta"] == 1, "the parallel path did not run"
    assert ref.patch(files["big-9m"], written) == data["big-9m.mixed"]


@pytest.mark.parametrize("dest", ["bytesio", "gzip", "plain-file"])
def test_parallel_signature_into_any_writer(
    ref: Reference,
    files: dict[str, Path],
    count_parallel: dict[str, int],
    tmp_path: Path,
    dest: str,
) -> None:
    """Positional writes only into a plain file; a GzipFile gets the signature compressed."""

    def produce(out: BinaryIO) -> None:
        with open(files["big-9m"], "rb") as basis:
            api.signature(basis, out, jobs=2)

    written = _write_through(dest, tmp_path, produce)
    assert count_parallel["signature"] == 1, "the parallel path did not run"
    assert written == ref.signature_file(files["big-9m"])


# --- the command line ---------------------------------------------------------------------

CLI_SIG_OPTS = [[], ["-b", "1000", "-S", "-1"], ["-H", "md4", "-R", "rollsum", "-S", "8"]]


@pytest.mark.parametrize("opts", CLI_SIG_OPTS, ids=["default", "b1000-min", "md4-rollsum-S8"])
@pytest.mark.parametrize("name", ["empty", "size-2049", "text", "big-3m"])
def test_cli_signature_stdin(
    ref: Reference,
    our_cli: OurCli,
    files: dict[str, Path],
    data: dict[str, bytes],
    opts: list[str],
    name: str,
) -> None:
    """stdin from a pipe (unknown size) and from a redirect (regular file): each equals rdiff."""
    want_pipe = ref.run(*opts, "signature", input=data[name]).stdout
    want_redirect = ref.run(*opts, "signature", stdin=files[name]).stdout
    assert our_cli.run(*opts, "signature", input=data[name]).stdout == want_pipe
    assert our_cli.run(*opts, "signature", stdin=files[name]).stdout == want_redirect
    if data[name]:
        assert want_pipe != want_redirect or name == "size-2049"


def test_cli_signature_delta_patch_files(
    ref: Reference, our_cli: OurCli, files: dict[str, Path], data: dict[str, bytes], tmp_path: Path
) -> None:
    """Operands as files, through our CLI end to end, equal to rdiff's files."""
    old, new = files["zero-runs"], files["zero-runs.mixed"]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    for tool, d in ((our_cli, ours), (ref, theirs)):
        tool.run("signature", old, d / "sig")
        tool.run("delta", d / "sig", new, d / "delta")
        tool.run("patch", old, d / "delta", d / "out")
    for part in ("sig", "delta", "out"):
        assert (ours / part).read_bytes() == (theirs / part).read_bytes(), part
    assert (ours / "out").read_bytes() == data["zero-runs.mixed"]


@pytest.mark.parametrize("io_size", [1, 7, 10000, None])
def test_cli_slack_delta(
    ref: Reference, our_cli: OurCli, files: dict[str, Path], tmp_path: Path, io_size: int | None
) -> None:
    sig = tmp_path / "empty.sig"
    ref.run("signature", files["empty"], sig)
    io_opts = ["-I", str(io_size)] if io_size else []
    name = "size-2999" if io_size and io_size < 100 else "text"
    want = ref.run(*io_opts, "delta", sig, files[name], "-").stdout
    assert our_cli.run(*io_opts, "delta", sig, files[name], "-").stdout == want
    # new file from a pipe on stdin too
    want_stdin = ref.run(*io_opts, "delta", sig, "-", "-", input=files[name].read_bytes()).stdout
    got_stdin = our_cli.run(*io_opts, "delta", sig, "-", "-", input=files[name].read_bytes())
    assert got_stdin.stdout == want_stdin


def test_cli_patch_from_stdin_delta(
    ref: Reference, our_cli: OurCli, files: dict[str, Path], data: dict[str, bytes]
) -> None:
    sig = ref.signature_file(files["text"])
    delta = ref.delta(sig, files["text.repeat"])
    got = our_cli.run("patch", files["text"], input=delta).stdout
    assert got == ref.run("patch", files["text"], input=delta).stdout == data["text.repeat"]


def test_cli_parallel_delta_applies_with_rdiff(
    ref: Reference, our_cli: OurCli, files: dict[str, Path], data: dict[str, bytes], tmp_path: Path
) -> None:
    sig = tmp_path / "sig"
    ref.run("signature", files["big-9m"], sig)
    delta = our_cli.run("-j", "2", "delta", sig, files["big-9m.mixed"], "-").stdout
    assert ref.patch(files["big-9m"], delta) == data["big-9m.mixed"]
    sig_ours = our_cli.run("-j", "2", "signature", files["big-9m"], "-").stdout
    assert sig_ours == sig.read_bytes()
