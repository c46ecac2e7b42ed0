"""How the settings' groups read a value the environment gives as text."""

from __future__ import annotations


def split_commas(v: object) -> object:
    """A list given as ``a, b`` (a JSON list is left to pydantic)."""
    if isinstance(v, str) and not v.lstrip().startswith("["):
        return [t.strip() for t in v.split(",") if t.strip()]
    return v
