"""What Infobip's delivery-report webhook tells us, parsed (``parse_reports``), with Infobip's status
groups, which the client's send responses and log look-ups read too. Pure: bytes in,
``service.domain.report`` values out."""

from __future__ import annotations

from typing import Final

from service.domain.errors import MalformedReport
from service.domain.report import (
    DeliveryReport,
    entry_object,
    entry_text,
    json_document,
    report_code,
    report_reference,
)
from service.domain.status_check import Answer

PROVIDER: Final = "infobip"
#: Status groups that are final, as delivery reports and log look-ups read them; others are pending.
FINAL_GROUPS: Final[dict[str, Answer]] = {
    "DELIVERED": Answer.DELIVERED,
    "UNDELIVERABLE": Answer.UNDELIVERED,
    "EXPIRED": Answer.UNDELIVERED,
    "REJECTED": Answer.UNDELIVERED,
}


def parse_reports(body: bytes) -> list[DeliveryReport]:
    """The final statuses in a delivery-report request (``{"results": [...]}``), in order; a report
    whose status group is not final is left out. Every entry is checked first: ``MalformedReport``
    if the body is not UTF-8 JSON or any entry is not a report."""
    document = json_document(body)
    results = document.get("results", []) if isinstance(document, dict) else None
    if not isinstance(results, list):
        raise MalformedReport("results is not a list")
    parsed = [_report(entry) for entry in results]
    return [report for report in parsed if report is not None]


def _report(entry: object) -> DeliveryReport | None:
    if not isinstance(entry, dict):
        raise MalformedReport("a report is not an object")
    status, error = entry_object(entry, "status"), entry_object(entry, "error")
    group = entry_text(status, "groupName")
    reference = report_reference(entry.get("callbackData"), entry.get("messageId"))
    code = report_code(error.get("name")) or report_code(status.get("name"))
    answer = FINAL_GROUPS.get(group)
    if answer is None:
        return None
    return DeliveryReport(PROVIDER, reference, delivered=answer is Answer.DELIVERED, code=code)
