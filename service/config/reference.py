"""The settings reference: every setting's variable, type, default and meaning, generated from the
settings model into a marked section of the README (``notifier settings reference --write README.md``;
``notifier settings check`` and a unit test fail when the README has drifted from the model)."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from service.settings import SANDBOX_SECRETS, Settings, env_names

START = "<!-- settings-reference:start (generated from service/config/ by `notifier settings reference --write README.md`: edit the models, not this) -->"
END = "<!-- settings-reference:end -->"

_TYPES: dict[object, str] = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "`true` / `false`",
    SecretStr: "secret",
    Path: "path",
}
_BOUNDS = (
    (annotated_types.Ge, "≥"),
    (annotated_types.Gt, ">"),
    (annotated_types.Le, "≤"),
    (annotated_types.Lt, "<"),
)


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        shown = [_type(a) for a in args if a is not type(None)]
        return " or ".join(shown) + (", optional" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"comma-separated list ({_type(args[0])})" if args else "comma-separated list"
    return _TYPES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(field: FieldInfo) -> str:
    found = [
        f"{sign} {getattr(m, kind.__name__.lower())}"
        for m in field.metadata
        for kind, sign in _BOUNDS
        if isinstance(m, kind)
    ]
    return f" ({', '.join(found)})" if found else ""


def _default(name: str, field: FieldInfo) -> str:
    if name in SANDBOX_SECRETS:
        return "the sandbox's public value (refused off loopback)"
    if field.default_factory is not None:
        return "the templates shipped in the package" if name == "templates_dir" else "(computed)"
    value = field.default
    if value is None:
        return "–"
    if isinstance(value, list):
        return f"`{','.join(map(str, value))}`" if value else "–"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _groups() -> list[type[BaseModel]]:
    """The settings' groups (``service/config/``), in the order ``Settings`` lists its fields."""
    return [b for b in reversed(Settings.__bases__) if issubclass(b, BaseModel) and b.model_fields]


def reference() -> str:
    """The README's settings section, markers included: one table per group of settings."""
    lines = [START, ""]
    for group in _groups():
        title = (group.__doc__ or group.__name__).strip().split("\n\n")[0]
        lines += [f"**{' '.join(title.split())}** (`{group.__module__.replace('.', '/')}.py`)", ""]
        lines += ["| variable | type | default | meaning |", "|---|---|---|---|"]
        for name in group.model_fields:
            field = Settings.model_fields[name]
            kind = _type(field.annotation) + _bounds(field)
            names = env_names((name,)).removesuffix(")").split(" (or ")
            shown = f"`{names[0]}`" + "".join(f" (or `{n}`)" for n in names[1:])
            row = (shown, kind, _default(name, field), field.description or "")
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
        lines.append("")
    return "\n".join([*lines, END])


def with_reference(text: str) -> str:
    """``text`` (the README) with its settings section replaced by the generated one."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"no settings section: the file needs the two lines\n{START}\n{END}")
    return head + reference() + tail
