from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from service.compose.render import Renderer, window_en, window_zh_hk
from service.domain.errors import ConfigError, RenderError, SmsTooLong
from service.domain.links import LinkSigner
from service.domain.milestones import Milestone
from service.domain.model import Pickup, Recipient, ShipmentUpdate, notification_id

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
REPO = Path(__file__).resolve().parents[3]
PHONE = "+852 3001 2345"
EMAIL = "hk-support@example.com"

# The TMS sends the window in any offset; 06:00Z is 14:00 in Hong Kong.
WINDOW = (datetime(2026, 11, 24, 6, 0, tzinfo=UTC), datetime(2026, 11, 24, 10, 0, tzinfo=UTC))


def sample(
    *,
    name: str,
    model: str = "Tarmac SL8 Expert",
    location: str | None,
    place: str,
    address: str,
    documents: tuple[str, ...] = ("HKID", "ORDER_CONFIRMATION"),
) -> ShipmentUpdate:
    return ShipmentUpdate(
        event_id="evt-1",
        order_id="SO-2026-004512",
        waybill="SF1234567890",
        tms_status="READY_FOR_PICKUP",
        occurred_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        bike_model=model,
        recipient=Recipient(name=name, phone="9123 4567", email="tai.man@example.com", locale=None),
        location=location,
        pickup=Pickup(place, address, *WINDOW, documents=documents),
    )


SAMPLES = {
    "zh-HK": sample(
        name="陳大文",
        location="葵涌貨倉",
        place="Specialized 旺角門市",
        address="九龍旺角花園街123號地下",
    ),
    "en": sample(
        name="Chan Tai Man",
        location="Kwai Chung warehouse",
        place="Specialized Mong Kok",
        address="123 Fa Yuen Street, Mong Kok, Kowloon",
    ),
}

#: Long but real: an English full name, a long model, a delegate's authorisation letter.
LONG_SAMPLES = {
    "zh-HK": sample(
        name="Christopher Chan Tai-man",
        model="S-Works Tarmac SL8",
        location="新界葵涌貨櫃碼頭路88號",
        place="Specialized 旺角門市",
        address="九龍旺角花園街123號地下",
        documents=("HKID", "ORDER_CONFIRMATION", "AUTHORISATION_LETTER"),
    ),
    "en": sample(
        name="Christopher Alexander Montgomery-Wong",
        model="S-Works Turbo Levo SL Carbon 2025",
        location="Kwai Chung Container Terminal warehouse",
        place="Specialized Causeway Bay Flagship",
        address="Unit 1203, 12/F, Hysan Place, 500 Hennessy Road, Causeway Bay",
        documents=("HKID", "ORDER_CONFIRMATION", "AUTHORISATION_LETTER"),
    ),
}

GOLDEN = {
    (Milestone.ARRIVED_HK_WAREHOUSE, "zh-HK"): (
        "【Specialized】陳大文您好！您訂購的Tarmac SL8 Expert單車已到達香港（葵涌貨倉）。"
        "完成海關手續後，我們會再短訊通知您取車安排。\n"
        "訂單編號：SO-2026-004512\n"
        "查詢：3001 2345"
    ),
    (Milestone.CUSTOMS_CLEARED, "zh-HK"): (
        "【Specialized】陳大文您好！您訂購的Tarmac SL8 Expert單車已完成海關手續，"
        "我們正為您準備，可以取車時會再短訊通知您。多謝耐心等候！\n"
        "訂單編號：SO-2026-004512\n"
        "查詢：3001 2345"
    ),
    (Milestone.READY_FOR_PICKUP, "zh-HK"): (
        "【Specialized】陳大文您好！您的Tarmac SL8 Expert已可取車：\n"
        "地點：Specialized 旺角門市，九龍旺角花園街123號地下\n"
        "時間：11月24日（星期二）14:00–18:00\n"
        "請帶備：身份證、訂單確認書\n"
        "祝您公路騎行突破自我！\n"
        "訂單編號：SO-2026-004512\n"
        "查詢：3001 2345"
    ),
    (Milestone.ARRIVED_HK_WAREHOUSE, "en"): (
        "Specialized: Hi Chan Tai Man, your Tarmac SL8 Expert has arrived in Hong Kong "
        "(Kwai Chung warehouse). Once it has cleared customs, we will text you about collecting it.\n"
        "Order: SO-2026-004512\n"
        "Questions? Call +852 3001 2345"
    ),
    (Milestone.CUSTOMS_CLEARED, "en"): (
        "Specialized: Hi Chan Tai Man, good news: your Tarmac SL8 Expert has cleared Hong Kong customs. "
        "We are getting it ready and will text you when you can collect it.\n"
        "Order: SO-2026-004512\n"
        "Questions? Call +852 3001 2345"
    ),
    (Milestone.READY_FOR_PICKUP, "en"): (
        "Specialized: Hi Chan Tai Man, your Tarmac SL8 Expert is ready to collect!\n"
        "Where: Specialized Mong Kok, 123 Fa Yuen Street, Mong Kok, Kowloon\n"
        "When: Tue 24 Nov, 14:00-18:00\n"
        "Please bring: HKID card, order confirmation\n"
        "Enjoy the road!\n"
        "Order: SO-2026-004512\n"
        "Questions? Call +852 3001 2345"
    ),
}

