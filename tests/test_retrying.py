"""Backoff delays and outage logging, as workers, listeners and serve's supervisor use them."""

from __future__ import annotations

import logging
import threading

import pytest

from service.retrying import Backoff, Outage, until_done


def test_backoff_doubles_up_to_its_cap_with_jitter_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(first=1, cap=8, jitter=0.5)
    delays = [backoff.next() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base / 2 <= delay <= base
    backoff.reset()
    assert backoff.next() <= 1


def test_without_jitter_the_delays_are_exactly_one_two_four_and_so_on() -> None:
    backoff = Backoff(first=1, cap=60, jitter=0)
    assert [backoff.next() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    for _ in range(5000):  # a long outage never overflows
        backoff.next()
    assert backoff.next() == 60


def test_an_outage_is_logged_when_it_begins_and_when_it_ends_not_at_every_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage(logging.getLogger("test.outage"), "control database")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for _ in range(5):
            outage.failed(ConnectionRefusedError("connection refused\nmore detail"))
        outage.recovered()
        outage.recovered()
    messages = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert messages == [
        ("ERROR", "control database: connection refused; retrying until it answers"),
        ("WARNING", messages[1][1]),
    ]
    assert "answers again after" in messages[1][1] and "(5 failed attempts)" in messages[1][1]


def test_until_done_retries_only_the_errors_it_is_told_and_gives_up_when_stopping() -> None:
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("down")

    outage, stopping = Outage(logging.getLogger("test"), "x"), threading.Event()
    quick = Backoff(first=0.01, cap=0.01)
    assert until_done(flaky, (ConnectionError,), stopping, outage, quick) is True
    assert len(attempts) == 3 and not outage.ongoing
    stopping.set()
    assert until_done(flaky_forever, (ConnectionError,), stopping, outage, quick) is False
    with pytest.raises(ValueError):
        until_done(wrong, (ConnectionError,), threading.Event(), outage, quick)


def flaky_forever() -> None:
    raise ConnectionError("down")


def wrong() -> None:
    raise ValueError("a bug, not an outage")
