"""The only module that touches the compiled cffi module ``rdiff._librsync``.

It turns librsync's streaming jobs into Python generators, its result codes into exceptions,
and makes sure no Python exception ever crosses into C: callbacks catch everything, park the
exception on their context and return an error code; the job driver re-raises it. (cffi's
default for an escaping exception is to return 0 == RS_DONE, which would make librsync copy
uninitialised bytes into the output and report success.)

cffi API mode releases the GIL around every C call, so jobs in different threads run in
parallel. librsync's trace sink is process-global; messages are collected per thread.
"""

from __future__ import annotations

import os
from _thread import _local as thread_local  # threading's own import costs start-up time

from rdiff._librsync import ffi, lib
from rdiff.errors import CorruptInput, InternalError, RdiffError, RdiffIOError, UsageError

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any, Protocol, TypeAlias

    Buffer: TypeAlias = bytes | bytearray | memoryview

    class TraceSink(Protocol):
        def __call__(self, level: int, message: str) -> None: ...

    class ReadAt(Protocol):
        """Reads up to len(buffer) bytes at an absolute offset; returns the count (0 at EOF)."""

        def __call__(self, buffer: memoryview, offset: int) -> int: ...


RS_DONE: int = lib.RS_DONE
RS_BLOCKED: int = lib.RS_BLOCKED
LIBRSYNC_VERSION: str = ffi.string(lib.rs_librsync_version).decode()
DEFAULT_OUT_SIZE = 256 * 1024

_local = thread_local()
_trace_sink: TraceSink | None = None


def set_trace_sink(sink: TraceSink | None) -> None:
    """Route librsync's warnings and info lines (e.g. ``-s`` statistics) to ``sink``.

    Error lines are always collected per thread and folded into the raised exception.
    """
    global _trace_sink
    _trace_sink = sink


def set_trace_level(level: int) -> None:
    lib.rs_trace_set_level(level)


def supports_trace() -> bool:
    return bool(lib.rs_supports_trace())


def _errors() -> list[str]:
    errors: list[str] | None = getattr(_local, "errors", None)
    if errors is None:
        errors = _local.errors = []
    return errors


@ffi.def_extern()
def _rdiff_trace_cb(level: int, msg: Any) -> None:
    try:
        text = ffi.string(msg).decode("utf-8", "replace").rstrip("\n")
        if level <= lib.RS_LOG_ERR:
            _errors().append(text)
        elif _trace_sink is not None:
            _trace_sink(level, text)
    except BaseException:  # noqa: S110 - nothing may propagate into C
        pass


lib.rs_trace_to(lib._rdiff_trace_cb)


def _detail() -> str:
    """The most specific librsync error message of this thread, without its prefixes."""
    useful = [e for e in _errors() if "job failed" not in e]
    if not useful:
        return ""
    text = useful[0]
    if ") " in text:
        text = text.split(") ", 1)[1]
    return text


def strerror(result: int) -> str:
    return str(ffi.string(lib.rs_strerror(result)).decode())


def error_for(result: int, what: str) -> RdiffError:
    """The exception for a failed job: ``what`` names the data, e.g. 'signature "a.sig"'."""
    detail = _detail()
    reason = strerror(result)
    message = f"Failed, {reason}" + (f" ({detail})" if detail else "") + f" in {what}."
    if result in (lib.RS_INPUT_ENDED, lib.RS_BAD_MAGIC, lib.RS_CORRUPT):
        return CorruptInput(message, rs_result=result)
    if result == lib.RS_PARAM_ERROR:
        return UsageError(
            f"Failed, invalid parameter ({detail or reason}) for {what}.", rs_result=result
        )
    if result in (lib.RS_IO_ERROR, lib.RS_MEM_ERROR, lib.RS_UNIMPLEMENTED):
        return RdiffIOError(message, rs_result=result)
    return InternalError(message, rs_result=result)


STAT_FIELDS = (
    "lit_cmds",
    "lit_bytes",
    "lit_cmdbytes",
    "copy_cmds",
    "copy_bytes",
    "copy_cmdbytes",
    "sig_cmds",
    "sig_bytes",
    "false_matches",
    "sig_blocks",
    "block_len",
    "in_bytes",
    "out_bytes",
    "start",
    "end",
)
_SUMMED = tuple(f for f in STAT_FIELDS if f not in ("block_len", "start", "end"))


