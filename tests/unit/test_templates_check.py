from __future__ import annotations

import shutil
from pathlib import Path

from service.cli import main
from service.compose.render import Renderer
from service.domain.follow_ups import FollowUp
from service.domain.segments import is_gsm7
from service.templates_check import (
    TYPICAL_SURVEY_URL,
    CheckResult,
    check_templates,
    follow_up_extra,
    sample_update,
    survey_url_like,
)

REPO = Path(__file__).resolve().parents[2]


def renderer(templates: Path, **kwargs: object) -> Renderer:
    return Renderer(
        templates,
        brand="Specialized",
        contact_phone="+852 3001 2345",
        contact_email="hk@example.com",
        **kwargs,  # type: ignore[arg-type]
    )


def test_every_shipped_template_renders_within_its_budget() -> None:
    results = check_templates(renderer(REPO / "templates"), REPO / "templates")
    assert len(results) == 20  # (3 milestones + 2 follow-ups) x 2 locales x names in 2 scripts
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
    assert not results["customs_cleared.en [latin]"].ok
    assert results["customs_cleared.en [latin]"].segments is not None
    assert results["customs_cleared.en [latin]"].segments > results["customs_cleared.en [latin]"].budget
    assert results["customs_cleared.zh-HK [latin]"].ok


def test_a_missing_variable_fails_the_check_and_names_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "sms" / "arrived_hk_warehouse.en.txt.j2").write_text(
        "Hi {{ nickname }}", encoding="utf-8"
    )
    results = {
        r.template: r for r in check_templates(renderer(tmp_path / "templates"), tmp_path / "templates")
    }
    bad = results["arrived_hk_warehouse.en [cjk]"]
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


def check(templates: Path, **kwargs: object) -> dict[str, CheckResult]:
    return {r.template: r for r in check_templates(renderer(templates, **kwargs), templates)}


def test_the_check_covers_chinese_names_and_addresses_in_english_messages(tmp_path: Path) -> None:
    # An English pickup SMS for a Chinese address is UCS-2: with the old budget of 4 the check fails.
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    budgets = tmp_path / "templates" / "sms" / "budgets.toml"
    budgets.write_text(
        budgets.read_text(encoding="utf-8").replace('"ready_for_pickup.en" = 6', '"ready_for_pickup.en" = 4'),
        encoding="utf-8",
    )
    results = check(tmp_path / "templates")
    assert results["ready_for_pickup.en [latin]"].ok
    cjk = results["ready_for_pickup.en [cjk]"]
    assert (cjk.ok, cjk.encoding) == (False, "UCS-2")
    assert cjk.segments is not None
    assert cjk.segments > 4


def test_a_long_latin_name_is_measured_in_chinese_messages() -> None:
    results = check(REPO / "templates")
    latin, cjk = results["ready_for_pickup.zh-HK [latin]"], results["ready_for_pickup.zh-HK [cjk]"]
    assert latin.encoding == cjk.encoding == "UCS-2"
    assert latin.segments is not None
    assert cjk.segments is not None
    assert latin.segments > cjk.segments  # a letter costs a UCS-2 unit, as much as a character


def test_a_budget_over_the_segment_cap_fails_the_check() -> None:
    results = check(REPO / "templates", max_sms_segments=5)
    over = results["ready_for_pickup.zh-HK [latin]"]
    assert not over.ok
    assert over.error is not None
    assert "NOTIFIER_SMS_MAX_SEGMENTS" in over.error
    assert results["customs_cleared.zh-HK [latin]"].ok  # budget 4: within the cap


def test_the_check_measures_the_full_message_not_a_shortened_one(tmp_path: Path) -> None:
    # Shortening is for data beyond the worst case; it must not make a template "fit" its budget.
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "sms" / "budgets.toml").write_text("default = 2\n", encoding="utf-8")
    results = check(tmp_path / "templates", max_sms_segments=2)
    assert not results["ready_for_pickup.zh-HK [latin]"].ok
    full = results["ready_for_pickup.zh-HK [latin]"].segments
    assert full is not None
    assert full > 2


def test_the_chinese_sample_is_chinese() -> None:
    cjk = sample_update(worst_case=True, script="cjk")
    assert not is_gsm7(cjk.recipient.name)
    assert cjk.pickup is not None
    assert not is_gsm7(cjk.pickup.address)


def test_the_follow_ups_are_checked_in_both_locales_with_their_worst_case() -> None:
    results = {r.template: r for r in check_templates(renderer(REPO / "templates"), REPO / "templates")}
    for kind in ("pickup_reminder", "survey"):
        for locale in ("zh-HK", "en"):
            for script in ("latin", "cjk"):
                assert results[f"{kind}.{locale} [{script}]"].ok
    assert follow_up_extra(FollowUp.PICKUP_REMINDER) == {"reminder_number": 5, "days_waiting": 60}
    assert follow_up_extra(FollowUp.SURVEY) == {"survey_url": TYPICAL_SURVEY_URL}


def test_a_survey_link_on_a_long_address_can_break_the_survey_budget() -> None:
    long_base = "https://feedback.example.com.hk/" + "s" * 130 + "?campaign=pickup-2026"  # 184
    assert len(survey_url_like(long_base)) == len(long_base) + len("&t=") + 30
    results = {
        r.template: r
        for r in check_templates(
            renderer(REPO / "templates"), REPO / "templates", survey_url=survey_url_like(long_base)
        )
    }
    assert not results["survey.en [latin]"].ok
    assert results["pickup_reminder.en [latin]"].ok


def test_a_reminder_template_missing_its_variable_fails_the_check(tmp_path: Path) -> None:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "sms" / "pickup_reminder.en.txt.j2").write_text(
        "Waiting {{ days_waitin }} days", encoding="utf-8"
    )
    results = {
        r.template: r for r in check_templates(renderer(tmp_path / "templates"), tmp_path / "templates")
    }
    error = results["pickup_reminder.en [latin]"].error
    assert error is not None
    assert "days_waitin" in error


def test_cli_renders_a_follow_up_of_its_milestone_only(capsys) -> None:  # type: ignore[no-untyped-def]
    assert (
        main(
            [
                "templates",
                "render",
                "--milestone",
                "ready_for_pickup",
                "--follow-up",
                "survey",
                "--locale",
                "zh-HK",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "請為我們的服務評分：https://survey.example.com.hk/" in out
    assert (
        main(
            [
                "templates",
                "render",
                "--milestone",
                "customs_cleared",
                "--follow-up",
                "survey",
                "--locale",
                "en",
            ]
        )
        == 2
    )
    assert "follows --milestone ready_for_pickup" in capsys.readouterr().err