#: Simplified-only forms of characters our Chinese text uses or could use:
#: 貨達請證碼們時單車關號詢訂點間謝 in Traditional.
SIMPLIFIED = set("货达请证码们时单车关号询订点间谢")


def renderer(templates: Path = TEMPLATES, **kwargs: str) -> Renderer:
    return Renderer(templates, brand="Specialized", contact_phone=PHONE, contact_email=EMAIL, **kwargs)


@pytest.fixture(scope="module")
def r() -> Renderer:
    return renderer()


def one_template(tmp_path: Path, milestone: Milestone, locale: str, text: str) -> Path:
    (tmp_path / "sms").mkdir(exist_ok=True)
    (tmp_path / "sms" / f"{milestone.value}.{locale}.txt.j2").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("milestone", "locale"), list(GOLDEN))
def test_golden_body(r: Renderer, milestone: Milestone, locale: str) -> None:
    msg = r.render_sms(milestone, SAMPLES[locale], locale)
    assert msg.body == GOLDEN[milestone, locale]
    assert msg.locale == locale


@pytest.mark.parametrize("milestone", list(Milestone))
def test_english_is_gsm7_and_chinese_is_ucs2(r: Renderer, milestone: Milestone) -> None:
    assert r.render_sms(milestone, SAMPLES["en"], "en").encoding == "GSM-7"
    assert r.render_sms(milestone, SAMPLES["zh-HK"], "zh-HK").encoding == "UCS-2"


@pytest.mark.parametrize("milestone", list(Milestone))
def test_chinese_is_traditional(r: Renderer, milestone: Milestone) -> None:
    for update in (SAMPLES["zh-HK"], LONG_SAMPLES["zh-HK"]):
        body = r.render_sms(milestone, update, "zh-HK").body
        assert not SIMPLIFIED & set(body)


@pytest.mark.parametrize("locale", ["zh-HK", "en"])
@pytest.mark.parametrize("milestone", list(Milestone))
def test_long_sample_fits_three_segments(r: Renderer, milestone: Milestone, locale: str) -> None:
    msg = r.render_sms(milestone, LONG_SAMPLES[locale], locale)
    assert msg.encoding == ("GSM-7" if locale == "en" else "UCS-2")
    assert msg.segments <= 3


@pytest.mark.parametrize(
    ("requested", "locale"),
    [
        ("zh-HK", "zh-HK"),
        ("zh_hk", "zh-HK"),
        ("ZH-HK", "zh-HK"),
        ("zh-Hant", "zh-HK"),
        ("zh-TW", "zh-HK"),
        ("zh", "zh-HK"),
        ("yue", "zh-HK"),
        ("zh-Hant-HK", "zh-HK"),
        ("en", "en"),
        ("en-GB", "en"),
        ("en_US", "en"),
        (" EN ", "en"),
        ("en-AU", "en"),
        (None, "zh-HK"),
        ("", "zh-HK"),
        ("fr-FR", "zh-HK"),
        ("klingon", "zh-HK"),
    ],
)
def test_choose_locale(r: Renderer, requested: str | None, locale: str) -> None:
    assert r.choose_locale(requested) == locale


def test_unknown_locale_falls_back_to_the_configured_default() -> None:
    assert renderer(default_locale="en").choose_locale("fr") == "en"


def test_unsupported_default_locale_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fr"):
        renderer(default_locale="fr")


