"""Sign-in throttling: per-client windows, a global audit cap, bounded memory (time passed in)."""

from __future__ import annotations

from service.domain.throttle import Refusal, SigninThrottle


def test_a_client_is_refused_after_its_failures_until_the_window_ends() -> None:
    t = SigninThrottle(per_client=3, total=1000, window_s=60)
    for _ in range(3):
        assert t.refused("a", 100.0) is None
        t.failed("a", 100.0)
    assert t.refused("a", 110.0) == Refusal(retry_after_s=50, first=True)
    assert t.refused("a", 120.0) == Refusal(retry_after_s=40, first=False)  # reported once a window
    assert t.refused("b", 120.0) is None  # another client is not affected
    assert t.refused("a", 160.0) is None  # a new window


def test_failures_are_audited_one_by_one_up_to_the_cap_then_once_as_a_summary() -> None:
    t = SigninThrottle(per_client=100, total=2, window_s=60)
    verdicts = [t.failed(f"10.0.0.{i}", 0.0) for i in range(6)]  # an attacker changing address
    assert verdicts == ["row", "row", "summary", "none", "none", "none"]
    assert t.failed("10.0.0.9", 61.0) == "row"  # next window


def test_the_client_table_is_bounded() -> None:
    t = SigninThrottle(per_client=1, total=10**9, window_s=60, max_clients=100)
    for i in range(10_000):
        t.failed(f"client-{i}", 0.0)
    assert len(t) == 100
    assert t.refused("client-9999", 1.0) is not None  # the newest are kept
    assert t.refused("client-0", 1.0) is None


def test_the_client_table_holds_10000_clients_unless_told() -> None:
    t = SigninThrottle(per_client=1, total=10**9, window_s=60)
    for i in range(10_001):
        t.failed(f"client-{i}", 0.0)
    assert len(t) == 10_000


def test_a_window_ends_exactly_window_s_after_it_began() -> None:
    t = SigninThrottle(per_client=1, total=1, window_s=60)
    assert t.failed("a", 0.0) == "row"
    assert t.failed("a", 60.0) == "row"  # a new window, for the client and for the audit cap
    assert t.refused("a", 61.0) == Refusal(retry_after_s=59, first=True)


def test_a_renewed_window_makes_its_client_the_newest() -> None:
    t = SigninThrottle(per_client=1, total=10**9, window_s=60, max_clients=3)
    t.failed("a", 0.0)
    t.failed("b", 1.0)
    t.failed("a", 61.0)  # a's window starts again: b is now the oldest
    t.failed("c", 62.0)
    t.failed("d", 63.0)  # the table is full: the oldest goes
    assert t.refused("a", 64.0) is not None
    assert t.refused("b", 64.0) is None


def test_the_retry_after_is_at_least_one_second() -> None:
    t = SigninThrottle(per_client=1, total=10, window_s=60)
    t.failed("a", 0.0)
    assert t.refused("a", 59.5) == Refusal(retry_after_s=1, first=True)
