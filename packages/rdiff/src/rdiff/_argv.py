"""rdiff's command line, parsed the way popt 1.19 parses librsync 2.3's ``rdiff``.

Hand-written on purpose: it costs nothing to import (no typing, no dataclasses, no argparse),
and popt's grammar is not argparse's or click's:

- options may appear anywhere (operands are permuted), ``--`` ends the options, a lone ``-``
  is an operand; with ``POSIXLY_CORRECT`` set, the first operand ends the options too;
- short options bundle (``-fs``) and take a value attached (``-b1024``, ``-b=1024``, ``-S-1``)
  or as the next argument, even one starting with ``-`` (``-S -1``);
- long options are matched exactly (popt does no prefix matching), value after ``=`` or next;
- integers are C ``strtol(s, 0)`` numbers: ``0x10`` is 16, ``010`` is 8, ``''`` is 0, ``' 12'``
  is 12, ``'12 '`` is an error; outside C's ``int`` range is an error;
- ``-V`` and ``-h`` act as soon as they are read: ``rdiff -V -x`` prints the version,
  ``rdiff -x -V`` complains about ``-x``;
- the action is the first operand, matched as a case-sensitive prefix of signature, delta,
  patch, in that order (so ``s``, ``d``, ``p`` and even ``''`` are accepted).

Errors raise :class:`ArgvError` with rdiff's message text.
"""

from __future__ import annotations

import os

from rdiff.errors import UsageError

ACTIONS = ("signature", "delta", "patch")
USAGE = {
    "signature": "rdiff [OPTIONS] signature [BASIS [SIGNATURE]]",
    "delta": "rdiff [OPTIONS] delta SIGNATURE [NEWFILE [DELTA]]",
    "patch": "rdiff [OPTIONS] patch BASIS [DELTA [NEW]]",  # sic: rdiff says NEW here
}
HASHES = ("blake2", "md4")
ROLLSUMS = ("rabinkarp", "rollsum")
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# Larger blocks or buffers than this are refused with a message (rdiff 2.3.2 aborts, or fails
# reading, from 1 GiB on; a negative size makes it abort with SIGABRT).
MAX_SIZE = 2**30

# short letter or long name -> attribute of Options
_FLAGS = {"f": "force", "s": "statistics", "v": "verbose", "V": "version", "h": "help", "?": "help"}
_VALUED = {
    "b": "block_size",
    "S": "sum_size",
    "H": "hash",
    "R": "rollsum",
    "I": "input_size",
    "O": "output_size",
    "j": "jobs",
}
_LONG_FLAGS = {
    "force": "force",
    "statistics": "statistics",
    "stats": "statistics",
    "verbose": "verbose",
    "version": "version",
    "help": "help",
}
_LONG_VALUED = {
    "block-size": "block_size",
    "sum-size": "sum_size",
    "hash": "hash",
    "rollsum": "rollsum",
    "input-size": "input_size",
    "output-size": "output_size",
    "jobs": "jobs",
    "check-signature": "check_signature",
}
_DIGITS = {
    8: frozenset("01234567"),
    10: frozenset("0123456789"),
    16: frozenset("0123456789abcdefABCDEF"),
}
_INTEGERS = frozenset({"block_size", "sum_size", "input_size", "output_size", "jobs"})


class ArgvError(UsageError):
    """A command-line error; ``try_help`` adds rdiff's "Try `rdiff --help'" paragraph."""

    def __init__(self, message: str, *, try_help: bool = True) -> None:
        super().__init__(message)
        self.try_help = try_help


class Options:
    """The parsed command line. ``show`` is "help" or "version" when one of those was asked."""

    __slots__ = (
        "action",
        "block_size",
        "check_signature",
        "force",
        "hash",
        "input_size",
        "jobs",
        "operands",
        "output_size",
        "rollsum",
        "show",
        "statistics",
        "sum_size",
        "verbose",
    )

    def __init__(self) -> None:
        self.show: str | None = None
        self.action = ""
        self.operands: list[str] = []
        self.block_size = 0
        self.sum_size = 0
        self.hash = "blake2"
        self.rollsum = "rabinkarp"
        self.input_size = 0
        self.output_size = 0
        self.jobs: int | None = None  # None: the action's default
        self.check_signature: str | None = None
        self.force = False
        self.statistics = False
        self.verbose = False

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Options({fields})"


