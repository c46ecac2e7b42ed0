from __future__ import annotations

import shutil
from pathlib import Path

from service.cli import main
from service.render import Renderer
from service.templates_check import check_templates, sample_update

REPO = Path(__file__).resolve().parents[2]


def renderer(templates: Path) -> Renderer:
    return Renderer(
        templates, brand="Specialized", contact_phone="+852 3001 2345", contact_email="hk@example.com"
    )


def test_every_shipped_template_renders_within_its_budget() -> None:
    results = check_templates(renderer(REPO / "templates"), REPO / "templates")
    assert len(results) == 6
    assert [r.template for r in results if not r.ok] == []


def test_an_over_long_template_fails_the_check(tmp_path: Path) -> None:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    sms = tmp_path / "templates" / "sms" / "customs_cleared.en.txt.j2"
    sms.write_text(
        sms.read_text(encoding="utf-8") + "\n" + "We hope you enjoy every ride. " * 12, encoding="utf-8"
    )
    results = {
        r.template: r for r in check_templates(renderer(tmp_path / "templates"), tmp_path / "templates")
    }
    assert not results["customs_cleared.en"].ok
    assert results["customs_cleared.en"].segments is not None
    assert results["customs_cleared.en"].segments > results["customs_cleared.en"].budget
    assert results["customs_cleared.zh-HK"].ok


def test_a_missing_variable_fails_the_check_and_names_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "sms" / "arrived_hk_warehouse.en.txt.j2").write_text(
        "Hi {{ nickname }}", encoding="utf-8"
    )
    results = {
        r.template: r for r in check_templates(renderer(tmp_path / "templates"), tmp_path / "templates")
    }
    bad = results["arrived_hk_warehouse.en"]
    assert not bad.ok
    assert bad.error is not None
    assert "nickname" in bad.error


def test_cli_check_exit_code_follows_the_result(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NOTIFIER_TEMPLATES_DIR", raising=False)
    assert main(["templates", "check"]) == 0
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "sms" / "budgets.toml").write_text("default = 1\n", encoding="utf-8")
    monkeypatch.setenv("NOTIFIER_TEMPLATES_DIR", str(tmp_path / "templates"))
    assert main(["templates", "check"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_worst_case_sample_is_longer_than_the_typical_one() -> None:
    worst, typical = sample_update(worst_case=True), sample_update(worst_case=False)
    assert len(worst.recipient.name) > len(typical.recipient.name)
    assert worst.pickup is not None
    assert len(worst.pickup.documents) == 4
