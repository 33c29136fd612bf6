"""Options every rdb-* command spells the same way, as typer ``Annotated`` aliases.

Usage::

    @app.command()
    def main(repo: Path, *, json_output: JsonOpt = False, quiet: QuietOpt = False,
             verbose: VerboseOpt = 0) -> int: ...
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}

JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Write the result as one JSON document on stdout (errors too); no colour, no bars.",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Print nothing on stderr but errors (no progress, no warnings)."
    ),
]
TimeoutOpt = Annotated[
    int,
    typer.Option(
        "--timeout",
        min=0,
        metavar="SECONDS",
        help="Remote runs: give up when nothing is received or sent for SECONDS (rsync's "
        "--timeout; 0: never). Both sides send keep-alives while they work, so only a "
        "stalled peer (host down, process stopped, network gone) reaches it. The server "
        "started gets the same --timeout.",
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option("--verbose", "-v", count=True, help="Say more on stderr (repeat for more)."),
]

EXIT_STATUS = (
    "Exit status: 0 success; 1 fatal error; 2 usage error; 3 finished with warnings; "
    "10 not a repository; 11 locked; 12 unsupported format; 13 corrupt repository; "
    "14 unfinished session (regress first); 130 interrupted (docs/exit-codes.md)."
)


def epilog(*examples: str, notes: str = "") -> str:
    """A help epilog: one example command per line, notes, then the exit-status summary.

    Use it as ``@app.command(epilog=epilog("rdb-x REPO", "rdb-x --json REPO | jq ."))``.
    """
    parts = []
    if examples:
        parts.append("Examples:\n\n" + "\n\n".join(f"  $ {example}" for example in examples))
    if notes:
        parts.append(notes)
    parts.append(EXIT_STATUS)
    return "\n\n".join(parts)


def make_app(*, name: str) -> typer.Typer:
    """A typer app with ``-h``, rich help, no completion commands, no pretty tracebacks.

    Give the command's help as its docstring and ``epilog=epilog(...)`` on ``app.command``.
    """
    return typer.Typer(
        name=name,
        context_settings=CONTEXT_SETTINGS,
        add_completion=False,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )
