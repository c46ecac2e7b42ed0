"""Files the package reads at run time, found through ``importlib.resources`` wherever it is installed.

In the wheel they are package data (``service/templates``, ``service/schemas``, ``service/samples``);
in a source checkout those are symlinks to the repository's ``templates/``, ``schemas/`` and
``deploy/samples/``, which stay the sources.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

DISTRIBUTION = "milestone-notifier"


def packaged(name: str) -> Path:
    """The installed path of ``service/<name>`` (the package is installed as files, not zipped)."""
    return Path(str(resources.files("service").joinpath(name)))


def templates_dir() -> Path:
    return packaged("templates")


def schemas_dir() -> Path:
    return packaged("schemas")


def sample_events() -> Path:
    return packaged("samples") / "events.jsonl"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"