class Stats:
    """A copy of librsync's rs_stats_t for one job (or several merged). Immutable."""

    __slots__ = ("op", *STAT_FIELDS)
    op: str
    lit_cmds: int
    lit_bytes: int
    lit_cmdbytes: int
    copy_cmds: int
    copy_bytes: int
    copy_cmdbytes: int
    sig_cmds: int
    sig_bytes: int
    false_matches: int
    sig_blocks: int
    block_len: int
    in_bytes: int
    out_bytes: int
    start: int
    end: int

    def __init__(self, op: str, **values: int) -> None:
        unknown = set(values) - set(STAT_FIELDS)
        if unknown:
            raise TypeError(f"unknown statistics fields: {sorted(unknown)}")
        object.__setattr__(self, "op", op)
        for name in STAT_FIELDS:
            object.__setattr__(self, name, int(values.get(name, 0)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Stats is immutable; use replace()")

    def as_dict(self) -> dict[str, int | str]:
        return {"op": self.op, **{name: getattr(self, name) for name in STAT_FIELDS}}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stats) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Stats({fields})"

    def replace(self, **values: int) -> Stats:
        merged = {name: getattr(self, name) for name in STAT_FIELDS}
        merged.update(values)
        return Stats(self.op, **merged)

    def merge(self, other: Stats) -> Stats:
        """Stats of two jobs of the same kind run over adjacent ranges."""
        values = {k: getattr(self, k) + getattr(other, k) for k in _SUMMED}
        return Stats(
            self.op,
            block_len=self.block_len or other.block_len,
            start=min(self.start, other.start),
            end=max(self.end, other.end),
            **values,
        )


def _stats_of(job: Any, in_bytes: int, out_bytes: int) -> Stats:
    s = lib.rs_job_statistics(job)
    values = {f: int(getattr(s, f)) for f in STAT_FIELDS}
    values.update(in_bytes=in_bytes, out_bytes=out_bytes)
    return Stats(ffi.string(s.op).decode() if s.op else "", **values)


def log_stats(stats: Stats) -> None:
    """Emit the statistics line exactly as rdiff -s does, through the trace sink."""
    c = ffi.new("rs_stats_t *")
    op = ffi.new("char[]", stats.op.encode())
    c.op = op
    for name in STAT_FIELDS:
        setattr(c, name, getattr(stats, name))
    lib.rs_log_stats(c)


class Job:
    """One librsync job driven by :meth:`run`; freed when the object goes away."""

    def __init__(
        self, job: Any, what: str, *, out_size: int = DEFAULT_OUT_SIZE, keep: object = None
    ) -> None:
        if job == ffi.NULL:
            raise InternalError(f"librsync could not start a job for {what}")
        self._job = ffi.gc(job, lib.rs_job_free)
        self._keep = keep  # objects the C job points into (signature, callback context)
        self.what = what
        self._out_size = max(1, out_size)
        self._obuf = ffi.new("char[]", self._out_size)
        self._bufs = ffi.new("rs_buffers_t *")
        self.in_bytes = 0
        self.out_bytes = 0
        self.done = False
        self.callback_error: BaseException | None = None

    def _check(self, result: int) -> None:
        if self.callback_error is not None:
            error, self.callback_error = self.callback_error, None
            raise error
        if result != RS_DONE and result != RS_BLOCKED:
            raise error_for(result, self.what)

    def run(self, chunks: Iterable[Buffer]) -> Iterator[memoryview]:
        """Feed ``chunks`` then end-of-input; yield output views valid until the next step.

        A new chunk is offered only once librsync has consumed the previous one, one
        rs_job_iter call per refill, as rdiff's own file driver does: deltas against an empty
        signature chunk their literals by input refill, so this keeps their bytes identical.
        """
        _errors().clear()
        job, bufs, obuf, osize = self._job, self._bufs, self._obuf, self._out_size
        view = memoryview(ffi.buffer(obuf, osize))
        for chunk in chunks:
            n = len(chunk)
            if n == 0:
                continue
            self.in_bytes += n
            # Released on leaving the block, even when the generator is abandoned: a view
            # left exported would make the cycle collector free the chunk under our feet.
            with ffi.from_buffer(chunk) as c_chunk:
                bufs.next_in = c_chunk
                bufs.avail_in = n
                while True:
                    bufs.next_out = obuf
                    bufs.avail_out = osize
                    result = lib.rs_job_iter(job, bufs)
                    self._check(result)
                    produced = osize - bufs.avail_out
                    if produced:
                        self.out_bytes += produced
                        yield view[:produced]
                    if result == RS_DONE:  # e.g. a patch reached END; later input is ignored
                        self.done = True
                        bufs.next_in = ffi.NULL
                        return
                    if bufs.avail_in == 0 and produced < osize:
                        break
        bufs.next_in = ffi.NULL
        bufs.avail_in = 0
        bufs.eof_in = 1
        idle = 0
        while True:
            bufs.next_out = obuf
            bufs.avail_out = osize
            result = lib.rs_job_iter(job, bufs)
            self._check(result)
            produced = osize - bufs.avail_out
            if produced:
                self.out_bytes += produced
                yield view[:produced]
            if result == RS_DONE:
                self.done = True
                return
            idle = 0 if produced else idle + 1
            if idle > 3:
                raise CorruptInput(
                    f"Failed, unexpected end of input in {self.what}.", rs_result=lib.RS_INPUT_ENDED
                )

    def stats(self) -> Stats:
        return _stats_of(self._job, self.in_bytes, self.out_bytes)


def sig_args(size: int | None, magic: int, block_len: int, strong_len: int) -> tuple[int, int, int]:
    """Resolve 0 / -1 parameters as rdiff does (rs_sig_args); ``size`` None means unknown."""
    if block_len < 0:
        raise UsageError(f"invalid block size {block_len}: must be 0 (recommended) or positive")
    if strong_len < -1:
        raise UsageError(f"invalid sum size {strong_len}: must be 0 (max), -1 (min) or positive")
    c_magic = ffi.new("rs_magic_number *", magic)
    c_block = ffi.new("size_t *", block_len)
    c_strong = ffi.new("size_t *", strong_len if strong_len >= 0 else 2**64 - 1)
    _errors().clear()
    result = lib.rs_sig_args(-1 if size is None else size, c_magic, c_block, c_strong)
    if result != RS_DONE:
        detail = _detail() or strerror(result)
        raise UsageError(f"invalid signature parameters: {detail}", rs_result=result)
    return int(c_magic[0]), int(c_block[0]), int(c_strong[0])


def signature_job(
    magic: int, block_len: int, strong_len: int, what: str, out_size: int = DEFAULT_OUT_SIZE
) -> Job:
    return Job(lib.rs_sig_begin(block_len, strong_len, magic), what, out_size=out_size)


def _copying(chunks: Iterable[Buffer], into: bytearray) -> Iterator[Buffer]:
    for chunk in chunks:
        into += chunk
        yield chunk


class LoadedSignature:
    """A signature in librsync's memory, with its hash table built; freed when unreferenced."""

    def __init__(self, chunks: Iterable[Buffer], what: str, *, keep_raw: bool = False) -> None:
        holder = ffi.new("rs_signature_t **")
        job = Job(lib.rs_loadsig_begin(holder), what, out_size=64)
        raw = bytearray() if keep_raw else None
        try:
            for _ in job.run(chunks if raw is None else _copying(chunks, raw)):
                pass
        except BaseException:
            if holder[0] != ffi.NULL:
                lib.rs_free_sumset(holder[0])
            raise
        self.load_stats = job.stats()
        self._sig = ffi.gc(holder[0], lib.rs_free_sumset)
        del job
        result = lib.rs_build_hash_table(self._sig)
        if result != RS_DONE:
            raise error_for(result, what)
        self.what = what
        self.block_len = self.load_stats.block_len
        self.blocks = self.load_stats.sig_blocks
        # The signature's bytes, kept on request so that parallel deltas can load one copy per
        # thread: librsync bumps match counters inside the signature at every byte searched,
        # and two cores writing the same cache lines run slower than one.
        self.raw: bytes | None = bytes(raw) if raw is not None else None

    def copy(self) -> LoadedSignature:
        """Another, independent load of the same signature (needs ``keep_raw``)."""
        if self.raw is None:
            raise InternalError(f"{self.what} was loaded without keep_raw")
        return LoadedSignature([self.raw], self.what)

    def delta_job(self, what: str, out_size: int = DEFAULT_OUT_SIZE) -> Job:
        return Job(lib.rs_delta_begin(self._sig), what, out_size=out_size, keep=self)

    def log_match_stats(self) -> None:
        """Emit rdiff's 'match statistics' line through the trace sink."""
        lib.rs_signature_log_stats(self._sig)


def read_at_for(fileobj: Any) -> ReadAt:
    """A positional reader for a seekable file object (pread on its fd when it has one)."""
    try:
        fd = fileobj.fileno()
        os.lseek(fd, 0, os.SEEK_CUR)
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:

        def pread(buffer: memoryview, offset: int, _fd: int = fd) -> int:
            return os.preadv(_fd, [buffer], offset)

        return pread

    def seek_read(buffer: memoryview, offset: int) -> int:
        fileobj.seek(offset)
        return int(fileobj.readinto(buffer) or 0)

    return seek_read


class _CopyContext:
    def __init__(self, read_at: ReadAt, basis_name: str) -> None:
        self.read_at = read_at
        self.basis_name = basis_name
        self.job: Job | None = None


@ffi.def_extern(error=lib.RS_IO_ERROR)
def _rdiff_copy_cb(opaque: Any, pos: int, lenp: Any, bufp: Any) -> int:
    ctx: _CopyContext = ffi.from_handle(opaque)
    try:
        want = int(lenp[0])
        got = ctx.read_at(memoryview(ffi.buffer(bufp[0], want)), pos)
        if got <= 0:
            raise CorruptInput(
                f"Failed, the delta copies past the end of basis {ctx.basis_name} "
                f"(offset {pos}); is it the basis this delta was made for?",
                rs_result=lib.RS_INPUT_ENDED,
            )
        lenp[0] = min(got, want)
        return RS_DONE
    except BaseException as error:
        if ctx.job is not None:
            ctx.job.callback_error = error
        if isinstance(error, OSError):
            return int(lib.RS_IO_ERROR)
        return int(lib.RS_INPUT_ENDED if isinstance(error, CorruptInput) else lib.RS_IO_ERROR)


def patch_job(read_at: ReadAt, basis_name: str, what: str, out_size: int = DEFAULT_OUT_SIZE) -> Job:
    ctx = _CopyContext(read_at, basis_name)
    handle = ffi.new_handle(ctx)
    job = Job(
        lib.rs_patch_begin(lib._rdiff_copy_cb, handle), what, out_size=out_size, keep=(ctx, handle)
    )
    ctx.job = job
    return job


def drain(outputs: Iterable[memoryview], write: Callable[[memoryview], object]) -> None:
    for piece in outputs:
        write(piece)


# False in a build of rdiff._librsync older than rdiff_patch_whole (an editable install not
# rebuilt since): callers then stream with patch_job.
HAS_PATCH_WHOLE: bool = hasattr(lib, "rdiff_patch_whole")


def patch_whole(
    basis_fd: int, basis: Buffer | None, delta: Buffer, size_hint: int, limit: int, what: str
) -> memoryview | None:
    """The whole output of ``delta`` applied to a basis (the descriptor ``basis_fd`` when it is
    >= 0, else the bytes ``basis``), patched in C with the GIL released; None when the output
    would pass ``limit`` bytes."""
    if not HAS_PATCH_WHOLE:
        raise InternalError(
            "rdiff._librsync was built before patch_in_memory existed; rebuild it "
            "('pip install -e packages/rdiff', or ./dev setup after removing .venv/.installed)"
        )
    out = ffi.new("char **")
    out_len = ffi.new("size_t *")
    if basis_fd >= 0 or basis is None:
        basis_c, basis_len = ffi.NULL, 0
    else:
        basis_c, basis_len = ffi.from_buffer(basis), len(basis)
    _errors().clear()
    result = lib.rdiff_patch_whole(
        basis_fd, basis_c, basis_len, ffi.from_buffer(delta), len(delta),
        size_hint, limit, out, out_len,
    )  # fmt: skip
    if result == lib.RDIFF_TOO_BIG:
        return None
    if result == lib.RDIFF_BASIS_SHORT:
        raise CorruptInput(
            f"Failed, {what} copies past the end of its basis; is it the basis this delta "
            "was made for?",
            rs_result=lib.RS_INPUT_ENDED,
        )
    if result != RS_DONE:
        if result == lib.RS_IO_ERROR:
            raise RdiffIOError(f"Error reading the basis of {what}: {os.strerror(ffi.errno)}")
        raise error_for(result, what)
    # ffi.buffer keeps the gc'd pointer alive, and the memoryview keeps the buffer
    return memoryview(ffi.buffer(ffi.gc(out[0], lib.free), out_len[0]))
