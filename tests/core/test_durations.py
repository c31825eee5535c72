import pytest
from hypothesis import given, strategies as st

from autoscaler.core.durations import format_duration, parse_duration_s
from autoscaler.errors import InputError


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("45", 45), ("1.5h", 5400), (" 25m ", 1500)],
)
def test_reads_human_durations(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "m10", "-5m", "0s", "1h-", "99999d"])
def test_rejects_bad_durations_naming_the_field(text):
    with pytest.raises(InputError) as info:
        parse_duration_s(text, field="--lead-time")
    assert str(info.value).startswith("--lead-time:")
    assert "\n" not in str(info.value)


def test_zero_allowed_only_when_asked():
    assert parse_duration_s("0s", allow_zero=True) == 0


@pytest.mark.parametrize("seconds", [0, 59, 600, 5400, 90061])
def test_format_round_trips(seconds):
    assert parse_duration_s(format_duration(seconds), allow_zero=True) == seconds


@given(st.text(max_size=30))
def test_random_text_gives_a_duration_or_one_line_error(text):
    try:
        value = parse_duration_s(text)
    except InputError as error:
        assert "\n" not in str(error)
    else:
        assert value > 0
