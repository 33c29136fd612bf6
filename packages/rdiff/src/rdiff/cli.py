"""The ``rdiff`` command: librsync's rdiff 2.3 command line on :mod:`rdiff.api`.

Start-up time matters (rdiff is run once per file by scripts), so this module imports only
what the command needs: ``--help`` and ``--version`` never load the C extension, and the API
is imported inside the action. Every error is turned into a message and an exit status in
one place, :func:`run`.
"""

from __future__ import annotations

import os
import sys

from rdiff import __version__, _argv

TYPE_CHECKING = False  # typing costs start-up time; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO, NoReturn

    from rdiff.outputs import Output

PROG = "rdiff"
# The librsync this package is built against and byte-compatible with. A constant, so that
# --version does not load the C extension (rdiff.\_binding.LIBRSYNC_VERSION has the live one).
LIBRSYNC = "2.3.2"
RS_LOG_DEBUG = 7
SMALL = 8 * 1024 * 1024  # below rdiff.parallel.MIN_SPLIT a signature is hashed in one thread
TRY_HELP = f"Try `{PROG} --help' for more information."

HELP = """\
Usage: rdiff [OPTIONS] signature [BASIS [SIGNATURE]]
             [OPTIONS] delta SIGNATURE [NEWFILE [DELTA]]
             [OPTIONS] patch BASIS [DELTA [NEWFILE]]

Options:
  -v, --verbose             Trace internal processing
  -V, --version             Show program version
  -?, --help                Show this help message
  -s, --statistics          Show performance statistics
  -f, --force               Force overwriting existing files
Signature generation options:
  -H, --hash=ALG            Hash algorithm: blake2 (default), md4
  -R, --rollsum=ALG         Rollsum algorithm: rabinkarp (default), rollsum
Delta-encoding options:
  -b, --block-size=BYTES    Signature block size, 0 (default) for recommended
  -S, --sum-size=BYTES      Signature strength, 0 (default) for max, -1 for min
IO options:
  -I, --input-size=BYTES    Input buffer size
  -O, --output-size=BYTES   Output buffer size
Options of this implementation:
  -j, --jobs=N              Threads: signature uses every CPU by default (-j 1: one),
                            delta one unless N > 1; 0 means every CPU
      --check-signature=SIG patch: first check that BASIS has signature SIG;
                            refuse (nothing written) if it does not

A missing or `-' operand is standard input or output. Outputs are written to a
temporary file and renamed when complete; an existing output needs -f.
Exit status: 0 success, 1 environmental problem (file, option), 2 corrupt or
truncated signature or delta, 3 internal error.

Examples:
  rdiff signature old.bin old.sig
  rdiff delta old.sig new.bin new.delta
  rdiff patch old.bin new.delta new.bin
  rdiff signature old | ssh host rdiff delta - new | rdiff patch old - out
"""

VERSION = f"""\
rdiff (librsync {LIBRSYNC})
rdiff {__version__}: the Python rdiff, on a cffi binding to the system librsync
Copyright (C) 1997-2016 by Martin Pool, Andrew Tridgell and others.
http://librsync.sourcefrog.net/
Capabilities: 64 bit files, trace disabled

librsync comes with NO WARRANTY, to the extent permitted by law.
You may redistribute copies of librsync under the terms of the GNU
Lesser General Public License.  For more information about these
matters, see the files named COPYING.
"""


def main(argv: list[str] | None = None) -> NoReturn:
    """The console script: run rdiff with ``argv`` (default ``sys.argv[1:]``) and exit."""
    sys.exit(run(sys.argv[1:] if argv is None else argv))


