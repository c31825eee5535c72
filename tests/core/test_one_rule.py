"""One home per rule (issue 24): what comes after the samples, the calendar's name rules and the
conversion of a spec to an event hold for every caller, as properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autoscaler.core.baseline import ForecastSettings
from autoscaler.core.calendar import check_names, entry
from autoscaler.core.cycle import carry_forward
from autoscaler.core.plan import replicas_serving
from autoscaler.core.resources import parse_event
from autoscaler.errors import InputError
from tests.builders import daily_series

TIMES, VALUES = daily_series(3)
STEP = 60


@settings(max_examples=40, deadline=None)
@given(gaps=st.sets(st.integers(2, 30), max_size=20), scale=st.floats(0.01, 100), ahead=st.integers(0, 5000))
def test_the_carried_history_follows_the_level_of_the_known_samples(gaps, scale, ahead):
    """The history carried forward is finite wherever anything is known (a missing sample in the
    level window is missing, never a NaN level: the controller's old carry made the whole future
    NaN), proportional to the history's level, and on the step grid up to ``to_s``."""
    values = VALUES * scale
    values[[len(values) - g for g in gaps]] = np.nan
    to_s = int(TIMES[-1]) + ahead
    times, carried = carry_forward(TIMES, values, [], ForecastSettings(level_window_s=1800), STEP, to_s)
    future = carried[len(TIMES) :]
    assert np.isfinite(future).all()
    assert times[-1] <= to_s < times[-1] + STEP and (np.diff(times) == STEP).all()
    _, unit = carry_forward(TIMES, VALUES.copy() * 1.0, [], ForecastSettings(level_window_s=1800), STEP, to_s)
    if len(future):
        ratio = future / unit[len(TIMES) :]
        assert 0.5 * scale < float(np.median(ratio)) < 2 * scale


@settings(max_examples=30, deadline=None)
@given(trailing=st.integers(1, 40), ahead=st.integers(0, 3000))
def test_missing_samples_after_the_last_known_one_are_carried_not_kept(trailing, ahead):
    values = VALUES.copy()
    values[-trailing:] = np.nan
    to_s = int(TIMES[-1]) + ahead
    times, carried = carry_forward(TIMES, values, [], ForecastSettings(), STEP, to_s)
    known = len(TIMES) - trailing
    assert (times[:known] == TIMES[:known]).all() and np.array_equal(carried[:known], values[:known])
    assert np.isfinite(carried[known:]).all() and times[-1] <= to_s


def test_nothing_known_is_carried_as_it_is():
    values = np.full(len(TIMES), np.nan)
    times, carried = carry_forward(TIMES, values, [], ForecastSettings(), STEP, int(TIMES[-1]) + 3600)
    assert times is TIMES and carried is values


@given(demand=st.floats(0, 1e9), per=st.floats(0.01, 1e6))
def test_replicas_serving_is_the_fewest_that_serve(demand, per):
    n = replicas_serving(demand, per)
    assert n >= 0 and (n == 0 or n * per >= demand * (1 - 1e-12) - 1e-9)
    assert n == 0 or (n - 1) * per < demand


NAMES = st.sampled_from(["a", "b", "c", "d"])


@given(named=st.lists(st.tuples(NAMES, st.lists(NAMES, max_size=3)), max_size=5))
def test_the_calendars_name_rules(named):
    """Every name once; ``like`` names another promotion of the calendar, never itself."""
    names = [n for n, _ in named]
    valid = len(set(names)) == len(names) and all(o in names and o != n for n, like in named for o in like)
    if valid:
        check_names(named)
    else:
        with pytest.raises(InputError):
            check_names(named)


@settings(max_examples=40, deadline=None)
@given(
    hours=st.integers(1, 72), multiplier=st.one_of(st.none(), st.floats(1.01, 50)), like=st.booleans(),
    targets=st.one_of(st.none(), st.just("peakscale.io/tier in (cache,web)"), st.just("team=live")),
)  # fmt: skip
def test_a_calendar_entry_and_a_promotion_event_of_one_spec_are_one_event(hours, multiplier, like, targets):
    """The one conversion: a calendar file's entry and the PromotionEvent of its spec give the same
    event (the file's applies in every namespace)."""
    from zoneinfo import ZoneInfo

    item = {"name": "p2", "start": "2030-11-10 20:00", "kind": "double11"}
    item["end"] = f"2030-11-{10 + (20 + hours) // 24:02d} {(20 + hours) % 24:02d}:00"
    if multiplier is not None:
        item["expectedMultiplier"] = multiplier
    if like:
        item["like"] = ["p1"]
    if targets is not None:
        item["targets"] = targets
    zone = ZoneInfo("Asia/Shanghai")
    read = entry(item, zone, "calendar")
    from_file = read.event(ZoneInfo("UTC"))
    _, from_object = parse_event({"metadata": {"name": "p2", "namespace": "shop"}, "spec": read.spec})
    assert from_object.model_copy(update={"namespace": None}) == from_file
    assert math.isclose(from_file.end_s - from_file.start_s, hours * 3600)