def test_undefined_variable_raises_render_error_naming_it_without_customer_data(tmp_path: Path) -> None:
    templates = one_template(tmp_path, Milestone.ARRIVED_HK_WAREHOUSE, "en", "Hi {{ customer_nam }}")
    with pytest.raises(RenderError) as info:
        renderer(templates).render_sms(Milestone.ARRIVED_HK_WAREHOUSE, SAMPLES["en"], "en")
    message = str(info.value)
    assert "sms/arrived_hk_warehouse.en.txt.j2" in message
    assert "customer_nam" in message
    assert "Chan" not in message
    assert info.value.__cause__ is None


def test_missing_attribute_raises_render_error(tmp_path: Path) -> None:
    templates = one_template(tmp_path, Milestone.READY_FOR_PICKUP, "en", "{{ pickup.door_code }}")
    with pytest.raises(RenderError, match="door_code"):
        renderer(templates).render_sms(Milestone.READY_FOR_PICKUP, SAMPLES["en"], "en")


def test_missing_template_raises_render_error(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"sms/customs_cleared\.en\.txt\.j2: not found"):
        renderer(tmp_path).render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en")


def test_template_syntax_error_raises_render_error(tmp_path: Path) -> None:
    templates = one_template(tmp_path, Milestone.CUSTOMS_CLEARED, "en", "Hi {{ customer_name ")
    with pytest.raises(RenderError, match="syntax error line 1"):
        renderer(templates).render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en")


def test_lookup_by_customer_data_does_not_leak_it_into_the_error(tmp_path: Path) -> None:
    templates = one_template(tmp_path, Milestone.CUSTOMS_CLEARED, "en", "{{ {}[customer_name] }}")
    with pytest.raises(RenderError, match="name withheld") as info:
        renderer(templates).render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en")
    assert "Chan" not in str(info.value)


def test_failing_filter_raises_render_error(tmp_path: Path) -> None:
    templates = one_template(tmp_path, Milestone.CUSTOMS_CLEARED, "en", "{{ customer_name | round }}")
    with pytest.raises(RenderError, match="TypeError while rendering") as info:
        renderer(templates).render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en")
    assert "Chan" not in str(info.value)


def test_pickup_message_without_pickup_raises_render_error(r: Renderer) -> None:
    update = replace(SAMPLES["zh-HK"], pickup=None)
    with pytest.raises(
        RenderError, match=r"ready_for_pickup\.zh-HK\.txt\.j2: undefined variable 'place'"
    ) as info:
        r.render_sms(Milestone.READY_FOR_PICKUP, update, "zh-HK")
    assert "陳大文" not in str(info.value)


def test_unsupported_locale_raises_render_error(r: Renderer) -> None:
    with pytest.raises(RenderError, match="unsupported locale"):
        r.render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "fr")


def test_pickup_window_without_time_zone_raises_render_error(r: Renderer) -> None:
    assert SAMPLES["en"].pickup is not None
    naive = replace(SAMPLES["en"].pickup, window_start=datetime(2026, 11, 24, 14, 0))
    with pytest.raises(RenderError, match="time zone"):
        r.render_sms(Milestone.READY_FOR_PICKUP, replace(SAMPLES["en"], pickup=naive), "en")


def test_pickup_window_is_shown_in_hong_kong_time(r: Renderer) -> None:
    assert SAMPLES["zh-HK"].pickup is not None
    plus_nine = timezone(timedelta(hours=9))
    pickup = replace(
        SAMPLES["zh-HK"].pickup,
        window_start=datetime(2026, 11, 25, 0, 30, tzinfo=plus_nine),
        window_end=datetime(2026, 11, 25, 2, 0, tzinfo=plus_nine),
    )
    body = r.render_sms(Milestone.READY_FOR_PICKUP, replace(SAMPLES["zh-HK"], pickup=pickup), "zh-HK").body
    assert "時間：11月24日（星期二）23:30 至 11月25日（星期三）01:00" in body


@pytest.mark.parametrize(
    ("codes", "zh", "en"),
    [
        (("PASSPORT", "AUTHORISATION_LETTER"), "護照、授權書", "passport, authorisation letter"),
        (("hkid",), "身份證", "HKID card"),
        (("STAFF_PASS",), "STAFF_PASS", "STAFF_PASS"),
    ],
)
def test_document_codes_are_translated_and_unknown_ones_shown_as_given(
    r: Renderer, codes: tuple[str, ...], zh: str, en: str
) -> None:
    for locale, expected in (("zh-HK", f"請帶備：{zh}\n"), ("en", f"Please bring: {en}\n")):
        assert SAMPLES[locale].pickup is not None
        pickup = replace(SAMPLES[locale].pickup, documents=codes)
        update = replace(SAMPLES[locale], pickup=pickup)
        assert expected in r.render_sms(Milestone.READY_FOR_PICKUP, update, locale).body


