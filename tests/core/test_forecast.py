import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autoscaler.core.calendar import PromotionEvent, event_mask
from autoscaler.core.forecast import forecast_at
from autoscaler.core.baseline import ForecastSettings, fit_baseline
from tests.builders import START, add_surges, daily_series, nightly_events

DAYS = 9
H = 12


@pytest.fixture(scope="module")
def surging():
    times, values = daily_series(DAYS)
    events = nightly_events(DAYS)
    return times, add_surges(times, values, events, factor=3.0), events


def index_of(times, event, minutes_before):
    return int(np.searchsorted(times, event.start_s - minutes_before * 60))


def test_event_growth_is_anticipated_from_past_events_of_the_kind(surging):
    times, values, events = surging
    last = index_of(times, events[-1], 6)
    with_calendar = forecast_at(times, values, events, last, H)
    without = forecast_at(times, values, [], last, H)
    now = values[last]
    assert with_calendar.upper.max() > 2.0 * now
    assert without.upper.max() < 1.3 * now
    assert events[-1].label in with_calendar.events


def test_an_event_with_no_history_and_no_size_adds_nothing_and_says_so(surging):
    times, values, _ = surging
    newcomer = PromotionEvent(name="first-flash", start=START.replace(day=9, hour=3), end=START.replace(day=9, hour=4), kind="flash-sale")
    last = int(np.searchsorted(times, newcomer.start_s - 300))
    alone = forecast_at(times, values, [], last, H)
    with_new = forecast_at(times, values, [newcomer], last, H)
    np.testing.assert_allclose(with_new.values, alone.values)
    assert any("adds nothing" in note for note in with_new.notes)


def test_expected_multiplier_puts_a_floor_under_the_window(surging):
    times, values, _ = surging
    sized = PromotionEvent(
        name="d11", start=START.replace(day=9, hour=3), end=START.replace(day=9, hour=4), kind="double11", expected_multiplier=5
    )
    last = int(np.searchsorted(times, sized.start_s - 300))
    fc = forecast_at(times, values, [sized], last, H)
    assert fc.values[-1] > 4.0 * values[last]
    assert fc.values[0] < 1.5 * values[last]  # before the window opens, no floor


def test_baseline_masks_past_event_windows(surging):
    times, values, events = surging
    masked = event_mask(times, events)
    last = len(times) - 1
    fitted = fit_baseline(times, values, masked, last, 60, ForecastSettings())
    at_event = fitted.at(np.array([events[-2].start_s + 3600]))[0]
    plain_times, plain_values = daily_series(DAYS)
    truth = plain_values[np.searchsorted(plain_times, events[-2].start_s + 3600)]
    assert at_event == pytest.approx(truth, rel=0.2)


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=3 * 1440, max_value=DAYS * 1440 - 100), seed=st.integers(0, 2**16))
def test_no_look_ahead_forecast_ignores_everything_after_t(surging, cut, seed):
    times, values, events = surging
    rng = np.random.default_rng(seed)
    tampered = values.copy()
    tampered[cut + 1 :] = rng.uniform(0, 1e6, len(values) - cut - 1)
    a = forecast_at(times, values, events, cut, H)
    b = forecast_at(times, tampered, events, cut, H)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.upper, b.upper)


@settings(max_examples=20, deadline=None)
@given(
    dips=st.lists(st.floats(min_value=0.4, max_value=1.0), min_size=2, max_size=4),
    hour=st.integers(min_value=0, max_value=23),
    into=st.integers(min_value=30, max_value=20 * 60),
    horizon=st.integers(min_value=2, max_value=90),
)
def test_a_promotion_never_lowers_the_forecast_below_the_one_without_it(dips, hour, into, horizon):
    """Day-long holidays whose past instances were dips (of any depth): inside the next one, every
    forecast cell, central and upper, is at least what the forecast is without that holiday in the
    calendar; the daily ramp within it is still anticipated (the cause of NYC's Veterans Day)."""
    from datetime import timedelta

    days = len(dips) + 3
    times, values = daily_series(days)
    holidays = [
        PromotionEvent(name=f"holiday-{d}", start=START + timedelta(days=d + 1, hours=hour), end=START + timedelta(days=d + 2, hours=hour), kind="holiday")
        for d in range(len(dips) + 1)
    ]
    for e, dip in zip(holidays, dips):
        inside = (times >= e.start_s) & (times < e.end_s)
        values[inside] *= dip
    last = int(np.searchsorted(times, holidays[-1].start_s)) + into
    with_it = forecast_at(times, values, holidays, last, horizon)
    without = forecast_at(times, values, holidays[:-1], last, horizon, baseline=with_it.fitted)
    assert np.all(with_it.values >= without.values * (1 - 1e-9))
    assert np.all(with_it.upper >= without.upper * (1 - 1e-9))
