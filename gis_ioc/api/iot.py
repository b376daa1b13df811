"""HTTP push of sensor readings: ``POST /api/iot/devices/{device_code}/senml`` with a SenML JSON pack
(RFC 8428, ``application/senml+json`` or ``application/json``), for devices and gateways that send
batches rather than MQTT messages. Same storage path as the ingester (:mod:`gis_ioc.iot.store`).

A device proves itself with its own credential (``gis-ioc iot credentials``) in the header
``X-Device-Key: <device_code>:<secret>`` (HTTP Basic and Bearer belong to accounts). Without it, or with
a wrong one: 401; one device's credential on another device's door, or a record naming another device:
403, nothing stored. The answer counts the records accepted, duplicates, flagged and dead-lettered
(with each problem); a pack that is no SenML at all: 400 naming the problem; a pack none of whose
records could be stored: 422. Messages are Vietnamese, English with ``?lang=en`` or ``Accept-Language``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.api.loads import language
from gis_ioc.auth import audit
from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import Forbidden, Unauthorized
from gis_ioc.http import problem
from gis_ioc.iot import model
from gis_ioc.iot.senml import SenMLError, parse
from gis_ioc.iot.store import Message, Outcome, property_of, store_messages

log = logging.getLogger("gis_ioc.api.iot")
router = APIRouter(prefix="/api/iot", tags=["iot"])
HEADER = "X-Device-Key"


class DeviceUnauthorized(Unauthorized):
    challenge = 'X-Device-Key realm="gis_ioc"'


def _authenticate(request: Request, device_code: str, key: str | None) -> None:
    """401 without a valid device credential; 403 when it is another device's."""
    if not key or ":" not in key:
        raise DeviceUnauthorized(
            f"send the device's credential in the header {HEADER}: <device code>:<secret> (gis-ioc iot credentials)",
            code="iot.device_key",
            vi=f"gửi khoá của thiết bị trong tiêu đề {HEADER}: <mã thiết bị>:<bí mật> (gis-ioc iot credentials)",
        )
    code, _, secret = key.partition(":")
    with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
        stored = model.secret_hash(conn, code) if len(code) <= 64 else None
        valid = model.verify_secret(stored, secret)
        if not valid:  # recorded (bounded per caller and address), committed with this connection
            audit.refused(
                conn,
                actor=f"device:{code[:64]}",
                action="iot.push",
                result="denied",
                target=device_code,
                address=guard.address(request),
                detail={"reason": "wrong device credential"},
            )
    if not valid:
        raise DeviceUnauthorized(
            f"the credential of device {code[:64]!r} is wrong",
            code="iot.device_key",
            vi=f"khoá của thiết bị {code[:64]!r} không đúng",
        )
    if code != device_code:
        raise Forbidden(
            f"device {code} may not send readings of device {device_code}",
            code="iot.other_device",
            vi=f"thiết bị {code} không được gửi số đo của thiết bị {device_code}",
        )


def _judge(request: Request, datastreams: set[int]) -> None:
    """Limits, AQI, alarm levels and alerts of the datastreams just committed; the readings are stored
    whatever happens here (a failure is logged)."""
    try:
        from gis_ioc.iot import judge

        with request.app.state.pool.connection(timeout=10) as conn:
            judge.after_commit(conn, datastreams, request.app.state.settings.config_dir)
    except Exception:
        log.exception("judging datastreams %s after an HTTP push failed", sorted(datastreams))


def _push(request: Request, device_code: str, key: str | None, payload: bytes) -> Outcome:
    _authenticate(request, device_code, key)
    now = datetime.now(UTC)
    try:
        pack = parse(payload, now)
    except SenMLError:
        pack = None  # stored as a dead letter below, then refused with its reason
    if pack is not None:
        for record in pack.records:
            if property_of(record.name, device_code)[1] == "other_device":
                raise Forbidden(
                    f"record {record.index} names {record.name!r}, a stream of another device than {device_code}",
                    code="iot.other_device",
                    vi=f"bản ghi {record.index} mang tên {record.name!r}, luồng của thiết bị khác {device_code}",
                )
    with translate_errors(), request.app.state.pool.connection(timeout=10) as conn:
        [outcome] = store_messages(conn, [Message(device_code, payload, "http", now)])
    if outcome.datastreams:
        _judge(request, outcome.datastreams)
    if pack is None:
        parse(payload, now)  # raises the SenMLError (400) naming the problem
    return outcome


@router.post(
    "/devices/{device_code}/senml",
    summary="Push a device's readings (SenML JSON, RFC 8428)",
    responses={
        200: {"description": "Counts of the records accepted, duplicates, flagged and dead-lettered"},
        400: {"description": "Not a SenML JSON pack"},
        401: {"description": "No or a wrong device credential (X-Device-Key)"},
        403: {"description": "Another device's credential or stream"},
        422: {"description": "No record could be stored"},
    },
)
async def push_senml(device_code: str, request: Request) -> JSONResponse:
    model.check_device_code(device_code)
    payload = await request.body()
    outcome = await run_in_threadpool(_push, request, device_code, request.headers.get(HEADER), payload)
    lang = language(request)
    body: dict[str, Any] = outcome.as_json(lang)
    if outcome.accepted == 0 and outcome.duplicates == 0 and outcome.dead_lettered > 0:
        first = body["problems"][0]["reason"]
        detail = f"không lưu được số đo nào: {first}" if lang == "vi" else f"no reading stored: {first}"
        return problem(422, "No reading stored", detail, code="iot.nothing_stored", **body)
    return JSONResponse(body)
