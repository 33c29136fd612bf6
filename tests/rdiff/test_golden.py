"""Byte-for-byte comparison with Debian's /usr/bin/rdiff 2.3.2 (signatures, deltas, patches).

Every expected output here is produced by the reference rdiff at test time; nothing is
hard-coded from our own tool.
"""

from __future__ import annotations

import gzip
import io
import itertools

import pytest

from rdiff import api, parallel

pytestmark = pytest.mark.golden

HASHES = ("md4", "blake2")
ROLLSUMS = ("rollsum", "rabinkarp")
# 0 = max, -1 = recommended minimum, 8 = explicit, 4 = below the minimum (only a warning)
SUM_SIZES = (0, -1, 8, 4)
BLOCK_SIZES = (0, 256, 1000, 2048, 4096)
SIG_INPUTS = ("empty", "one", "size-255", "size-2049", "size-10241", "text", "zero-runs")


def sig_opts(hash_name: str, rollsum: str, strong: int, block: int) -> list[str]:
    return ["-H", hash_name, "-R", rollsum, f"-S{strong}", "-b", str(block)]


def sig_kwargs(hash_name: str, rollsum: str, strong: int, block: int) -> dict[str, object]:
    return {"hash_name": hash_name, "rollsum": rollsum, "strong_len": strong, "block_len": block}


def opts_to_kwargs(opts: list[str]) -> dict[str, object]:
    """rdiff's signature options as keyword arguments of api.signature."""
    keys = {"-b": "block_len", "-S": "strong_len", "-H": "hash_name", "-R": "rollsum"}
    pairs = zip(opts[::2], opts[1::2], strict=True)
    return {keys[k]: (int(v) if k in ("-b", "-S") else v) for k, v in pairs}


# --- signatures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hash_name", "rollsum", "strong", "block"),
    list(itertools.product(HASHES, ROLLSUMS, SUM_SIZES, BLOCK_SIZES)),
)
def test_signature_matrix(ref, files, data, api_sig, hash_name, rollsum, strong, block):
    """Regular file (size picks the defaults) and pipe (2048 / 12) both equal rdiff's bytes."""
    opts = sig_opts(hash_name, rollsum, strong, block)
    kwargs = sig_kwargs(hash_name, rollsum, strong, block)
    for name in SIG_INPUTS:
        expected_file = ref.signature_file(files[name], *opts)
        assert api_sig(files[name], **kwargs) == expected_file, f"{name} as a regular file"
        expected_pipe = ref.signature_pipe(data[name], *opts)
        assert api_sig(data[name], **kwargs) == expected_pipe, f"{name} as a pipe"


def test_regular_file_and_pipe_defaults_differ(ref, files, data, api_sig):
    """The premise of the matrix: for a 100 kB input the two default headers differ."""
    as_file = ref.signature_file(files["text"])
    as_pipe = ref.signature_pipe(data["text"])
    assert as_file[4:12] != as_pipe[4:12]
    assert int.from_bytes(as_pipe[4:8], "big") == 2048
    assert api_sig(files["text"]) == as_file
    assert api_sig(data["text"]) == as_pipe


def test_signature_from_real_pipe(ref, data):
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
def test_signature_big_file(ref, files, data, api_sig, opts):
    kwargs = opts_to_kwargs(opts)
    assert api_sig(files["big-3m"], jobs=1, **kwargs) == ref.signature_file(files["big-3m"], *opts)
    assert api_sig(data["big-3m"], **kwargs) == ref.signature_pipe(data["big-3m"], *opts)


@pytest.fixture
def count_parallel(monkeypatch):
    """Counts calls of the parallel signature / delta paths (proof that they really ran)."""
    calls = {"signature": 0, "delta": 0}
    real_sig, real_delta = parallel.signature, parallel.delta

    def sig(*args, **kwargs):
        calls["signature"] += 1
        return real_sig(*args, **kwargs)

    def dlt(*args, **kwargs):
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
def test_parallel_signature(ref, files, count_parallel, tmp_path, opts, to_file):
    name = "big-9m"
    assert files[name].stat().st_size >= parallel.MIN_SPLIT
    kwargs = opts_to_kwargs(opts)
    expected = ref.signature_file(files[name], *opts)
    with open(files[name], "rb") as basis:
        if to_file:
            target = tmp_path / "sig"
            with open(target, "wb") as out:
                out.write(b"PREFIX")  # the signature must land after what is already there
                api.signature(basis, out, jobs=2, **kwargs)
                out.write(b"SUFFIX")
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
def test_delta_equals_rdiff(ref, files, data, api_delta, api_patch, sig_id, old, new):
    sig = ref.signature_file(files[old], *DELTA_SIG_OPTS[sig_id])
    expected = ref.delta(sig, files[new])
    assert api_delta(sig, files[new]) == expected
    assert api_delta(sig, data[new]) == expected, "unknown-size new file"
    # patch output equals rdiff's, for both deltas (they are the same bytes, but patch anyway)
    assert api_patch(files[old], expected) == ref.patch(files[old], expected) == data[new]


@pytest.mark.parametrize("io_size", [1, 7, 100, 10000, 200000])
def test_delta_io_sizes_nonempty_signature(ref, files, api_delta, io_size):
    """Against a non-empty signature -I / -O do not change the bytes; compare anyway."""
    sig = ref.signature_file(files["zero-runs"], "-b", "1000")
    new = files["zero-runs.mixed"]
    expected = ref.delta(sig, new, "-I", str(io_size), "-O", str(io_size))
    assert api_delta(sig, new, in_size=io_size, out_size=io_size) == expected


