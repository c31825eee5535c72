import pytest

from autoscaler.core.calendar import select_kinds
from autoscaler.adapters.calendar_files import load_calendar
from autoscaler.errors import InputError
from autoscaler.core.timezones import get_zone

UTC = get_zone("UTC")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_optional_columns_and_ignored_extras(tmp_path):
    path = write(
        tmp_path,
        "e.csv",
        "start,end,name,kind,source,expected_multiplier,expected_peak\n"
        "2026-11-10 23:30,2026-11-11 02:00,d11,double11,ops,8,\n"
        "2026-11-11 20:00,2026-11-11 22:00,kol,kol-live,ops,,120000\n",
    )
    events = load_calendar(path, get_zone("Asia/Shanghai"))
    assert [e.name for e in events] == ["d11", "kol"]
    assert events[0].expected_multiplier == 8 and events[0].expected_peak is None
    assert events[1].expected_peak == 120000
    assert events[1].end_s - events[1].start_s == 2 * 3600


def test_yaml_calendar_with_its_own_zone_and_offsets(tmp_path):
    path = write(
        tmp_path,
        "c.yaml",
        "timezone: Asia/Shanghai\n"
        "events:\n"
        "  - name: past\n    start: 2025-11-11 00:00\n    end: 2025-11-11 02:00\n    kind: double11\n"
        "  - name: now\n    title: 11.11\n    start: 2026-11-10T16:00:00Z\n    end: 2026-11-11 02:00\n"
        "    kind: double11\n    expectedMultiplier: 6\n    like: [past]\n",
    )
    # the file's zone says how to read its naive times; the events come out in the planner's clock
    events = load_calendar(path, UTC)
    past, now = events
    assert past.start.hour == 16 and past.start.day == 10  # 00:00 in Shanghai is 16:00 UTC
    assert now.start.hour == 16 and now.start.day == 10 and now.end.hour == 18  # 02:00 in Shanghai
    in_shanghai = load_calendar(path, get_zone("Asia/Shanghai"))[1]
    assert in_shanghai.start.hour == 0 and in_shanghai.start.day == 11  # 16:00Z is midnight in Shanghai
    assert now.like == ("past",) and now.label == "11.11"


@pytest.mark.parametrize(
    "row, words",
    [
        ("2026-11-11 02:00,2026-11-11 01:00,x,k", "not after start"),
        ("yesterday,2026-11-11 01:00,x,k", "line 2 start"),
        ("2026-11-11 00:00,2026-11-11 01:00,x,k,0", "expected_multiplier"),
        ("2026-11-11 00:00,2026-11-11 01:00,x,k,5000", "expected_multiplier"),
        ("2026-11-11 00:00,2026-11-11 01:00,,k", "name"),
    ],
)
def test_bad_csv_rows_are_named(tmp_path, row, words):
    path = write(tmp_path, "e.csv", "start,end,name,kind,expected_multiplier\n" + row + "\n")
    with pytest.raises(InputError) as info:
        load_calendar(path, UTC)
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("c.yaml", "timezone: Mars/Olympus\nevents: []\n", "timezone"),  # an unknown zone is named
        ("c.yaml", "events:\n  - name: [unclosed\n", "line"),  # malformed YAML names the line
        ("c.yaml", "events:\n  - {name: a, start: 2026-01-01 00:00, end: 2026-01-01 01:00, kind: k, like: [ghost]}\n", "ghost"),  # like names a known event
        ("e.csv", "start,end,name,kind\n2026-01-01,2026-01-02,a,k\n2026-02-01,2026-02-02,a,k\n", "duplicate"),  # names are unique
    ],
    ids=["unknown-zone", "malformed-yaml", "unknown-like", "duplicate-name"],
)
def test_a_bad_calendar_is_refused_naming_what(tmp_path, name, text, words):
    path = write(tmp_path, name, text)
    with pytest.raises(InputError, match=words):
        load_calendar(path, UTC)


def test_default_kinds_leave_out_what_describes_the_data(shared_traces):
    events = load_calendar(shared_traces / "nyc_taxi_nab_30min.events.csv", get_zone("America/New_York"))
    kinds = {e.kind for e in select_kinds(events, None)}
    assert kinds == {"holiday"}
    assert {e.kind for e in select_kinds(events, ["NAB anomaly window"])} == {"NAB anomaly window"}