def test_no_documents_drops_the_line(r: Renderer) -> None:
    assert SAMPLES["en"].pickup is not None
    update = replace(SAMPLES["en"], pickup=replace(SAMPLES["en"].pickup, documents=()))
    body = r.render_sms(Milestone.READY_FOR_PICKUP, update, "en").body
    assert "bring" not in body
    assert "\n\n" not in body


def test_no_location_drops_the_brackets(r: Renderer) -> None:
    update = replace(SAMPLES["en"], location=None)
    body = r.render_sms(Milestone.ARRIVED_HK_WAREHOUSE, update, "en").body
    assert "has arrived in Hong Kong. Once" in body


def test_values_are_kept_on_one_line(r: Renderer) -> None:
    update = replace(SAMPLES["en"], recipient=replace(SAMPLES["en"].recipient, name="Chan\n  Tai\tMan"))
    body = r.render_sms(Milestone.CUSTOMS_CLEARED, update, "en").body
    assert body.startswith("Specialized: Hi Chan Tai Man, good news")


def test_trailing_whitespace_and_blank_runs_are_collapsed(tmp_path: Path) -> None:
    text = "\n  {{ brand }}   \n\n\n\nOrder {{ order_id }}  \n\n\n"
    templates = one_template(tmp_path, Milestone.CUSTOMS_CLEARED, "en", text)
    msg = renderer(templates).render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en")
    assert msg.body == "Specialized\n\nOrder SO-2026-004512"
    assert msg.segments == 1


def test_templates_are_compiled_once(tmp_path: Path) -> None:
    shutil.copytree(TEMPLATES / "sms", tmp_path / "sms")
    r = renderer(tmp_path)
    first = r.render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en").body
    (tmp_path / "sms" / "customs_cleared.en.txt.j2").write_text("changed", encoding="utf-8")
    assert r.render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en").body == first
    assert renderer(tmp_path).render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en").body == "changed"


@pytest.mark.parametrize(
    ("start", "end", "zh", "en"),
    [
        (
            (2026, 11, 24, 14, 0),
            (2026, 11, 24, 18, 0),
            "11月24日（星期二）14:00–18:00",
            "Tue 24 Nov, 14:00-18:00",
        ),
        (
            (2026, 11, 29, 9, 5),
            (2026, 11, 29, 12, 0),
            "11月29日（星期日）09:05–12:00",
            "Sun 29 Nov, 09:05-12:00",
        ),
        (
            (2026, 12, 31, 20, 0),
            (2027, 1, 1, 2, 0),
            "12月31日（星期四）20:00 至 1月1日（星期五）02:00",
            "Thu 31 Dec 20:00 to Fri 1 Jan 02:00",
        ),
    ],
)
def test_window_filters(start: tuple[int, ...], end: tuple[int, ...], zh: str, en: str) -> None:
    s, e = datetime(*start), datetime(*end)  # wall-clock times: the filters format what they get
    assert window_zh_hk(s, e) == zh
    assert window_en(s, e) == en


@pytest.mark.parametrize(
    ("model", "locale", "closing"),
    [
        ("Stumpjumper 15 Comp", "en", "Enjoy the trails!"),
        ("S-Works Turbo Levo SL", "zh-HK", "祝您山徑騎行愉快！"),
        ("Diverge Comp Carbon", "en", "Enjoy exploring!"),
        ("Mystery Bike 3000", "en", None),
    ],
)
def test_closing_line_follows_the_kind_of_bike(model: str, locale: str, closing: str | None) -> None:
    from dataclasses import replace

    r = Renderer(REPO / "templates", brand="Specialized", contact_phone=PHONE, contact_email=EMAIL)
    body = r.render_sms(Milestone.READY_FOR_PICKUP, replace(SAMPLES[locale], bike_model=model), locale).body
    if closing is None:
        assert not any(line.startswith(("Enjoy", "祝您")) for line in body.splitlines())
    else:
        assert closing in body.splitlines()


