from service.domain.watchdog import StallWatch


def test_no_fetch_for_longer_than_the_limit_while_records_wait_is_a_stall() -> None:
    watch = StallWatch(limit_s=120, last_fetch=1000)
    assert not watch.stalled(1100, lag=50)  # a long batch, still inside the limit
    assert watch.stalled(1121, lag=50)


def test_a_quiet_topic_is_not_a_stall() -> None:
    watch = StallWatch(limit_s=120, last_fetch=1000)
    assert not watch.stalled(5000, lag=0)


def test_a_fetch_resets_the_clock() -> None:
    watch = StallWatch(limit_s=120, last_fetch=1000)
    watch.fetched(1200)
    assert not watch.stalled(1250, lag=10)
    assert watch.idle_s(1250) == 50