def _say(line: str) -> None:
    try:
        sys.stderr.write(f"{PROG}: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def run(argv: list[str]) -> int:
    """Run one rdiff command; return the exit status. Errors are reported here only."""
    from rdiff.errors import RdiffError

    try:
        opts = _argv.parse(argv)
    except _argv.ArgvError as error:
        _say(f"{error}\n\n{TRY_HELP}" if error.try_help else str(error))
        return 1
    if opts.show is not None:
        return _show(HELP if opts.show == "help" else VERSION)
    outputs: list[Output] = []
    inputs: list[BinaryIO] = []
    restore = _on_signals(outputs)
    try:
        return _action(opts, outputs, inputs)
    except KeyboardInterrupt:
        _discard(outputs)
        return 130
    except RdiffError as error:
        _discard(outputs)
        _drop_tracebacks(error)
        if _broken_stdout(error):
            return _quiet_broken_pipe()
        _say(str(error) or type(error).__name__)
        return int(error.exit_status)
    except BrokenPipeError as error:
        _discard(outputs)
        if _broken_stdout(error):
            return _quiet_broken_pipe()
        _say(f"Error writing: {error.strerror}")
        return 1
    except MemoryError as error:
        _discard(outputs)
        _drop_tracebacks(error)
        _say("Out of memory (try a smaller -b, -I or -O).")
        return 1
    except Exception as error:
        _discard(outputs)
        text = " ".join(str(error).split())
        _say(f"internal error: {type(error).__name__}" + (f": {text}" if text else ""))
        if opts.verbose:
            import traceback

            traceback.print_exc()
        else:
            _say("(run with -v for the traceback; please report this)")
        _drop_tracebacks(error)
        return 3
    finally:
        restore()
        for f in inputs:
            f.close()


def _drop_tracebacks(error: BaseException | None) -> None:
    """Free the frames of a failed job now, by reference counting.

    Left to the cyclic garbage collector, the frames of a job that failed inside a librsync
    callback (memoryviews over cffi buffers, still exported) crash the interpreter.
    """
    seen = 0
    while error is not None and seen < 20:
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
        seen += 1


def _show(text: str) -> int:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        return _quiet_broken_pipe()
    return 0


def _discard(outputs: list[Output]) -> None:
    for output in outputs:
        output.discard()


def _broken_stdout(error: BaseException) -> bool:
    """Whether ``error`` is (caused by) EPIPE, i.e. the reader of our stdout went away."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, BrokenPipeError):
            return True
        current = current.__cause__
    return False


def _quiet_broken_pipe() -> int:
    """`rdiff ... | head`: the reader is gone. Exit 1 without a message (as Python advises).

    stdout is pointed at /dev/null so that the interpreter's final flush stays silent.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 1


def _on_signals(outputs: list[Output]) -> Callable[[], None]:
    """On SIGINT, SIGTERM or SIGHUP remove the temporary outputs and exit 128 + signal.

    Done in the handler itself, so that the signal cannot be lost inside code that must catch
    everything (librsync callbacks). A signal the parent ignores stays ignored. Returns the
    function that puts the previous handlers back (run() may be called in-process).
    """
    # The C module: `signal` imports enum, which costs ~3 ms on every call of rdiff.
    import _signal as signal  # type: ignore[import-not-found]

    def handler(signum: int, frame: object) -> None:
        for output in outputs:
            output.abandon()
        os._exit(128 + signum)

    previous: list[tuple[int, object]] = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            old = signal.getsignal(signum)
            if old == signal.SIG_DFL or old is signal.default_int_handler:
                signal.signal(signum, handler)
                previous.append((signum, old))
        except ValueError:  # not the main thread: leave signals alone
            break

    def restore() -> None:
        for signum, old in previous:
            signal.signal(signum, old)

    return restore


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _trace_sink(level: int, message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
    except (OSError, ValueError):
        pass


def _action(opts: _argv.Options, outputs: list[Output], inputs: list[BinaryIO]) -> int:
    from rdiff import _binding
    from rdiff.outputs import Output
    from rdiff.outputs import open_input as _open

    def open_input(name: str | None) -> tuple[BinaryIO, str]:
        f, display = _open(name)
        if f is not sys.stdin.buffer:
            inputs.append(f)
        return f, display

    _binding.set_trace_sink(_trace_sink)
    if opts.verbose:
        _binding.set_trace_level(RS_LOG_DEBUG)
        if not _binding.supports_trace():
            _say("Library does not support trace.")
    operands: list[str | None] = [*opts.operands, None, None, None]
    stdin_users = sum(1 for name in _inputs(opts) if name is None or name == "-")
    if stdin_users > 1:
        from rdiff.errors import UsageError

        raise UsageError("Only one input can be standard input (`-' or omitted).")

    def output(name: str | None) -> BinaryIO:
        out = Output(name, force=opts.force)
        outputs.append(out)
        return out.file

    from rdiff import api

    if opts.action == "signature":
        basis, basis_name = open_input(operands[0])
        out = output(operands[1])
        jobs = None if opts.jobs in (None, 0) else opts.jobs
        if jobs is None and _small(basis):
            jobs = 1  # same bytes; saves importing the thread machinery (start-up time)
        stats = api.signature(
            basis,
            out,
            block_len=opts.block_size,
            strong_len=opts.sum_size,
            hash_name=opts.hash,  # type: ignore[arg-type]  # checked by _argv
            rollsum=opts.rollsum,  # type: ignore[arg-type]
            jobs=jobs,
            in_size=opts.input_size,
            out_size=opts.output_size,
            basis_name=_quoted(basis_name),
            out_name=_out_name(operands[1]),
        )
        _finish(outputs)
        if opts.statistics:
            _binding.log_stats(stats)
    elif opts.action == "delta":
        sig_file, sig_name = open_input(operands[0])
        new, new_name = open_input(operands[1])
        out = output(operands[2])
        jobs = _cpus() if opts.jobs == 0 else (opts.jobs or 1)
        sig = api.load_signature(sig_file, name=_quoted(sig_name), keep_raw=jobs > 1)
        if opts.statistics:
            _binding.log_stats(sig.load_stats)
        stats = api.delta(
            sig,
            new,
            out,
            jobs=jobs,
            in_size=opts.input_size,
            out_size=opts.output_size,
            new_name=_quoted(new_name),
            out_name=_out_name(operands[2]),
        )
        _finish(outputs)
        if opts.statistics:
            sig.log_match_stats()
            _binding.log_stats(stats)
    else:
        basis, basis_name = open_input(operands[0])
        check = open_input(opts.check_signature) if opts.check_signature is not None else None
        delta_in, delta_name = open_input(operands[1])
        out = output(operands[2])
        if check is not None and _seekable(basis):
            # A pipe basis is left to api.patch, which names the problem.
            api.check_signature(
                basis, check[0], basis_name=_quoted(basis_name), sig_name=_quoted(check[1])
            )
        stats = api.patch(
            basis,
            delta_in,
            out,
            in_size=opts.input_size,
            out_size=opts.output_size,
            basis_name=_quoted(basis_name),
            delta_name=_quoted(delta_name),
            out_name=_out_name(operands[2]),
        )
        _finish(outputs)
        if opts.statistics:
            _binding.log_stats(stats)
    return 0


def _out_name(name: str | None) -> str:
    return "standard output" if name in (None, "-") else _quoted(name)


def _inputs(opts: _argv.Options) -> list[str | None]:
    ops: list[str | None] = [*opts.operands, None, None, None]
    if opts.action == "signature":
        return [ops[0]]
    if opts.action == "delta":
        return [ops[0], ops[1]]
    return [ops[0], ops[1], opts.check_signature or ""]


def _finish(outputs: list[Output]) -> None:
    for out in outputs:
        out.commit()


def _small(f: BinaryIO) -> bool:
    """A regular file too small for parallel hashing (rdiff.parallel.MIN_SPLIT, 8 MiB)."""
    import stat

    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size < SMALL


def _seekable(f: BinaryIO) -> bool:
    try:
        return f.seekable()
    except (OSError, ValueError):
        return False


def _quoted(name: str) -> str:
    return name if name == "stdin" else f'"{name}"'
