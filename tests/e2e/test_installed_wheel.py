"""The wheel works wherever it is installed: built from a copy of the sources, installed into a fresh
virtualenv outside the repository, and run from a directory outside it, with no
``NOTIFIER_TEMPLATES_DIR``: templates, migrations, schemas and sample events come from the package.

The fresh virtualenv gets the package alone (``--no-deps``); its dependencies come from the test's
own virtualenv through a ``.pth`` line naming that site-packages (not the repository: a ``.pth`` in
a directory named that way is not run, so the editable install of the checkout stays out).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "README.md", "service", "templates", "schemas", "deploy/samples"]


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh virtualenv holding only the built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    built = _run(sys.executable, "-m", "pip", "wheel", src, "--no-deps", "-v", "-w", root / "dist", cwd=root)
    assert built.returncode == 0, built.stdout + built.stderr
    # -v shows the build backend's own output: setuptools' deprecations (the licence table) are in it
    assert "DeprecationWarning" not in built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("milestone_notifier-*.whl")

    venv = root / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root).stdout.strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    put = _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel, cwd=root)
    assert put.returncode == 0, put.stdout + put.stderr
    return venv / "bin"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    assert not tmp_path.is_relative_to(REPO)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_") and k != "PYTHONPATH"}
    return env | {"NOTIFIER_LOG_LEVEL": "WARNING"} | extra


def test_the_package_imported_is_the_installed_one(installed: Path, outside: Path) -> None:
    run = _run(installed / "python", "-c", "import service; print(service.__file__)", cwd=outside, env=_env())
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()).is_relative_to(installed.parent)


def test_version(installed: Path, outside: Path) -> None:
    run = _run(installed / "notifier", "--version", cwd=outside, env=_env())
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"notifier {metadata.version('milestone-notifier')}"


def test_templates_and_schemas_check_with_the_packaged_files(installed: Path, outside: Path) -> None:
    for argv in (["templates", "check"], ["schemas", "check"]):
        run = _run(installed / "notifier", *argv, cwd=outside, env=_env())
        assert run.returncode == 0, run.stdout + run.stderr
    run = _run(
        installed / "notifier",
        "templates",
        "render",
        "--milestone",
        "customs_cleared",
        "--locale",
        "en",
        cwd=outside,
        env=_env(),
    )
    assert run.returncode == 0, run.stderr
    assert "segment(s)" in run.stdout


def test_db_migrate_applies_the_packaged_migrations(
    installed: Path, outside: Path, database_url: str
) -> None:
    shipped = len(list((REPO / "service" / "store" / "migrations").glob("*.sql")))
    run = _run(installed / "notifier", "db", "migrate", cwd=outside, env=_env(DATABASE_URL=database_url))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == f"migrations applied ({shipped} new)"
    again = _run(installed / "notifier", "db", "migrate", cwd=outside, env=_env(DATABASE_URL=database_url))
    assert again.stdout.strip() == "migrations applied (0 new)", again.stderr
