import gzip

import numpy as np
import pytest

from autoscaler.errors import InputError
from autoscaler.core.timezones import get_zone
from autoscaler.adapters.trace_files import load_trace

UTC = get_zone("UTC")


def write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_a_regular_trace(tmp_path):
    path = write(tmp_path, "timestamp,value\n2026-11-11 00:00:00,1\n2026-11-11 00:01:00,2.5\n2026-11-11 00:02:00,0\n")
    trace = load_trace(path, UTC)
    assert trace.step_s == 60
    assert trace.values.tolist() == [1.0, 2.5, 0.0]
    assert (np.diff(trace.times_s) == 60).all()


def test_loads_gzip(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"timestamp,value\n2026-11-11 00:00,1\n2026-11-11 00:05,2\n2026-11-11 00:10,3\n"))
    assert load_trace(path, UTC).step_s == 300


def test_offsets_are_converted_to_the_zone(tmp_path):
    path = write(tmp_path, "timestamp,value\n2026-11-11T12:00:00Z,1\n2026-11-11T12:01:00Z,1\n2026-11-11T12:02:00Z,1\n")
    shanghai = load_trace(path, get_zone("Asia/Shanghai"))
    utc = load_trace(path, UTC)
    assert shanghai.times_s[0] - utc.times_s[0] == 8 * 3600


@pytest.mark.parametrize(
    "body, where, words",
    [
        ("2026-11-11 00:00,1\nnot a date,2\n2026-11-11 00:02,3\n", "line 3", "timestamp"),
        ("2026-11-11 00:00,1\n2026-11-11 00:01,x\n2026-11-11 00:02,3\n", "line 3", "not a number"),
        ("2026-11-11 00:00,1\n2026-11-11 00:01,-4\n2026-11-11 00:02,3\n", "line 3", "negative"),
        ("2026-11-11 00:00,1\n2026-11-11 00:00,2\n2026-11-11 00:01,3\n", "line 3", "duplicate"),
        ("2026-11-11 00:01,1\n2026-11-11 00:00,2\n2026-11-11 00:02,3\n", "line 3", "back in time"),
        ("2026-11-11 00:00,1\n2026-11-11 00:01,2\n2026-11-11 00:02,2\n2026-11-11 00:02:30,3\n", "line 5", "irregular step"),
        ("2026-11-11 00:00,1\n2026-11-11 00:01\n", "line 3", "columns"),
    ],
)
def test_bad_rows_are_named(tmp_path, body, where, words):
    path = write(tmp_path, "timestamp,value\n" + body)
    with pytest.raises(InputError) as info:
        load_trace(path, UTC)
    message = str(info.value)
    assert where in message and words in message
    assert "\n" not in message


def test_gaps_and_empty_values_are_missing_samples_not_zeros(tmp_path):
    body = "2026-11-11 00:00,1\n2026-11-11 00:01,\n2026-11-11 00:02,NaN\n2026-11-11 00:03,4\n2026-11-13 00:03,5\n2026-11-13 00:04,6\n"
    trace = load_trace(write(tmp_path, "timestamp,value\n" + body), UTC)
    assert trace.step_s == 60 and len(trace) == 2 * 1440 + 5
    assert trace.values[0] == 1 and trace.values[3] == 4 and trace.values[-1] == 6
    assert trace.missing == 2 + (2 * 1440 - 1)  # two empty values, and the two-day gap
    assert np.isnan(trace.values[1]) and np.isnan(trace.values[1000])


def test_strict_refuses_gaps_and_empty_values(tmp_path):
    gap = write(tmp_path, "timestamp,value\n2026-11-11 00:00,1\n2026-11-11 00:01,2\n2026-11-11 00:02,2\n2026-11-11 00:07,3\n", "gap.csv")
    with pytest.raises(InputError, match="line 5: gap"):
        load_trace(gap, UTC, strict=True)
    empty = write(tmp_path, "timestamp,value\n2026-11-11 00:00,1\n2026-11-11 00:01,\n2026-11-11 00:02,2\n", "empty.csv")
    with pytest.raises(InputError, match="line 3 value: missing"):
        load_trace(empty, UTC, strict=True)


def test_offsets_across_a_dst_fall_back_do_not_go_back_in_time(tmp_path):
    # New York, 2014-11-02: 01:00-02:00 local happens twice (-04:00, then -05:00)
    stamps = [f"2014-11-02T05:{m:02d}:00Z" for m in range(0, 60, 30)]  # 01:00, 01:30 EDT
    stamps += [f"2014-11-02T06:{m:02d}:00Z" for m in range(0, 60, 30)]  # 01:00, 01:30 EST again
    stamps += ["2014-11-02T07:00:00Z", "2014-11-02T07:30:00Z"]  # 02:00, 02:30 EST
    values = [10, 20, 30, 40, 50, 60]
    path = write(tmp_path, "timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in zip(stamps, values)))
    trace = load_trace(path, get_zone("America/New_York"))
    assert trace.step_s == 1800 and len(trace) == 4
    assert trace.values.tolist() == [20.0, 30.0, 50.0, 60.0]  # each repeated slot: the mean of both passes


def test_missing_header_is_named(tmp_path):
    path = write(tmp_path, "when,how_many\n2026-11-11 00:00,1\n")
    with pytest.raises(InputError, match="header"):
        load_trace(path, UTC)


def test_missing_file_names_the_option(tmp_path):
    with pytest.raises(InputError, match="--trace"):
        load_trace(tmp_path / "nope.csv", UTC)
