"""A scrape of the running service's /metrics: true before any event and without /readyz being
called, and clean for Prometheus' own checker (``promtool check metrics``)."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.app import Service
from service.settings import Settings
from tests.integration.helpers import event, produce, read_decisions, running, wait_until
from tests.promtool import check_metrics

pytestmark = pytest.mark.integration


async def _scrape(service: Service) -> tuple[bytes, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    url = f"http://127.0.0.1:{service.metrics_port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        assert reply.status == 200
        body = await reply.read()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    return body, samples


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def test_a_scrape_of_the_running_service_is_true_from_the_start_and_passes_promtool(
    settings: Settings,
) -> None:
    s = settings
    service = Service(s)
    async with running(service):
        await wait_until(lambda: bool(service.assignment()), what="partitions assigned")
        body, first = await _scrape(service)  # nothing has called /readyz
        assert first[_key("notifier_ready")] == 1
        for provider in ("twilio", "infobip", "sendgrid"):
            assert first[_key("notifier_circuit_state", provider=provider)] == 0
            assert first[_key("notifier_callbacks_total", provider=provider, result="forged")] == 0
        assert first[_key("notifier_dead_letters_total", reason="invalid_event")] == 0
        assert first[_key("notifier_email_fallbacks_total", result="gave_up")] == 0
        assert first[_key("notifier_decisions_total", decision="sent")] == 0
        assert first[_key("notifier_outbox_backlog")] == 0
        assert first[_key("notifier_consumer_lag")] == 0
        checked = check_metrics(body)
        assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")

        await produce(
            s.kafka_bootstrap_servers, s.input_topics[0], [event("IT-M001", "ARRIVED_HK_WAREHOUSE")]
        )
        await read_decisions(s.kafka_bootstrap_servers, s.receipts_topic, 1, 30)
        _, after = await _scrape(service)
        assert after[_key("notifier_decisions_total", decision="sent")] == 1
        assert after[_key("notifier_outbox_oldest_seconds")] >= 0
        assert any(name == "process_resident_memory_bytes" for name, _ in after)
        assert any(name == "notifier_build_info" for name, _ in after)
