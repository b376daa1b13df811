"""The ingester (``gis-ioc ingest``): readings from gis-ioc's MQTT broker into PostGIS, at least once,
nothing lost, nothing doubled.

- paho-mqtt 2.x, MQTT 3.1.1, a fixed client id with a persistent session (``clean_session=False``) and
  QoS 1 subscription to ``hy/iot/+``: while the ingester is away the broker keeps its readings.
- Manual acknowledgement: a message is acknowledged (PUBACK) only after the transaction that stored it
  committed. Messages are stored in batches (``GIS_IOC_INGEST_BATCH_SIZE``, waiting at most
  ``GIS_IOC_INGEST_BATCH_WAIT_MS`` to fill one) through :func:`gis_ioc.iot.store.store_messages`, which
  is idempotent on (datastream, phenomenon time): a message redelivered after a crash between commit
  and acknowledgement is counted a duplicate and acknowledged.
- The broker or PostGIS gone: the ingester keeps what it holds unacknowledged, waits (doubling from
  0,5 s up to ``GIS_IOC_INGEST_RETRY_MAX_SECONDS``) and tries again; messages received on an earlier
  connection are never acknowledged on a later one (the broker sends them again instead).
- It connects to PostGIS as the server's least-privileged role.
- After the commits it has the datastreams just stored judged (:func:`gis_ioc.iot.judge.after_commit`:
  limits, AQI, alarm levels, alerts), at most every ``JUDGE_EVERY`` seconds while readings keep coming
  and at once when they pause, by a :class:`Judge` thread with a connection of its own: storing and
  acknowledging never wait for a judgement.

:class:`Supervisor` runs ``gis-ioc ingest`` as a child process of ``gis-ioc serve`` and starts it again
when it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from gis_ioc.database.connection import server_conninfo
from gis_ioc.errors import InvalidInput
from gis_ioc.iot.broker import INGESTER, Broker
from gis_ioc.iot.model import TOPIC_PREFIX, check_device_code
from gis_ioc.iot.store import Message, store_messages
from gis_ioc.settings import Settings

log = logging.getLogger("gis_ioc.iot.ingest")

CLIENT_ID = "gis-ioc-ingester"
MAX_PAYLOAD = 1024 * 1024
#: Seconds between two judgements of the datastreams just committed, while readings keep coming.
JUDGE_EVERY = 5.0
#: Seconds between two judgements of every device (staleness turns with the clock, not with a reading).
JUDGE_ALL_EVERY = 60.0
#: Seconds after the ingester starts before its first judgement of every device.
JUDGE_ALL_FIRST = 5.0


@dataclass
class _Received:
    generation: int
    mid: int
    qos: int
    message: Message


@dataclass
class Stats:
    batches: int = 0
    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    db_failures: int = 0
    started: float = field(default_factory=time.monotonic)


class Backoff:
    """Waits doubling from ``first`` up to ``most`` seconds; :meth:`reset` after a success."""

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self.first, self.most = first, most
        self.current = first

    def next(self) -> float:
        wait = self.current
        self.current = min(self.most, self.current * 2)
        return wait

    def reset(self) -> None:
        self.current = self.first


def _vn(seconds: float) -> str:
    """Seconds as Vietnamese write them (0,5)."""
    return f"{seconds:.1f}".rstrip("0").rstrip(".").replace(".", ",")


def message_of(topic: str, payload: bytes, received_at: datetime) -> Message:
    """A stored-to-be message from an MQTT topic ``hy/iot/<device_code>`` (others are refused)."""
    prefix = TOPIC_PREFIX + "/"
    code = topic[len(prefix) :] if topic.startswith(prefix) else ""
    refused: tuple[str, dict[str, object]] | None = None
    try:
        check_device_code(code)
    except InvalidInput:
        refused = ("bad_topic", {"topic": topic[:200], "prefix": TOPIC_PREFIX})
    if refused is None and len(payload) > MAX_PAYLOAD:
        refused = ("too_large", {"size": len(payload), "limit": MAX_PAYLOAD})
    return Message(code if refused is None else "", payload, "mqtt", received_at, topic=topic[:200], refused=refused)


class Judge:
    """The judgement of the datastreams committed since the last one (limits, AQI, alarm levels, alerts), in
    a thread with a PostGIS connection of its own: at most every ``JUDGE_EVERY`` seconds while readings keep
    coming (its cost follows the stations, not the readings), at once when they pause (:meth:`pause`), and
    once more at :meth:`stop`; and every device every ``JUDGE_ALL_EVERY`` seconds (the first time
    ``JUDGE_ALL_FIRST`` seconds after the start), as ``gis-ioc iot judge`` does from cron, since a silent
    datastream turns stale with the clock. Readings are stored and acknowledged whatever happens here: a
    failed judgement is logged and its datastreams are judged again with the next ones."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._judged_at = time.monotonic()
        self._all_at = time.monotonic() - JUDGE_ALL_EVERY + JUDGE_ALL_FIRST
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="gis-ioc judge", daemon=True)
        self.judgements = 0

    def add(self, datastreams: Iterable[int]) -> None:
        with self._lock:
            self._pending.update(datastreams)

    def pause(self) -> None:
        """The readings paused: judge what is waiting without waiting for ``JUDGE_EVERY``."""
        with self._lock:
            waiting = bool(self._pending)
        if waiting:
            self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._judge_pending()
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            now = time.monotonic()
            due = min(JUDGE_EVERY - (now - self._judged_at), JUDGE_ALL_EVERY - (now - self._all_at))
            woken = self._wake.wait(timeout=max(0.05, due))
            self._wake.clear()
            if self._stopping.is_set():
                return
            if time.monotonic() - self._all_at >= JUDGE_ALL_EVERY:
                self._judge_everything()
            elif woken or time.monotonic() - self._judged_at >= JUDGE_EVERY:
                self._judge_pending()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                server_conninfo(self.settings),
                autocommit=True,
                connect_timeout=5,
                application_name="gis-ioc ingest (judge)",
            )
        return self._conn

    def _judge_everything(self) -> None:
        with self._lock:  # every device includes the waiting ones
            waiting, self._pending = self._pending, set()
        self._all_at = self._judged_at = time.monotonic()
        try:
            from gis_ioc.iot import judge

            judge.judge_all(self._connection(), self.settings.config_dir)
            self.judgements += 1
        except Exception:
            log.exception("Không đánh giá được ngưỡng, mất tín hiệu và cảnh báo của các thiết bị")
            self.add(waiting)  # with the next ones
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None

    def _judge_pending(self) -> None:
        with self._lock:
            datastreams, self._pending = self._pending, set()
        self._judged_at = time.monotonic()
        if not datastreams:
            return
        try:
            from gis_ioc.iot import judge

            judge.after_commit(self._connection(), datastreams, self.settings.config_dir)
            self.judgements += 1
        except Exception:
            log.exception("Không đánh giá được ngưỡng và cảnh báo cho %d luồng dữ liệu vừa lưu", len(datastreams))
            self.add(datastreams)  # with the next ones
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None