def test_a_message_rendered_as_of_a_moment_is_the_same_text_whenever_it_is_rendered() -> None:
    # A re-claimed notification is rendered as of its first claim, so a provider's copy of an
    # earlier attempt (found by its text) matches even when the crash spanned midnight.
    ticks = iter([datetime(2026, 11, 20, 23, 59, tzinfo=UTC), datetime(2026, 11, 21, 0, 1, tzinfo=UTC)])
    r = Renderer(
        TEMPLATES,
        brand="Specialized",
        contact_phone=PHONE,
        contact_email=EMAIL,
        links=LinkSigner(b"k" * 32, "https://n.example"),
        clock=lambda: next(ticks),
    )
    first = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)
    m, update = Milestone.CUSTOMS_CLEARED, SAMPLES["en"]
    assert r.render_sms(m, update, "en", at=first).body == r.render_sms(m, update, "en", at=first).body
    # without ``at`` the link's expiry follows the clock, and the day changed
    assert r.render_sms(m, update, "en").body != r.render_sms(m, update, "en").body


# --- English SMS for Chinese names; the hard segment cap ------------------------------------------

CHINESE_NAME_EN = replace(
    SAMPLES["en"], recipient=replace(SAMPLES["en"].recipient, name="陳大文", locale="en"), location="葵涌貨倉"
)


@pytest.mark.parametrize("milestone", [Milestone.ARRIVED_HK_WAREHOUSE, Milestone.CUSTOMS_CLEARED])
def test_an_english_sms_leaves_out_a_chinese_name_and_stays_gsm7(milestone: Milestone) -> None:
    msg = renderer().render_sms(milestone, CHINESE_NAME_EN, "en")
    assert msg.encoding == "GSM-7"
    assert "陳大文" not in msg.body
    assert "葵涌" not in msg.body
    assert msg.body.startswith("Specialized: Hi, ")
    assert msg.segments <= 3
    # The email has no segments: it keeps the name.
    assert "陳大文" in renderer().render_email(milestone, CHINESE_NAME_EN, "en").text


def test_a_chinese_sms_keeps_the_chinese_name_and_an_english_sms_a_latin_one() -> None:
    assert "陳大文" in renderer().render_sms(Milestone.CUSTOMS_CLEARED, CHINESE_NAME_EN, "zh-HK").body
    assert "Hi Chan Tai Man," in renderer().render_sms(Milestone.CUSTOMS_CLEARED, SAMPLES["en"], "en").body


def _pickup_with(
    documents: tuple[str, ...], name: str = "Christopher Alexander Montgomery-Wong"
) -> ShipmentUpdate:
    base = LONG_SAMPLES["en"]
    assert base.pickup is not None
    return replace(
        base, recipient=replace(base.recipient, name=name), pickup=replace(base.pickup, documents=documents)
    )


def test_a_message_within_the_cap_is_not_shortened() -> None:
    msg = renderer().render_sms(Milestone.READY_FOR_PICKUP, LONG_SAMPLES["en"], "en")
    assert msg.shortened == ()
    assert "Christopher" in msg.body


def test_over_the_cap_the_name_goes_first() -> None:
    update = _pickup_with(("HKID", "PASSPORT"))  # a long Latin name: a UCS-2 unit a letter in Chinese
    full = renderer().render_sms(Milestone.READY_FOR_PICKUP, update, "zh-HK", shorten=False)
    assert full.segments == 5
    r = Renderer(TEMPLATES, brand="Specialized", contact_phone=PHONE, contact_email=EMAIL, max_sms_segments=4)
    msg = r.render_sms(Milestone.READY_FOR_PICKUP, update, "zh-HK")
    assert msg.shortened == ("name",)
    assert msg.segments <= 4
    assert "Christopher" not in msg.body
    assert msg.body.startswith("【Specialized】您好！")
    assert "請帶備：身份證、護照" in msg.body


