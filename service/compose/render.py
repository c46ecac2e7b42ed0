"""Render SMS bodies from Jinja2 templates: the adapter between the domain and ``jinja2``.

Templates live under ``<templates_dir>/sms/{milestone}.{locale}.txt.j2`` (``templates_dir`` is
the repository's ``templates/`` folder, as in ``Settings.templates_dir``). Every Jinja2 error is
translated here into ``RenderError``, whose message names the template and the variable but
never carries customer data.

The template context:

    brand, contact_phone, contact_email     from settings
    customer_name, order_id, waybill,       from the event, each on one line
    bike_model, location (or None)
    pickup (or None): place, address,       window in Asia/Hong_Kong time, documents as
        window_start, window_end, documents labels in the message's language

``customer_name`` is "" when left out: in an English SMS a name that is not GSM-7 (e.g. 陳大文) is
never written, so the message stays GSM-7 (a single Chinese character would make the whole text
UCS-2, more than twice the segments); the same goes for a non-GSM ``location``. Templates write
the greeting with ``{% if customer_name %}``. The email keeps every value.

Segment cap: an SMS over ``max_sms_segments`` is shortened, in this order, until it fits: the
customer's name is left out (a greeting carries no information the customer needs), then the
pickup documents are cut to the first ones and "and N more" ("另N項"). If even that is too long,
``SmsTooLong`` is raised: the caller sends the email instead, or records ``failed``
(``sms_too_long``) when there is no address. ``RenderedMessage.shortened`` says what was cut.

Filters: ``window_zh_hk`` and ``window_en`` format a pickup window (``start|window_en(end)``);
the English one writes a plain hyphen, not an en dash, so English text stays GSM-7.
``hk_local`` drops the +852 of our contact number in Chinese text, saving 5 UCS-2 units.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import jinja2

from service.domain.errors import ConfigError, RenderError, SmsTooLong
from service.domain.links import LinkSigner
from service.domain.milestones import Milestone
from service.domain.model import Pickup, ShipmentUpdate, notification_id
from service.domain.ports import EmailMessage
from service.domain.segments import Encoding, count_segments, is_gsm7

HK_TZ: Final = ZoneInfo("Asia/Hong_Kong")
LOCALES: Final = ("zh-HK", "en")

#: Requested locale (lower case, "-" separated) -> the locale we have templates for.
_LOCALE_ALIASES: Final[Mapping[str, str]] = {
    "zh-hk": "zh-HK",
    "zh-hant": "zh-HK",
    "zh-tw": "zh-HK",
    "zh": "zh-HK",
    "yue": "zh-HK",
    "en": "en",
    "en-gb": "en",
    "en-us": "en",
}

#: Pickup document codes from the TMS -> what the customer reads. Unknown codes are shown as given.
DOCUMENT_LABELS: Final[Mapping[str, Mapping[str, str]]] = {
    "zh-HK": {
        "HKID": "身份證",
        "ORDER_CONFIRMATION": "訂單確認書",
        "AUTHORISATION_LETTER": "授權書",
        "PASSPORT": "護照",
    },
    "en": {
        "HKID": "HKID card",
        "ORDER_CONFIRMATION": "order confirmation",
        "AUTHORISATION_LETTER": "authorisation letter",
        "PASSPORT": "passport",
    },
}

#: What stands for the documents cut from a list that made an SMS too long.
MORE_DOCUMENTS: Final[Mapping[str, str]] = {"zh-HK": "另{n}項", "en": "and {n} more"}
#: The default hard cap on one SMS, in segments (``NOTIFIER_SMS_MAX_SEGMENTS``).
DEFAULT_SMS_MAX_SEGMENTS: Final = 6
#: Most documents a shortened SMS still lists (the contract allows 10).
MAX_DOCUMENTS_SHOWN: Final = 10

_WEEKDAYS_ZH: Final = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
_WEEKDAYS_EN: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BLANK_RUNS: Final = re.compile(r"\n{3,}")
_QUOTED: Final = re.compile(r"'([^']*)'")


def _day_zh_hk(d: datetime) -> str:
    return f"{d.month}月{d.day}日（{_WEEKDAYS_ZH[d.weekday()]}）"


def _day_en(d: datetime) -> str:
    return f"{_WEEKDAYS_EN[d.weekday()]} {d.day} {_MONTHS_EN[d.month - 1]}"


def hk_local(phone: str) -> str:
    """``+852 3001 2345`` -> ``3001 2345``: Hong Kong people write local numbers without +852."""
    text = phone.strip()
    return text[4:].strip() if text.startswith("+852") else text


def window_zh_hk(start: datetime, end: datetime) -> str:
    """``11月24日（星期二）14:00–18:00``; a window over midnight names both days."""
    if start.date() == end.date():
        return f"{_day_zh_hk(start)}{start:%H:%M}–{end:%H:%M}"
    return f"{_day_zh_hk(start)}{start:%H:%M} 至 {_day_zh_hk(end)}{end:%H:%M}"


def window_en(start: datetime, end: datetime) -> str:
    """``Tue 24 Nov, 14:00-18:00``; a window over midnight names both days."""
    if start.date() == end.date():
        return f"{_day_en(start)}, {start:%H:%M}-{end:%H:%M}"
    return f"{_day_en(start)} {start:%H:%M} to {_day_en(end)} {end:%H:%M}"


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    locale: str
    body: str
    encoding: Encoding
    segments: int
    shortened: tuple[str, ...] = ()  # what was cut to fit the cap: "name", "documents"


@dataclass(frozen=True, slots=True)
class PickupView:
    """A pickup as the templates see it: times in Hong Kong, documents in the message's language."""

    place: str
    address: str
    window_start: datetime
    window_end: datetime
    documents: tuple[str, ...]