class Ingester:
    """One ingester process's work. :meth:`run` until :meth:`stop` (or SIGTERM in ``gis-ioc ingest``)."""

    def __init__(self, settings: Settings, client_id: str = CLIENT_ID) -> None:
        self.settings = settings
        self.broker = Broker.of(settings)
        self.client_id = client_id
        self.skew = timedelta(minutes=settings.ingest_clock_skew_minutes)
        self.inbox: queue.Queue[_Received] = queue.Queue()
        self.stopping = threading.Event()
        self.generation = 0
        self.connected = threading.Event()
        self.stats = Stats()
        self._conn: psycopg.Connection[Any] | None = None
        self.judge = Judge(settings)
        self.client = self._client()

    # -- MQTT --------------------------------------------------------------------------------------

    def _client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        client.username_pw_set(INGESTER, self.broker.ingester_secret())
        client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(self.settings.ingest_retry_max_seconds)))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("Broker MQTT từ chối kết nối của bộ thu nhận: %s", reason)
            return
        self.generation += 1
        client.subscribe(f"{TOPIC_PREFIX}/+", qos=1)
        self.connected.set()
        log.info(
            "Đã kết nối broker MQTT %s:%s (phiên cũ: %s)",
            self.broker.host,
            self.broker.port,
            "có" if flags.session_present else "không",
        )

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        granted = ", ".join(str(getattr(r, "value", r)) for r in reasons)
        log.info("Đã đăng ký nhận chủ đề %s/+ (QoS %s)", TOPIC_PREFIX, granted)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.warning("Không kết nối được broker MQTT %s:%s; sẽ thử lại", self.broker.host, self.broker.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        self.generation += 1  # what was received on that connection is no longer acknowledged
        if not self.stopping.is_set():
            log.warning("Mất kết nối broker MQTT (%s); đang kết nối lại", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = message_of(msg.topic, bytes(msg.payload), datetime.now(UTC))
        self.inbox.put(_Received(self.generation, msg.mid, msg.qos, message))

    # -- PostGIS -----------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                server_conninfo(self.settings), autocommit=True, connect_timeout=5, application_name="gis-ioc ingest"
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def _store(self, batch: list[_Received]) -> None:
        """Store a batch, retrying with backoff until PostGIS takes it (or the ingester stops); then
        acknowledge what was received on the current connection."""
        backoff = Backoff(most=self.settings.ingest_retry_max_seconds)
        while True:
            try:
                outcomes = store_messages(self._connection(), [r.message for r in batch], skew=self.skew)
                break
            except (psycopg.OperationalError, psycopg.errors.AdminShutdown, psycopg.InterfaceError) as exc:
                self._drop_connection()
                self.stats.db_failures += 1
                wait = backoff.next()
                log.warning("Không ghi được vào PostGIS (%s); thử lại sau %s giây", str(exc).strip()[:200], _vn(wait))
                if self.stopping.wait(wait):
                    return  # not acknowledged: the broker sends them again
        self.stats.batches += 1
        self.stats.messages += len(batch)
        for outcome in outcomes:
            self.stats.accepted += outcome.accepted
            self.stats.duplicates += outcome.duplicates
            self.stats.dead_lettered += outcome.dead_lettered
        for received in batch:
            if received.generation == self.generation and received.qos > 0:
                self.client.ack(received.mid, received.qos)
        self.judge.add(d for o in outcomes for d in o.datastreams)

    def _take(self) -> list[_Received]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.ingest_batch_wait_ms / 1000
        while len(batch) < self.settings.ingest_batch_size:
            left = deadline - time.monotonic()
            try:
                batch.append(self.inbox.get(timeout=left) if left > 0 else self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> Stats:
        log.info(
            "Bộ thu nhận số đo bắt đầu: broker %s:%s, chủ đề %s/+, lô tối đa %d tin",
            self.broker.host,
            self.broker.port,
            TOPIC_PREFIX,
            self.settings.ingest_batch_size,
        )
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        self.judge.start()
        try:
            while not self.stopping.is_set():
                batch = self._take()
                if batch:
                    self._store(batch)
                else:
                    self.judge.pause()  # readings paused: judge what is waiting now
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self._drop_connection()
            self.judge.stop()  # judges what is still waiting
            log.info(
                "Bộ thu nhận dừng: %d tin, %d số đo mới, %d trùng, %d vào hàng lỗi",
                self.stats.messages,
                self.stats.accepted,
                self.stats.duplicates,
                self.stats.dead_lettered,
            )
        return self.stats

    def stop(self) -> None:
        self.stopping.set()


def run_forever(settings: Settings) -> Stats:
    """``gis-ioc ingest``: run until SIGTERM or SIGINT."""
    ingester = Ingester(settings)

    def _stop(signum: int, frame: Any) -> None:
        ingester.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return ingester.run()


def _parent_death_signal() -> Callable[[], None] | None:
    """A function for the child, before exec: SIGTERM when the supervising process dies, however it dies
    (Linux ``prctl(PR_SET_PDEATHSIG)``). libc is loaded here, in the parent: the child only calls it."""
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:
        prctl(1, signal.SIGTERM)

    return set_signal


class Supervisor:
    """``gis-ioc ingest`` as a child of ``gis-ioc serve``: started again (after a pause that doubles up to
    ``GIS_IOC_INGEST_RETRY_MAX_SECONDS``) whenever it ends, until :meth:`stop`."""

    def __init__(self, settings: Settings, log_file: Path | None = None) -> None:
        self.settings = settings
        self.log_file = log_file or settings.home / "log" / "ingest.log"
        self.stopping = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=self._watch, name="gis-ioc ingest supervisor", daemon=True)
        self._on_exec = _parent_death_signal()

    def start(self) -> Supervisor:
        self.thread.start()
        return self

    def _command(self) -> list[str]:
        script = Path(sys.executable).parent / "gis-ioc"
        return (
            [str(script), "ingest"]
            if script.exists()
            else [sys.executable, "-c", "from gis_ioc.cli import main; main()", "ingest"]
        )

    def _watch(self) -> None:
        backoff = Backoff(first=1.0, most=self.settings.ingest_retry_max_seconds)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        while not self.stopping.is_set():
            started = time.monotonic()
            with self.log_file.open("ab") as out:
                self.process = subprocess.Popen(
                    self._command(), stdout=out, stderr=subprocess.STDOUT, env=os.environ, preexec_fn=self._on_exec
                )
            code = self.process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > 60:
                backoff.reset()
            wait = backoff.next()
            log.warning("Bộ thu nhận số đo dừng (mã %s); khởi động lại sau %s giây", code, _vn(wait))
            self.stopping.wait(wait)

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.thread.join(timeout=5)