@pytest.mark.parametrize("sig_id", ["default", "b4096-md4"])
def test_delta_big(ref, files, data, api_delta, api_patch, sig_id):
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
def test_slack_delta(ref, files, data, api_delta, parse_delta, sig_id, io_size):
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
def test_slack_delta_output_size(ref, files, api_delta, out_size):
    sig = ref.signature_file(files["empty"])
    new = files["size-10241"]
    expected = ref.delta(sig, new, "-O", str(out_size))
    assert api_delta(sig, new, out_size=out_size) == expected


# --- patch and cross-application ------------------------------------------------------------


@pytest.mark.parametrize(("in_size", "out_size"), [(0, 0), (1, 1), (7, 3), (100, 10000)])
def test_patch_equals_rdiff(ref, files, api_patch, in_size, out_size):
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
def test_cross_application(ref, files, data, api_sig, api_delta, api_patch, old, new):
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
def test_parallel_delta_applies_with_rdiff(ref, files, data, count_parallel, old, new):
    """-j 2 deltas may differ in bytes but rdiff's patch must rebuild the new file from them."""
    sig = ref.signature_file(files[old])
    out = io.BytesIO()
    with open(files[new], "rb") as f:
        api.delta(io.BytesIO(sig), f, out, jobs=2)
    assert count_parallel["delta"] == 1, "the parallel path did not run"
    assert ref.patch(files[old], out.getvalue()) == data[new]


def _write_through(dest: str, tmp_path, produce) -> bytes:
    """What ``produce(out)`` wrote, for ``out`` a BytesIO, a GzipFile over a real file (whose
    fileno() is the compressed file's) or a plain file that already holds a prefix."""
    if dest == "bytesio":
        out = io.BytesIO()
        produce(out)
        return out.getvalue()
    target = tmp_path / dest
    if dest == "gzip":
        with gzip.open(target, "wb") as zipped:
            produce(zipped)
        return gzip.decompress(target.read_bytes())
    with open(target, "wb") as plain:
        plain.write(b"PREFIX")
        produce(plain)
        plain.write(b"SUFFIX")
    got = target.read_bytes()
    assert got[:6] == b"PREFIX" and got[-6:] == b"SUFFIX"
    return got[6:-6]


@pytest.mark.parametrize("dest", ["bytesio", "gzip", "plain-file"])
def test_parallel_delta_into_any_writer(ref, files, data, count_parallel, tmp_path, dest):
    """The spooled ranges reach the destination through its own write() unless it is a plain
    file: a GzipFile's fileno() is the compressed file's, a kernel copy there would bypass
    the compressor (the bytes would not decompress to the delta)."""
    sig = ref.signature_file(files["big-9m"])

    def produce(out):
        with open(files["big-9m.mixed"], "rb") as new:
            api.delta(io.BytesIO(sig), new, out, jobs=2)

    written = _write_through(dest, tmp_path, produce)
    assert count_parallel["delta"] == 1, "the parallel path did not run"
    assert ref.patch(files["big-9m"], written) == data["big-9m.mixed"]


@pytest.mark.parametrize("dest", ["bytesio", "gzip", "plain-file"])
def test_parallel_signature_into_any_writer(ref, files, count_parallel, tmp_path, dest):
    """Positional writes only into a plain file; a GzipFile gets the signature compressed."""

    def produce(out):
        with open(files["big-9m"], "rb") as basis:
            api.signature(basis, out, jobs=2)

    written = _write_through(dest, tmp_path, produce)
    assert count_parallel["signature"] == 1, "the parallel path did not run"
    assert written == ref.signature_file(files["big-9m"])


# --- the command line ---------------------------------------------------------------------

CLI_SIG_OPTS = [[], ["-b", "1000", "-S", "-1"], ["-H", "md4", "-R", "rollsum", "-S", "8"]]


@pytest.mark.parametrize("opts", CLI_SIG_OPTS, ids=["default", "b1000-min", "md4-rollsum-S8"])
@pytest.mark.parametrize("name", ["empty", "size-2049", "text", "big-3m"])
def test_cli_signature_stdin(ref, our_cli, files, data, opts, name):
    """stdin from a pipe (unknown size) and from a redirect (regular file): each equals rdiff."""
    want_pipe = ref.run(*opts, "signature", input=data[name]).stdout
    want_redirect = ref.run(*opts, "signature", stdin=files[name]).stdout
    assert our_cli.run(*opts, "signature", input=data[name]).stdout == want_pipe
    assert our_cli.run(*opts, "signature", stdin=files[name]).stdout == want_redirect
    if data[name]:
        assert want_pipe != want_redirect or name == "size-2049"


def test_cli_signature_delta_patch_files(ref, our_cli, files, data, tmp_path):
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
def test_cli_slack_delta(ref, our_cli, files, tmp_path, io_size):
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


def test_cli_patch_from_stdin_delta(ref, our_cli, files, data):
    sig = ref.signature_file(files["text"])
    delta = ref.delta(sig, files["text.repeat"])
    got = our_cli.run("patch", files["text"], input=delta).stdout
    assert got == ref.run("patch", files["text"], input=delta).stdout == data["text.repeat"]


def test_cli_parallel_delta_applies_with_rdiff(ref, our_cli, files, data, tmp_path):
    sig = tmp_path / "sig"
    ref.run("signature", files["big-9m"], sig)
    delta = our_cli.run("-j", "2", "delta", sig, files["big-9m.mixed"], "-").stdout
    assert ref.patch(files["big-9m"], delta) == data["big-9m.mixed"]
    sig_ours = our_cli.run("-j", "2", "signature", files["big-9m"], "-").stdout
    assert sig_ours == sig.read_bytes()