def test_then_the_document_list_is_cut_to_and_n_more() -> None:
    codes = tuple(f"SUPPORTING_DOCUMENT_{i:02d}" for i in range(10))  # the contract's most
    r = Renderer(TEMPLATES, brand="Specialized", contact_phone=PHONE, contact_email=EMAIL, max_sms_segments=3)
    msg = r.render_sms(Milestone.READY_FOR_PICKUP, _pickup_with(codes), "en")
    assert msg.shortened == ("name", "documents")
    assert msg.segments <= 3
    kept = [c for c in codes if c in msg.body]
    assert kept == list(codes[: len(kept)])
    assert kept
    assert f"and {len(codes) - len(kept)} more" in msg.body
    r5 = Renderer(
        TEMPLATES, brand="Specialized", contact_phone=PHONE, contact_email=EMAIL, max_sms_segments=5
    )
    zh = r5.render_sms(Milestone.READY_FOR_PICKUP, _pickup_with(codes), "zh-HK")
    assert zh.shortened == ("name", "documents")
    assert zh.segments <= 5
    assert "另" in zh.body
    assert "項" in zh.body


def test_thousands_of_documents_never_make_a_551_segment_sms() -> None:
    # The contract refuses such an event; the renderer's cap holds even for a domain value past it.
    msg = renderer().render_sms(Milestone.READY_FOR_PICKUP, _pickup_with(("HKID",) * 5000), "en")
    assert msg.segments <= 6
    assert "and 4990 more" in msg.body


def test_still_too_long_raises_sms_too_long_without_customer_data() -> None:
    r = Renderer(TEMPLATES, brand="Specialized", contact_phone=PHONE, contact_email=EMAIL, max_sms_segments=1)
    with pytest.raises(SmsTooLong) as info:
        r.render_sms(Milestone.READY_FOR_PICKUP, LONG_SAMPLES["zh-HK"], "zh-HK")
    assert isinstance(info.value, RenderError)
    assert "Christopher" not in str(info.value)
    # The email is never capped: it still carries everything.
    mail = r.render_email(Milestone.READY_FOR_PICKUP, LONG_SAMPLES["zh-HK"], "zh-HK")
    assert "Christopher" in mail.text


def test_the_segment_cap_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        Renderer(TEMPLATES, brand="S", contact_phone=PHONE, contact_email=EMAIL, max_sms_segments=0)


def _follow_up_renderer() -> tuple[Renderer, LinkSigner]:
    links = LinkSigner(b"k" * 32, "https://n.example.hk")
    clock = lambda: datetime(2026, 11, 25, tzinfo=UTC)  # noqa: E731
    return Renderer(
        TEMPLATES, brand="Specialized", contact_phone=PHONE, contact_email=EMAIL, links=links, clock=clock
    ), links


@pytest.mark.parametrize("locale", ["zh-HK", "en"])
def test_a_pickup_reminder_names_the_place_and_the_days_and_links_the_pickup_notice(locale: str) -> None:
    r, links = _follow_up_renderer()
    update = SAMPLES[locale]
    msg = r.render_sms(
        Milestone.READY_FOR_PICKUP,
        update,
        locale,
        template="pickup_reminder",
        extra={"reminder_number": 1, "days_waiting": 3},
    )
    assert update.pickup is not None
    assert update.pickup.place in msg.body
    assert update.pickup.address in msg.body
    assert ("已可取車3日" if locale == "zh-HK" else "ready to collect for 3 days") in msg.body
    status = links.status_url(
        notification_id(update.order_id, Milestone.READY_FOR_PICKUP), datetime(2026, 11, 25, tzinfo=UTC)
    )
    assert status in msg.body
    assert "HKID" not in msg.body
    assert "身份證" not in msg.body
    mail = r.render_email(
        Milestone.READY_FOR_PICKUP,
        update,
        locale,
        template="pickup_reminder",
        extra={"reminder_number": 1, "days_waiting": 3},
    )
    assert update.order_id in mail.subject
    assert mail.text == msg.body


def test_a_follow_up_without_its_variables_does_not_render() -> None:
    r, _ = _follow_up_renderer()
    with pytest.raises(RenderError, match="'survey_url'"):
        r.render_sms(Milestone.READY_FOR_PICKUP, SAMPLES["en"], "en", template="survey")


@pytest.mark.parametrize("locale", ["zh-HK", "en"])
def test_a_survey_message_carries_its_link_and_no_name(locale: str) -> None:
    r, _ = _follow_up_renderer()
    url = "https://survey.example.com.hk/hk?t=" + "A" * 30
    msg = r.render_sms(
        Milestone.READY_FOR_PICKUP, SAMPLES[locale], locale, template="survey", extra={"survey_url": url}
    )
    assert url in msg.body
    assert SAMPLES[locale].recipient.name not in msg.body
    assert msg.segments <= 3
