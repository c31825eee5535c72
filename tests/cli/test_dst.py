"""Durations across daylight-saving changes are elapsed time, and a local time the clocks skip is
refused with the two times it could have meant (America/New_York and Europe/Berlin, both ways)."""

from __future__ import annotations

from datetime import datetime, UTC

import pytest

from autoscaler.cli.promo_store import build_spec
from autoscaler.errors import InputError

#: (zone, a fall-back night at 00:30, a spring-forward day's skipped 02:30), next year's dates
Y = datetime.now(UTC).year + 1
CHANGES = {
    "America/New_York": (f"{Y}-11-0{[d for d in range(1, 8) if datetime(Y, 11, d).weekday() == 6][0]} 00:30", f"{Y}-03-{[d for d in range(8, 15) if datetime(Y, 3, d).weekday() == 6][0]:02d} 02:30"),
    "Europe/Berlin": (
        f"{Y}-10-{[d for d in range(25, 32) if datetime(Y, 10, d).weekday() == 6][0]} 01:30",
        f"{Y}-03-{[d for d in range(25, 32) if datetime(Y, 3, d).weekday() == 6][0]} 02:30",
    ),
}


def spec(start: str, tz: str, duration: str) -> dict:
    return build_spec(start=start, end=None, duration=duration, kind="x", tz=tz, title=None, multiplier=None, expected_peak=None, like=None, targets=None)


def elapsed_s(s: dict) -> float:
    return (datetime.fromisoformat(s["end"]) - datetime.fromisoformat(s["start"])).total_seconds()


@pytest.mark.parametrize("zone", sorted(CHANGES))
def test_a_duration_over_the_fall_back_night_is_elapsed_time(zone):
    fall_back, _ = CHANGES[zone]
    s = spec(fall_back, zone, "2h")
    assert elapsed_s(s) == 7200
    assert s["start"][-6:] != s["end"][-6:]  # the offset changed on the way


@pytest.mark.parametrize("zone", sorted(CHANGES))
def test_a_duration_over_the_spring_forward_night_is_elapsed_time(zone):
    _, skipped = CHANGES[zone]
    s = spec(skipped.replace("02:30", "01:30"), zone, "2h")
    assert elapsed_s(s) == 7200


@pytest.mark.parametrize("zone", sorted(CHANGES))
def test_a_start_the_clocks_skip_is_refused_with_the_two_times_it_could_mean(zone):
    _, skipped = CHANGES[zone]
    with pytest.raises(InputError) as refused:
        spec(skipped, zone, "1h")
    message = str(refused.value)
    assert message.startswith("--start") and "does not exist" in message and "before the change" in message and "after it" in message
    assert "01:30" in message and "03:30" in message