def _one_line(value: str) -> str:
    """Collapse whitespace runs (newlines included) inside a value so it cannot break the layout."""
    return " ".join(value.split())


def _tidy(body: str) -> str:
    """Drop trailing spaces on every line, blank lines at either end and runs of blank lines."""
    lines = "\n".join(line.rstrip() for line in body.splitlines()).strip()
    return _BLANK_RUNS.sub("\n\n", lines)


def _undefined_name(exc: jinja2.UndefinedError, source: str) -> str:
    """The quoted name in Jinja's message when it is written in the template, so never a value.

    ``{{ customer_nam }}`` gives "'customer_nam' is undefined"; but ``{{ table[customer_name] }}``
    would quote the customer's name, which is not in the source and is withheld.
    """
    quoted = _QUOTED.findall(exc.message or "")
    if quoted and quoted[-1].isidentifier() and quoted[-1] in source:
        return repr(quoted[-1])
    return "(name withheld)"


def _hk_time(value: datetime, template: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise RenderError(f"template {template}: pickup window time has no time zone")
    return value.astimezone(HK_TZ)


Closings = list[tuple[tuple[str, ...], Mapping[str, str]]]


def _load_closings(path: Path) -> Closings:
    """Per-bike-type closing lines (``templates/bike_lines.toml``); none when the file is absent."""
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return [
        (
            tuple(str(k).lower() for k in kind.get("match", [])),
            {k: str(v) for k, v in kind.items() if k != "match"},
        )
        for kind in data.values()
        if isinstance(kind, dict)
    ]


def _closing(closings: Closings, bike_model: str, locale: str) -> str | None:
    model = bike_model.lower()
    for keywords, lines in closings:
        if any(k in model for k in keywords):
            return lines.get(locale)
    return None


class Renderer:
    """Chooses the customer's locale and renders SMS bodies. Templates are compiled once and kept."""

    def __init__(
        self,
        templates_dir: Path,
        *,
        brand: str,
        contact_phone: str,
        contact_email: str,
        default_locale: str = "zh-HK",
        links: LinkSigner | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_sms_segments: int = DEFAULT_SMS_MAX_SEGMENTS,
    ) -> None:
        if default_locale not in LOCALES:
            raise ConfigError(f"default locale {default_locale!r} is not one of {', '.join(LOCALES)}")
        if max_sms_segments < 1:
            raise ConfigError("the SMS segment cap must be at least 1")
        self.max_sms_segments = max_sms_segments
        self._default_locale = default_locale
        self._links = links
        self._clock = clock
        self._globals = {"brand": brand, "contact_phone": contact_phone, "contact_email": contact_email}
        self._loader = jinja2.FileSystemLoader(templates_dir)
        self._env = jinja2.Environment(
            loader=self._loader,
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # noqa: S701  # plain-text SMS: there is no HTML to escape
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._env.filters["window_zh_hk"] = window_zh_hk
        self._env.filters["window_en"] = window_en
        self._env.filters["hk_local"] = hk_local
        self._templates: dict[str, tuple[jinja2.Template, str]] = {}
        self._closings = _load_closings(templates_dir / "bike_lines.toml")
        # HTML email: the same loader, but every value escaped.
        self._html_env = jinja2.Environment(
            loader=self._loader, autoescape=True, trim_blocks=True, lstrip_blocks=True, auto_reload=False
        )

    def choose_locale(self, requested: str | None) -> str:
        """The supported locale closest to what the customer asked for, else the default.

        Case and ``_``/``-`` do not matter; a tag we do not list is matched on its language
        (``en-AU`` -> ``en``, ``zh-Hant-HK`` -> ``zh-HK``).
        """
        if not requested:
            return self._default_locale
        tag = requested.strip().replace("_", "-").lower()
        if tag in _LOCALE_ALIASES:
            return _LOCALE_ALIASES[tag]
        return _LOCALE_ALIASES.get(tag.split("-", 1)[0], self._default_locale)

    def render_sms(
        self,
        milestone: Milestone,
        update: ShipmentUpdate,
        locale: str,
        *,
        at: datetime | None = None,
        shorten: bool = True,
        template: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> RenderedMessage:
        """Render the SMS for a milestone in a supported locale (see ``choose_locale``).

        ``at`` dates the links (their expiry); by default now. A re-claimed notification is rendered
        as of its first claim, so the text is the same as an earlier attempt's and can be found.
        Over the segment cap the message is shortened (see the module's doc) or ``SmsTooLong`` is
        raised; ``shorten=False`` gives the full message whatever its length (the budget check).
        ``template`` and ``extra``: a message that follows the milestone's (``domain.follow_ups``),
        its template's name and the variables it adds to the milestone's context.
        """
        name = f"sms/{template or milestone.value}.{locale}.txt.j2"
        context = {**self._context(update, locale, name, milestone, at, sms=True), **(extra or {})}
        for shortened, variant in self._variants(context, locale):
            body = self._render(name, variant)
            count = count_segments(body)
            if not shorten or count.segments <= self.max_sms_segments:
                return RenderedMessage(locale, body, count.encoding, count.segments, shortened)
        raise SmsTooLong(f"template {name}: over {self.max_sms_segments} segment(s) even shortened")

    @staticmethod
    def _variants(
        context: dict[str, object], locale: str
    ) -> Iterator[tuple[tuple[str, ...], dict[str, object]]]:
        """The message's context, then ever shorter ones: without the name, then fewer documents."""
        yield (), context
        cut: tuple[str, ...] = ()
        if context["customer_name"]:
            context = {**context, "customer_name": ""}
            cut = ("name",)
            yield cut, context
        pickup = context["pickup"]
        if isinstance(pickup, PickupView) and len(pickup.documents) > 1:
            docs, more = pickup.documents, MORE_DOCUMENTS[locale]
            for keep in range(min(len(docs) - 1, MAX_DOCUMENTS_SHOWN), 0, -1):
                fewer = (*docs[:keep], more.format(n=len(docs) - keep))
                yield (*cut, "documents"), {**context, "pickup": dataclasses.replace(pickup, documents=fewer)}

    def render_email(
        self,
        milestone: Milestone,
        update: ShipmentUpdate,
        locale: str,
        *,
        at: datetime | None = None,
        template: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> EmailMessage:
        """The email fallback: a subject, the SMS text as plain text, and the same text as escaped HTML.

        The text is the full message: every value, never shortened (email has no segments).
        ``template`` and ``extra`` as for ``render_sms``.
        """
        kind, added = template or milestone.value, extra or {}
        subject_name = f"email/{kind}.{locale}.subject.j2"
        subject = " ".join(
            self._render(
                subject_name, {**self._context(update, locale, subject_name, milestone, at), **added}
            ).split()
        )
        sms_name = f"sms/{kind}.{locale}.txt.j2"
        text = self._render(sms_name, {**self._context(update, locale, sms_name, milestone, at), **added})
        try:
            layout = self._html_env.get_template("email/layout.html.j2")  # cached by jinja2
        except jinja2.TemplateNotFound:
            raise RenderError("template email/layout.html.j2: not found") from None
        html = layout.render(
            lang="zh-Hant-HK" if locale == "zh-HK" else "en", subject=subject, lines=text.splitlines()
        )
        return EmailMessage(subject=subject, text=text, html=html)

    def _render(self, name: str, context: Mapping[str, object]) -> str:
        template, source = self._template(name)
        try:
            body = template.render(context)
        except jinja2.UndefinedError as exc:
            raise RenderError(f"template {name}: undefined variable {_undefined_name(exc, source)}") from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"template {name}: {type(exc).__name__}") from None
        except Exception as exc:
            # A filter or operator failed on a value; its message may quote the value.
            raise RenderError(f"template {name}: {type(exc).__name__} while rendering") from None
        return _tidy(body)

    def _template(self, name: str) -> tuple[jinja2.Template, str]:
        """The compiled template and its source, loaded on first use and kept."""
        cached = self._templates.get(name)
        if cached is None:
            try:
                source, _, _ = self._loader.get_source(self._env, name)
                cached = (self._env.get_template(name), source)
            except jinja2.TemplateNotFound:
                raise RenderError(f"template {name}: not found") from None
            except jinja2.TemplateSyntaxError as exc:
                raise RenderError(f"template {name}: syntax error line {exc.lineno}: {exc.message}") from None
            self._templates[name] = cached
        return cached

    def _context(
        self,
        update: ShipmentUpdate,
        locale: str,
        name: str,
        milestone: Milestone,
        at: datetime | None,
        *,
        sms: bool = False,
    ) -> dict[str, object]:
        if locale not in LOCALES:
            raise RenderError(f"template {name}: unsupported locale")
        nid, now = notification_id(update.order_id, milestone), at or self._clock()
        customer_name = _one_line(update.recipient.name)
        location = _one_line(update.location) if update.location else None
        if sms and locale == "en":
            # Keep an English SMS in GSM-7: a Chinese name or location would make all of it UCS-2.
            customer_name = customer_name if is_gsm7(customer_name) else ""
            location = location if location and is_gsm7(location) else None
        return {
            **self._globals,
            "closing": _closing(self._closings, update.bike_model, locale),
            "status_url": self._links.status_url(nid, now) if self._links else None,
            "unsubscribe_url": self._links.unsubscribe_url(nid, now) if self._links else None,
            "customer_name": customer_name,
            "order_id": _one_line(update.order_id),
            "waybill": _one_line(update.waybill),
            "bike_model": _one_line(update.bike_model),
            "location": location,
            "pickup": None if update.pickup is None else self._pickup(update.pickup, locale, name),
        }

    @staticmethod
    def _pickup(pickup: Pickup, locale: str, name: str) -> PickupView:
        labels = DOCUMENT_LABELS[locale]
        return PickupView(
            place=_one_line(pickup.place),
            address=_one_line(pickup.address),
            window_start=_hk_time(pickup.window_start, name),
            window_end=_hk_time(pickup.window_end, name),
            documents=tuple(labels.get(code.strip().upper(), code) for code in pickup.documents),
        )
