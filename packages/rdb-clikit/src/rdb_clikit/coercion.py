"""Convert the plain parameter values of a typer command without loading pydantic.

typer (0.26 and later) converts every non-flag parameter through a pydantic ``TypeAdapter``
built the first time the parameter is parsed. Importing pydantic and building the adapters
costs about 0.1 s per run: more than everything else ``rdb-restore list REPO`` does. The
rdb-* commands' parameters are plain ``str``, ``Path``, ``int`` (maybe with a minimum), ``float``
and ``list[str]``; for a value whose conversion is unambiguous (any ``str``, ASCII digits within
the bounds, an existing readable or a missing path...) the result is what typer's adapter
returns, so it is computed here. Anything else (a bad value, ``' 3'``, ``'3.0'``, a type not
listed here) goes to typer's own conversion, which builds its adapter as before: accepted
spellings and error messages stay typer's.

This relies on typer's ``_TyperParameter`` keeping its lazily built converter in
``_runtime_param`` (typer >= 0.26) and calling its ``coerce(value, param=..., ctx=...)``; with
a typer that has no ``_runtime_param``, nothing is installed and typer converts every value
itself (correct, only slower); one that asks its converter for anything else gets typer's own
converter's answer (:meth:`FastConversion.__getattr__`). tests/rdb_clikit/test_coercion.py
compares the values and messages with the installed typer's own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args, get_origin

_UNSURE: Any = object()


def _as_int(value: object, info: Any) -> Any:
    if type(value) is int:
        number = value
    elif type(value) is str and 0 < len(value) < 19 and value.isascii() and value.isdigit():
        number = int(value)
    else:
        return _UNSURE
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        return _UNSURE  # typer clamps or words the error
    return number


def _as_float(value: object, info: Any) -> Any:
    if info.min is not None or info.max is not None:
        return _UNSURE
    if type(value) is float:
        return value
    if (
        type(value) is str
        and value.isascii()
        and value.replace(".", "", 1).isdigit()
        and value[0] != "."
        and value[-1] != "."
    ):
        return float(value)  # "2", "0.05": what pydantic makes of them too
    return _UNSURE


def _as_path(value: object, info: Any) -> Any:
    plain = not (
        info.exists
        or info.resolve_path
        or info.writable
        or info.allow_dash
        or info.path_type is not None
        or not info.file_okay
        or not info.dir_okay
    )
    if not plain:
        return _UNSURE
    if isinstance(value, Path):
        path = value
    elif type(value) is str and value:
        path = Path(value)
    else:
        return _UNSURE
    try:
        os.stat(path)
    except OSError:
        return path  # a missing path is accepted as it is
    if info.readable and not os.access(path, os.R_OK):
        return _UNSURE  # typer says "... is not readable."
    return path


def convert(annotation: Any, info: Any, value: object) -> Any:
    """The converted value, or ``_UNSURE`` when typer must decide."""
    if getattr(info, "parser", None) is not None:
        return _UNSURE
    if annotation is str:
        return value if type(value) is str else _UNSURE
    if annotation is bool:
        return value if type(value) is bool else _UNSURE
    if annotation is int:
        return _as_int(value, info)
    if annotation is float:
        return _as_float(value, info)
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return _as_path(value, info) if annotation is Path else _UNSURE
    if (
        get_origin(annotation) is list
        and get_args(annotation) == (str,)
        and isinstance(value, (list, tuple))
        and all(type(item) is str for item in value)
    ):
        return list(value)
    return _UNSURE


class FastConversion:
    """Stands in for typer's converter of one parameter until a value needs typer's.

    Only ``coerce(value, ...)`` is answered here; anything else typer may ask of its converter
    (another method, in a later typer) goes to typer's own, built then, as does every value
    not converted here."""

    def __init__(self, parameter: Any) -> None:
        self._parameter = parameter

    def _typers(self) -> Any:
        """Hand this parameter back to typer for good: it builds its own converter now."""
        self._parameter._runtime_param = None
        return self._parameter.get_runtime_param()

    def coerce(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        parameter = self._parameter
        multiple = parameter.multiple or parameter.nargs == -1
        if value is None:
            return () if multiple else None  # as typer's converter answers
        if not (multiple and isinstance(value, str)):
            descriptor = parameter.type_descriptor
            result = convert(descriptor.annotation, descriptor.parameter_info, value)
            if result is not _UNSURE:
                return result
        return self._typers().coerce(value, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_parameter":
            raise AttributeError(name)
        return getattr(self._typers(), name)


def _install_one(parameter: Any) -> None:
    if (
        hasattr(parameter, "type_descriptor")
        and hasattr(parameter, "get_runtime_param")
        and getattr(parameter, "_runtime_param", False) is None
    ):
        parameter._runtime_param = FastConversion(parameter)


def install(command: Any) -> None:
    """Give every parameter of ``command`` (a click command or group, recursively) a
    :class:`FastConversion`, where typer has not built its converter yet."""
    for parameter in getattr(command, "params", ()):
        _install_one(parameter)
    help_option = getattr(command, "get_help_option", None)
    if help_option is not None:
        # click makes the -h/--help option when a context first asks for it.
        def get_help_option(ctx: Any, _made_by: Any = help_option) -> Any:
            option = _made_by(ctx)
            if option is not None:
                _install_one(option)
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        install(sub)
