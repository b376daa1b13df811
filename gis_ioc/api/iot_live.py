"""``/api/iot``: the sensors live — stations, server-sent events, alerts, and SensorThings-style reads.

Thin shells over :mod:`gis_ioc.iot.live` and :mod:`gis_ioc.iot.alerts`; every read goes through the access
core with the request's viewer (``iot_devices`` is an internal layer: a caller who may not read it gets
no station, no alert and no datastream).

``GET /api/iot/stream`` is a server-sent event stream: a ``stations`` event with every readable station at
once, then one with the stations whose readings changed, pushed as the ingester commits (PostgreSQL
``LISTEN gis_ioc_iot``, migration 0024: any worker serves any stream, nothing is kept in the process),
``alert`` events as alerts open, are acknowledged or close, and a comment every 15 s to keep proxies from
closing the connection. The stream ends after ``seconds`` (default 600); the browser's EventSource then
reconnects by itself and gets a full ``stations`` event again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from gis_ioc.api import guard
from gis_ioc.database.connection import server_conninfo
from gis_ioc.errors import Forbidden, NotFound, Unauthorized
from gis_ioc.iot import alerts, judge, live
from gis_ioc.query import scope
from gis_ioc.query.viewer import Viewer

router = APIRouter(prefix="/api/iot", tags=["sensors"])
PRIVATE = {"Cache-Control": "private, no-cache", "Vary": "Cookie, Authorization, X-API-Key"}
CHANNEL = "gis_ioc_iot"
KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 1000
log = logging.getLogger("gis_ioc.iot.live")
#: Who may acknowledge an alert: the operators of the centre (the roles that make maps of the province).
ACKNOWLEDGE = "map"

Lang = Annotated[str, Query(pattern="^(vi|en)$", description="vi (default) or en")]


def _base(request: Request) -> str:
    return f"{request.app.state.settings.base_url}/api/iot/v1.1"


def _stations(request: Request, viewer: Viewer, lang: str, ids: list[int] | None = None) -> dict[str, Any]:
    app = request.app
    rules = judge.load_rules(app.state.settings.config_dir)
    with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
        return live.stations(conn, app.state.catalog, viewer, rules, lang=lang, datastream_ids=ids)


def _readable_devices(conn: psycopg.Connection[Any], request: Request, viewer: Viewer) -> set[str]:
    return set(live.readable_devices(conn, viewer, request.app.state.catalog))


@router.get("/stations", summary="The sensor stations with latest values, AQI, alarm level and staleness")
async def stations(request: Request, lang: Lang = "vi") -> JSONResponse:
    viewer = guard.viewer(request)
    found = await run_in_threadpool(_stations, request, viewer, lang)
    return JSONResponse(found, headers=PRIVATE, media_type="application/geo+json")


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\nid: {time.time_ns()}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class Hub:
    """One ``LISTEN gis_ioc_iot`` connection per server process and event loop, fanned out to the streams
    it serves (a connection per browser would exhaust PostgreSQL's connections). Nothing of the truth is
    kept here: a stream that falls behind, or a listener that reconnects after PostgreSQL restarted, gets
    ``*`` and reads every station again."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.queues: set[asyncio.Queue[str]] = set()
        self.listening = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.task = self.loop.create_task(self._run())

    async def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.queues.add(queue)
        await asyncio.wait_for(self.listening.wait(), timeout=10)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.queues.discard(queue)

    def _send(self, payload: str) -> None:
        for queue in list(self.queues):
            try:
                queue.put_nowait(payload)
            except asyncio.QueueFull:  # a slow reader: it reads everything again
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait("*")

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self.listening.is_set():
                        self._send("*")  # notifications were missed while reconnecting
                    self.listening.set()
                    async for note in conn.notifies():
                        self._send(note.payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("sensor stream: listening stopped (%s); retrying", exc)
            await asyncio.sleep(2.0)


async def _hub(request: Request) -> Hub:
    app = request.app
    hub: Hub | None = getattr(app.state, "iot_hub", None)
    if hub is None or hub.loop is not asyncio.get_running_loop() or hub.task.done():
        hub = Hub(server_conninfo(app.state.settings))
        app.state.iot_hub = hub
    return hub


@router.get("/stream", summary="Server-sent events: stations as their readings change, alerts as they move")
async def stream(
    request: Request,
    lang: Lang = "vi",
    seconds: Annotated[float, Query(ge=0, le=3600, description="how long the stream lasts")] = 600,
) -> StreamingResponse:
    viewer = guard.viewer(request)
    hub = await _hub(request)
    queue = await hub.subscribe()  # listening before the first snapshot: nothing committed in between is missed

    async def events() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + seconds
        try:
            yield b"retry: 3000\n\n"
            yield _event("stations", await run_in_threadpool(_stations, request, viewer, lang))
            while (left := deadline - time.monotonic()) > 0:
                if await request.is_disconnected():
                    return
                try:
                    payloads = [await asyncio.wait_for(queue.get(), timeout=min(KEEPALIVE_SECONDS, left))]
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                await asyncio.sleep(0.05)  # take the burst that came with it in one answer
                while not queue.empty():
                    payloads.append(queue.get_nowait())
                for name, data in await run_in_threadpool(_changes, request, viewer, lang, payloads):
                    yield _event(name, data)
        finally:
            hub.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream", headers={**PRIVATE, "X-Accel-Buffering": "no"})


def _changes(request: Request, viewer: Viewer, lang: str, payloads: list[str]) -> list[tuple[str, Any]]:
    """The events for a burst of notifications: the changed stations (all of them after a '*'), the alerts."""
    ids: set[int] = set()
    every = False
    alert_ids: set[int] = set()
    for payload in payloads:
        if payload == "*":
            every = True
        elif payload.startswith("alert:"):
            alert_ids.add(int(payload[6:]))
        else:
            ids.update(int(x) for x in payload.split(",") if x)
    out: list[tuple[str, Any]] = []
    if every or ids:
        found = _stations(request, viewer, lang, None if every else sorted(ids))
        if found["features"]:
            out.append(("stations", found))
    if alert_ids:
        app = request.app
        with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
            readable = _readable_devices(conn, request, viewer)
            for alert_id in sorted(alert_ids):
                try:
                    alert = alerts.get(conn, alert_id)
                except NotFound:
                    continue
                if alert.device_code in readable:
                    out.append(("alert", alert.as_dict()))
    return out


@router.get("/alerts", summary="Sensor alerts, newest first (live: open or acknowledged)")
async def list_alerts(
    request: Request,
    state: Annotated[str | None, Query(pattern="^(open|acknowledged|closed|live)$")] = None,
    device: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    viewer = guard.viewer(request)
    app = request.app

    def work() -> list[dict[str, Any]]:
        with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
            readable = _readable_devices(conn, request, viewer)
            if not readable or (device is not None and device not in readable):
                return []
            found = alerts.listing(conn, state=state, device_code=device, limit=limit, devices=sorted(readable))
            return [a.as_dict() for a in found]

    return JSONResponse({"alerts": await run_in_threadpool(work)}, headers=PRIVATE)


@router.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge an open alert (audited)")
async def acknowledge(
    request: Request, alert_id: int, body: Annotated[dict[str, Any] | None, Body()] = None
) -> JSONResponse:
    viewer = guard.viewer(request)
    if not viewer.may(ACKNOWLEDGE):
        if viewer.anonymous:
            raise Unauthorized("log in to acknowledge sensor alerts", vi="Đăng nhập để xác nhận cảnh báo cảm biến")
        raise Forbidden(
            "acknowledging sensor alerts is for the operations centre's roles",
            vi="Chỉ các vai trò của Trung tâm giám sát, điều hành mới xác nhận được cảnh báo cảm biến",
        )
    note = body.get("note") if isinstance(body, dict) else None
    app = request.app
    address = guard.address(request)

    def work() -> dict[str, Any]:
        with scope.transaction(app.state.pool, viewer, app.state.catalog, writes=True) as conn:
            alert = alerts.get(conn, alert_id)
            if alert.device_code not in _readable_devices(conn, request, viewer):
                raise NotFound(f"no sensor alert {alert_id}", vi=f"Không có cảnh báo cảm biến số {alert_id}")
            done = alerts.acknowledge(
                conn, alert_id, viewer.username or "anonymous", address=address, note=str(note) if note else None
            )
            return done.as_dict()

    return JSONResponse(await run_in_threadpool(work), headers=PRIVATE)


# -- SensorThings-style reads (a documented subset: gis_ioc.iot.live) -----------------------------------

Top = Annotated[int | None, Query(alias="$top", description="page size, 0 to 1000 (default 100)")]
Skip = Annotated[int | None, Query(alias="$skip", description="rows to skip")]
Count = Annotated[bool, Query(alias="$count", description="add @iot.count")]


@router.get("/v1.1/Datastreams", summary="SensorThings: the datastreams of the readable devices")
async def st_datastreams(
    request: Request, top: Top = None, skip: Skip = None, count: Count = False, lang: Lang = "vi"
) -> JSONResponse:
    viewer = guard.viewer(request)
    app = request.app

    def work() -> dict[str, Any]:
        with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
            return live.datastreams(
                conn, app.state.catalog, viewer, _base(request), top=top, skip=skip, count=count, lang=lang
            )

    return JSONResponse(await run_in_threadpool(work), headers=PRIVATE)


@router.get("/v1.1/Datastreams({datastream_id})", summary="SensorThings: one datastream")
async def st_datastream(request: Request, datastream_id: int, lang: Lang = "vi") -> JSONResponse:
    viewer = guard.viewer(request)
    app = request.app

    def work() -> dict[str, Any]:
        with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
            return live.datastream(conn, app.state.catalog, viewer, _base(request), datastream_id, lang)

    return JSONResponse(await run_in_threadpool(work), headers=PRIVATE)


@router.get("/v1.1/Datastreams({datastream_id})/Observations", summary="SensorThings: a datastream's observations")
async def st_observations(
    request: Request,
    datastream_id: int,
    top: Top = None,
    skip: Skip = None,
    count: Count = False,
    filter: Annotated[
        str | None, Query(alias="$filter", description="phenomenonTime ge|gt|le|lt|eq <instant> [and …]")
    ] = None,
    orderby: Annotated[str | None, Query(alias="$orderby", description="phenomenonTime asc|desc")] = None,
) -> JSONResponse:
    viewer = guard.viewer(request)
    app = request.app

    def work() -> dict[str, Any]:
        with scope.transaction(app.state.pool, viewer, app.state.catalog) as conn:
            return live.observations(
                conn,
                app.state.catalog,
                viewer,
                _base(request),
                datastream_id,
                top=top,
                skip=skip,
                filter=filter,
                orderby=orderby,
                count=count,
            )

    return JSONResponse(await run_in_threadpool(work), headers=PRIVATE)
