"""The consent that applied to a decision: a snapshot of the recipient's consent record, taken from
the look-up the decision made anyway (one bulk query per batch), never a second one.

A recipient (phone and email, each by its blind index) has, per subject, at most one record that
matters: a current opt-out (``opt_outs``), or else its latest explicit opt-in (``opt_ins``).
The snapshot of a notification is the opt-out if either subject has one (the earliest: opted out
since then), else the latest opt-in, else ``no_record`` (transactional messages go). Pure: no I/O.

A source is what the consent record says made the change: ``unsubscribe_link``,
``sms_reply:<provider>`` (the customer's STOP / START), ``provider:<provider>`` (the provider
refused the number as opted out), ``operator:<name>`` (staff on the support page, or an operator's
``notifier optout --by``). ``source_kind`` drops the name: what a receipt may carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final


class ConsentState(StrEnum):
    OPTED_OUT = "opted_out"  # an opt-out on record: nothing is sent
    OPTED_IN = "opted_in"  # opted back in explicitly (START, an operator's --opt-in) after an opt-out
    NO_RECORD = "no_record"  # never opted out: transactional notices go


#: What a consent record's source starts with, as the code writes them (labelled for staff).
SOURCE_KINDS: Final = ("unsubscribe_link", "sms_reply", "provider", "operator")
#: Sources whose part after the colon names a provider (kept in a receipt); any other source's
#: suffix may name a person (``operator:<name>``) and is dropped.
_PROVIDER_SOURCES: Final = ("sms_reply", "provider")
SOURCE_MAX: Final = 100  # a source as stored is bounded: a receipt's and a label's input
#: What ``source_kind`` returns, always (a receipt's ``consent_source``).
SOURCE_KIND_MAX: Final = 40
SOURCE_KIND_PATTERN: Final = r"^[a-z][a-z0-9_]*(:[a-z0-9_-]+)?$"
_WORD: Final = re.compile(r"[a-z][a-z0-9_]{0,19}")
_PROVIDER: Final = re.compile(r"[a-z0-9_-]{1,19}")


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One subject's record: opted out (or opted back in) by ``source`` at ``set_at``."""

    opted_out: bool
    source: str
    set_at: datetime


@dataclass(frozen=True, slots=True)
class ConsentSnapshot:
    state: ConsentState
    source: str | None = None
    set_at: datetime | None = None

    @property
    def opted_out(self) -> bool:
        return self.state == ConsentState.OPTED_OUT

    @property
    def source_kind(self) -> str | None:
        return None if self.source is None else source_kind(self.source)


NO_RECORD: Final = ConsentSnapshot(ConsentState.NO_RECORD)


def snapshot(records: Iterable[ConsentRecord]) -> ConsentSnapshot:
    """The consent that applies to a recipient with these records (one per subject at most)."""
    found = list(records)
    outs = sorted((r for r in found if r.opted_out), key=lambda r: r.set_at)
    if outs:
        return ConsentSnapshot(ConsentState.OPTED_OUT, outs[0].source[:SOURCE_MAX], outs[0].set_at)
    ins = sorted((r for r in found if not r.opted_out), key=lambda r: r.set_at)
    if ins:
        return ConsentSnapshot(ConsentState.OPTED_IN, ins[-1].source[:SOURCE_MAX], ins[-1].set_at)
    return NO_RECORD


def source_kind(source: str) -> str:
    """``operator:alice`` -> ``operator``; ``sms_reply:twilio`` and ``provider:infobip`` stay (a
    provider is no one's personal data); ``unsubscribe_link`` stays; anything else that is not a
    plain lower-case code is ``other``. Always matches ``SOURCE_KIND_PATTERN``."""
    kind, sep, rest = source.partition(":")
    if not _WORD.fullmatch(kind):
        return "other"
    if sep and kind in _PROVIDER_SOURCES and _PROVIDER.fullmatch(rest):
        return f"{kind}:{rest}"
    return kind
