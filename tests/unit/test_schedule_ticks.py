"""Which ticks of a schedule fire when: time zones, DST, the missed-tick policies (no clock, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.schedule_loop import tick_inputs
from engine.schedule_ticks import due, tick_key, upcoming
from engine.trigger_config import ScheduleConfig


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_ticks_are_computed_in_the_schedules_time_zone():
    nine_in_tokyo = ScheduleConfig(cron="0 9 * * 1-5", timezone="Asia/Tokyo")
    # Friday 2024-05-03 00:00 UTC is 09:00 in Tokyo: strictly after it, the next is Monday's.
    assert upcoming(nine_in_tokyo, at(2024, 5, 2, 23, 59), 2) == [at(2024, 5, 3, 0, 0), at(2024, 5, 6, 0, 0)]
    # New York: 08:00 local is 13:00 UTC in winter and 12:00 UTC in summer (DST from 2024-03-10).
    eight_in_new_york = ScheduleConfig(cron="0 8 * * *", timezone="America/New_York")
    assert upcoming(eight_in_new_york, at(2024, 3, 8, 14), 3) == [
        at(2024, 3, 9, 13), at(2024, 3, 10, 12), at(2024, 3, 11, 12),
    ]  # fmt: skip


def test_a_local_time_the_spring_change_skips_fires_when_the_clocks_jump():
    half_past_two = ScheduleConfig(cron="30 2 * * *", timezone="Europe/Berlin")
    # 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist that night.
    assert upcoming(half_past_two, at(2024, 3, 30, 12), 2) == [at(2024, 3, 31, 1, 0), at(2024, 4, 1, 0, 30)]


def test_a_local_time_the_autumn_change_repeats_fires_once_but_hourly_schedules_keep_every_hour():
    half_past_two = ScheduleConfig(cron="30 2 * * *", timezone="Europe/Berlin")
    # 2024-10-27: 03:00 CEST falls back to 02:00 CET, so 02:30 happens at 00:30 and at 01:30 UTC.
    assert upcoming(half_past_two, at(2024, 10, 26, 12), 2) == [
        at(2024, 10, 27, 0, 30),
        at(2024, 10, 28, 1, 30),
    ]
    # Asked between the two occurrences, the second one is not a tick either.
    assert upcoming(half_past_two, at(2024, 10, 27, 1, 0), 1) == [at(2024, 10, 28, 1, 30)]
    hourly = ScheduleConfig(cron="30 * * * *", timezone="Europe/Berlin")
    assert upcoming(hourly, at(2024, 10, 27, 0, 0), 3) == [
        at(2024, 10, 27, 0, 30), at(2024, 10, 27, 1, 30), at(2024, 10, 27, 2, 30),
    ]  # fmt: skip


def test_skip_fires_only_the_latest_due_tick():
    every_minute = ScheduleConfig(cron="* * * * *")
    plan = due(every_minute, at(2024, 5, 1, 12, 0), at(2024, 5, 1, 12, 10, 30))
    assert plan.fire == [at(2024, 5, 1, 12, 10)]
    assert plan.skipped == 10  # 12:00 .. 12:09 were more than one interval late
    assert plan.next_fire_at == at(2024, 5, 1, 12, 11)


def test_catch_up_fires_at_most_n_missed_ticks_oldest_first_then_the_current_one():
    every_minute = ScheduleConfig(cron="* * * * *", missed="catch_up", catch_up_max=3)
    plan = due(every_minute, at(2024, 5, 1, 12, 0), at(2024, 5, 1, 12, 10, 30))
    assert plan.fire == [at(2024, 5, 1, 12, m) for m in (7, 8, 9, 10)]
    assert plan.skipped == 7
    # Fewer missed ticks than the cap: all of them fire.
    plan = due(every_minute, at(2024, 5, 1, 12, 9), at(2024, 5, 1, 12, 10))
    assert plan.fire == [at(2024, 5, 1, 12, 9), at(2024, 5, 1, 12, 10)] and plan.skipped == 0


def test_an_on_time_tick_fires_alone_and_nothing_is_due_before_the_first_tick():
    hourly = ScheduleConfig(cron="0 * * * *", missed="catch_up")
    plan = due(hourly, at(2024, 5, 1, 12, 0), at(2024, 5, 1, 12, 0, 0, 200_000))
    assert plan.fire == [at(2024, 5, 1, 12, 0)] and plan.skipped == 0
    assert plan.next_fire_at == at(2024, 5, 1, 13, 0)
    # next_fire_at not on a tick (set by hand) and no tick in [next_fire_at, now]: nothing fires.
    plan = due(hourly, at(2024, 5, 1, 12, 5), at(2024, 5, 1, 12, 30))
    assert plan.fire == [] and plan.next_fire_at == at(2024, 5, 1, 13, 0)


def test_a_long_outage_counts_its_skipped_ticks_without_walking_all_of_them():
    every_minute = ScheduleConfig(cron="* * * * *")
    plan = due(every_minute, at(2024, 5, 1), at(2024, 5, 1) + timedelta(days=30))
    assert len(plan.fire) == 1 and plan.skipped == 1000  # a lower bound: counted up to 1000


def test_the_tick_key_is_its_utc_time_and_scheduled_at_is_passed_only_when_declared():
    tick = datetime(2024, 5, 1, 5, 0, tzinfo=UTC).astimezone()
    assert tick_key(tick) == "2024-05-01T05:00:00Z"
    config = ScheduleConfig(cron="0 5 * * *", inputs={"report": "daily"})
    assert tick_inputs(config, {"type": "object"}, tick) == {"report": "daily"}
    declared = {"type": "object", "properties": {"scheduled_at": {"type": "string"}}}
    assert tick_inputs(config, declared, tick) == {"report": "daily", "scheduled_at": "2024-05-01T05:00:00Z"}