def c_int(text: str, arg: str) -> int:
    """``text`` as popt reads an int option: C strtol base 0, whole string, within int.

    ``arg`` is the command-line argument named in the error message (popt names the last one
    it consumed: the value, or the option with its attached value).
    """
    if text == "":
        return 0  # strtol converts nothing and stops at the end: popt takes it as 0
    s = text.lstrip(" \t\n\r\f\v")
    negative = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    if s[:2] in ("0x", "0X") and s[2:3] and s[2] in _DIGITS[16]:
        base, digits = 16, s[2:]
    elif s[:1] == "0":
        base, digits = 8, s
    else:
        base, digits = 10, s
    if not digits or any(c not in _DIGITS[base] for c in digits):
        raise ArgvError(f"invalid numeric value: {arg}")
    value = int(digits, base)
    value = -value if negative else value
    if not INT_MIN <= value <= INT_MAX:
        raise ArgvError(f"number too large or too small: {arg}")
    return value


def _set(opts: Options, name: str, value: str, arg: str) -> None:
    if name in _INTEGERS:
        setattr(opts, name, c_int(value, arg))
    else:
        setattr(opts, name, value)


def _flag(opts: Options, name: str) -> bool:
    """Set a flag; True when parsing stops here (--help, --version)."""
    if name in ("help", "version"):
        opts.show = name
        return True
    setattr(opts, name, True)
    return False


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Options:
    """Parse ``argv`` (without the program name) as rdiff does; raise ArgvError on misuse."""
    env = os.environ if environ is None else environ
    posix = "POSIXLY_CORRECT" in env
    opts = Options()
    operands: list[str] = []
    i, n = 0, len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if arg == "--":
            operands.extend(argv[i:])
            break
        if arg == "-" or not arg.startswith("-"):
            operands.append(arg)
            if posix:
                operands.extend(argv[i:])
                break
            continue
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name in _LONG_FLAGS:
                if eq:
                    raise ArgvError(f"option does not take an argument: {arg}")
                if _flag(opts, _LONG_FLAGS[name]):
                    return opts
            elif name in _LONG_VALUED:
                if not eq:
                    if i == n:
                        raise ArgvError(f"missing argument: {arg}")
                    value = arg = argv[i]
                    i += 1
                _set(opts, _LONG_VALUED[name], value, arg)
            else:
                raise ArgvError(f"unknown option: {arg}")
            continue
        j = 1
        while j < len(arg):
            letter = arg[j]
            j += 1
            if letter in _FLAGS:
                if arg[j : j + 1] == "=":
                    raise ArgvError(f"option does not take an argument: {arg}")
                if _flag(opts, _FLAGS[letter]):
                    return opts
            elif letter in _VALUED:
                value = arg[j:]
                if value.startswith("="):
                    value = value[1:]
                elif not value:
                    if i == n:
                        raise ArgvError(f"missing argument: {arg}")
                    value = arg = argv[i]
                    i += 1
                _set(opts, _VALUED[letter], value, arg)
                break
            else:
                raise ArgvError(f"unknown option: {arg}")
    _finish(opts, operands)
    return opts


def _finish(opts: Options, operands: list[str]) -> None:
    """Check the action, the operand count and the values, before any file is touched."""
    if not operands:
        raise _no_action()
    word = operands[0]
    action = next((a for a in ACTIONS if a.startswith(word)), None)
    if action is None:
        raise _no_action()
    opts.action = action
    opts.operands = operands[1:]
    count = len(opts.operands)
    if action != "signature" and count < 1:
        raise ArgvError(f"Usage for {action}: {USAGE[action]}")
    if count > 2 + (action != "signature"):
        raise ArgvError("Too many arguments.")
    if action == "signature":
        # rdiff checks these for signature only (delta and patch ignore -H and -R).
        if opts.hash not in HASHES:
            raise ArgvError(f"Unknown hash algorithm '{opts.hash}'.")
        if opts.rollsum not in ROLLSUMS:
            raise ArgvError(f"Unknown rollsum algorithm '{opts.rollsum}'.")
    if opts.check_signature is not None and action != "patch":
        raise ArgvError("--check-signature is an option of patch only.")
    for name, option in (
        ("block_size", "-b/--block-size"),
        ("input_size", "-I/--input-size"),
        ("output_size", "-O/--output-size"),
    ):
        value = getattr(opts, name)
        if not 0 <= value <= MAX_SIZE:
            raise ArgvError(
                f"invalid {option} {value}: must be between 0 (the default) and {MAX_SIZE}.",
                try_help=False,
            )
    if opts.sum_size < -1:
        raise ArgvError(
            f"invalid -S/--sum-size {opts.sum_size}: must be 0 (max), -1 (min) or positive.",
            try_help=False,
        )
    if opts.jobs is not None and opts.jobs < 0:
        raise ArgvError(
            f"invalid -j/--jobs {opts.jobs}: must be 0 (every CPU) or a number of threads.",
            try_help=False,
        )


def _no_action() -> ArgvError:
    return ArgvError("You must specify an action: `signature', `delta', or `patch'.")
