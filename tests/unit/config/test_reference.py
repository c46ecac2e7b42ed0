"""The README's settings reference is the settings model's: generated, and failing when they drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import main
from service.config.reference import END, START, reference, with_reference
from service.settings import Settings, env_names

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_section_is_the_one_generated_from_the_model() -> None:
    text = README.read_text(encoding="utf-8")
    assert with_reference(text) == text, "run: notifier settings reference --write README.md"


def test_every_setting_is_in_the_reference_once_with_a_meaning() -> None:
    section = reference()
    for name, field in Settings.model_fields.items():
        variable = env_names((name,)).split(" ")[0]
        assert section.count(f"| `{variable}`") == 1, variable
        assert field.description, f"{variable} has no description"


@pytest.mark.parametrize(
    ("variable", "row"),
    [
        ("NOTIFIER_SEND_CONCURRENCY", "| integer (≥ 1, ≤ 1000) | `128` |"),
        (
            "NOTIFIER_SMS_PROVIDERS",
            "| comma-separated list (one of `twilio`, `infobip`) | `twilio,infobip` |",
        ),
        ("NOTIFIER_PUBLIC_BASE_URL", "| text, optional | – |"),
        ("NOTIFIER_TWILIO_AUTH_TOKEN", "| secret | the sandbox's public value (refused off loopback) |"),
        ("NOTIFIER_SANDBOX_MODE", "| `true` / `false` | `false` |"),
        ("NOTIFIER_DATABASE_URL", "(or `DATABASE_URL`) | text |"),
    ],
)
def test_a_row_shows_type_bounds_and_default(variable: str, row: str) -> None:
    (line,) = [line for line in reference().splitlines() if line.startswith(f"| `{variable}`")]
    assert row in line


def test_a_file_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no settings section"):
        with_reference("# a README\n")


def test_check_fails_on_a_drifted_file_and_write_mends_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"# Settings\n{START}\n| `NOTIFIER_GONE` | … |\n{END}\nafter\n", encoding="utf-8")
    assert main(["settings", "check", "--file", str(doc)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["settings", "reference", "--write", str(doc)]) == 0
    assert main(["settings", "check", "--file", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Settings\n")
    assert text.endswith(f"{END}\nafter\n")
    assert "NOTIFIER_GONE" not in text
    assert main(["settings", "check", "--file", str(tmp_path / "missing.md")]) == 2
