"""SenML JSON (RFC 8428): base values resolved, relative times, errors of a pack and of one record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gis_ioc.iot.senml import SenMLError, dumps, parse

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_base_name_time_unit_and_value_carry_over() -> None:
    payload = (
        b'[{"bn":"HY-AQ-1:","bt":1764666000,"bu":"ug/m3","bv":10,"n":"pm25","v":5,"t":0},'
        b'{"n":"pm10","v":20,"t":60},{"bn":"HY-AQ-1/","n":"pm25","u":"\\u00b5g/m\\u00b3","v":1,"t":120}]'
    )
    pack = parse(payload, NOW)
    assert not pack.rejected
    first, second, third = pack.records
    assert (first.name, first.unit, first.value) == ("HY-AQ-1:pm25", "ug/m3", 15.0)
    assert first.time == datetime(2025, 12, 2, 9, 0, tzinfo=UTC)
    assert (second.name, second.value, second.time - first.time) == ("HY-AQ-1:pm10", 30.0, timedelta(seconds=60))
    assert (third.name, third.unit, third.value) == ("HY-AQ-1/pm25", "µg/m³", 11.0)


def test_small_times_are_relative_to_now() -> None:
    [record] = parse(b'[{"n":"pm25","v":12.5,"t":-300}]', NOW).records
    assert record.time == NOW - timedelta(minutes=5)
    [record] = parse(b'[{"n":"pm25","v":12.5}]', NOW).records
    assert record.time == NOW


def test_a_bad_record_is_rejected_alone() -> None:
    pack = parse(b'[{"n":"pm25","v":1},{"n":"pm25","vs":"x"},{"n":"bad name","v":2},{"n":"pm10","v":3,"t":1e300}]', NOW)
    assert [r.value for r in pack.records] == [1.0]
    assert [(r.index, r.code) for r in pack.rejected] == [(1, "no_value"), (2, "bad_name"), (3, "bad_time")]


@pytest.mark.parametrize(
    ("payload", "code", "vietnamese"),
    [
        (b"{not json", "not_json", "không phải JSON hợp lệ"),
        (b'{"n":"pm25","v":1}', "not_array", "phải là một mảng JSON"),
        (b"[]", "empty", "không có bản ghi nào"),
        (b'[{"n":"pm25","v":NaN}]', "not_json", "không phải JSON hợp lệ"),
        (b'[{"n":"pm25","v":"12"}]', "field_type", "trường 'v' phải là số"),
        (b'[{"n":"pm25","v":1,"xyz_":1}]', "must_understand", "trường bắt buộc hiểu 'xyz_'"),
        (b'[{"bver":11,"n":"pm25","v":1}]', "version", "phiên bản SenML 11"),
        (b"[1]", "not_object", "bản ghi 0 không phải đối tượng JSON"),
    ],
)
def test_a_malformed_pack_is_refused_naming_the_problem(payload: bytes, code: str, vietnamese: str) -> None:
    with pytest.raises(SenMLError) as caught:
        parse(payload, NOW)
    assert caught.value.reason_code == code
    assert vietnamese in caught.value.text("vi")
    assert caught.value.status == 400


def test_dumps_round_trips() -> None:
    t = datetime(2026, 12, 2, 8, 30, 15, tzinfo=UTC)
    payload = dumps("HY-AQ-1", [("pm25", 41.2, t), ("pm10", 60.0, t + timedelta(seconds=1))], {"pm25": "µg/m³"})
    records = parse(payload, NOW).records
    assert [(r.name, r.value, r.time, r.unit) for r in records] == [
        ("HY-AQ-1:pm25", 41.2, t, "µg/m³"),
        ("HY-AQ-1:pm10", 60.0, t + timedelta(seconds=1), None),
    ]
