"""Scheduling of pull rounds: ``replication_start_time`` alignment and the periodic task's first delay."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest

from hdlserver.errors import ConfigError
from hdlserver.replication.task import PeriodicTask, initial_delay, parse_start_time


def test_start_times_are_iso_dates_with_or_without_an_offset() -> None:
    utc = datetime.datetime(2026, 12, 4, 3, 0, tzinfo=datetime.UTC).timestamp()
    assert parse_start_time("2026-12-04T03:00:00Z") == utc
    assert parse_start_time("20261204T030000+00:00") == utc
    assert parse_start_time(" 2026-12-04T04:00+01:00 ") == utc
    assert parse_start_time("2026-12-04T03:00") == datetime.datetime(2026, 12, 4, 3, 0).timestamp()  # local


@pytest.mark.parametrize("text", ["", "tomorrow", "03:00", "2026-13-01T00:00"])
def test_a_bad_start_time_is_a_config_error_that_shows_the_expected_form(text: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid replication_start_time .* such as 2026-12-04T03:00:00"):
        parse_start_time(text)


def test_rounds_align_to_the_start_time_modulo_the_interval() -> None:
    assert initial_delay(1000.0, 1000.0, 60.0) == 0.0
    assert initial_delay(1000.0, 1010.0, 60.0) == 50.0
    assert initial_delay(1000.0, 1000.0 + 60 * 24 + 59.5, 60.0) == pytest.approx(0.5)
    assert initial_delay(1000.0, 990.0, 60.0) == 10.0  # a start time still to come


def test_the_first_run_waits_the_initial_delay_and_stop_ends_the_wait() -> None:
    runs: list[float] = []

    async def scenario() -> tuple[float, int]:
        started = time.monotonic()
        task = PeriodicTask("test", lambda: runs.append(time.monotonic()), 10.0, initial_delay=0.3)
        task.start()
        while not runs and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        first = runs[0] - started if runs else -1.0
        await task.stop()
        return first, len(runs)

    first, count = asyncio.run(scenario())
    assert 0.25 <= first < 3.0 and count == 1

    async def stopped_while_waiting() -> int:
        task = PeriodicTask("test", lambda: runs.append(0.0), 10.0, initial_delay=30.0)
        task.start()
        await asyncio.sleep(0.05)
        before = time.monotonic()
        await task.stop()
        assert time.monotonic() - before < 2.0
        return len(runs)

    assert asyncio.run(stopped_while_waiting()) == 1  # no run happened during the wait
