"""Background jobs (exports, and maps and reports asked with ``Prefer: respond-async``), kept in PostgreSQL
in the one job table, ``gis_ioc.jobs``, beside pygeoapi's OGC API process jobs (``type`` tells them
apart: ``process`` for pygeoapi's, ``export``, ``map`` and ``report`` for ours; migrations 0005, 0013,
0016). Any server process answers any question about any job: its status, progress, file and dismissal.

- **Running**: each server process runs at most ``GIS_IOC_JOB_WORKERS`` jobs at once, in a thread pool.
  A job's row goes ``accepted`` → ``running`` → ``successful`` | ``failed`` | ``dismissed`` (pygeoapi's
  words; the HTTP API says queued/running/done/failed/dismissed).
- **Progress**: rows written out of rows in all (or steps, for maps and reports), written to the row at
  most every :data:`PROGRESS_SECONDS`; each write also refreshes ``updated``, the job's heartbeat.
- **Heartbeat**: a thread of each process refreshes ``updated`` of the jobs it holds every
  :data:`HEARTBEAT_SECONDS`. A queued or running job whose heartbeat is older than :data:`STALE_SECONDS`
  lost its process (the server stopped or was killed): it is reported, and recorded, as failed.
- **Owners**: a job answers only the account that started it and administrators
  (:meth:`gis_ioc.query.viewer.Viewer.owns`); anyone else is told there is no such job.
- **Dismissal**: a queued or running job is marked ``dismissed``; its work stops at its next progress
  tick (whichever process runs it) and its folder is removed. A finished job is deleted with its file.
- **Files**: each job writes into a private folder of its own under ``GIS_IOC_HOME/exports``, named by a
  secret (not the job id); a file is served only while it is a regular file inside that folder.
- **Retention**: jobs ended more than ``GIS_IOC_JOB_RETENTION_HOURS`` ago are deleted with their files,
  pygeoapi's process jobs (and their results under ``GIS_IOC_HOME/jobs``) included. The sweep deletes
  rows with ``DELETE … RETURNING`` and then removes the files it was handed, so any number of processes
  may sweep at once: each row (and so each file) goes to exactly one of them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gis_ioc.database.connection import translate_errors
from gis_ioc.errors import GisIocError, NotFound
from gis_ioc.maps.exports import Progress
from gis_ioc.query.viewer import Viewer

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 0.5  # progress written to the row at most this often
HEARTBEAT_SECONDS = 10.0  # a process refreshes its jobs' heartbeat this often
STALE_SECONDS = 60.0  # a queued or running job without a heartbeat for this long lost its process
SWEEP_SECONDS = 300.0  # a process sweeps expired jobs this often (and when a job is started)
LIVE = ("accepted", "running")
#: The row's status (pygeoapi's words) as the HTTP API says it.
STATUS = {
    "accepted": "queued",
    "running": "running",
    "successful": "done",
    "failed": "failed",
    "dismissed": "dismissed",
}
FOLDER = "exports"  # under GIS_IOC_HOME: the jobs' private folders
PROCESS_FOLDER = "jobs"  # under GIS_IOC_HOME: pygeoapi's process job results
WORKER = f"{socket.gethostname()}:{os.getpid()}"

#: Times are UTC, as pygeoapi writes them into the table's timestamp columns (``timezone('utc', now())``).
#: A job reads as stale when queued or running without a heartbeat for STALE_SECONDS (``%(stale)s``).


QUERY_FOLDERS = "SELECT folder FROM gis_ioc.jobs WHERE folder = ANY(%(names)s)"
QUERY_LOCATIONS = "SELECT location FROM gis_ioc.jobs WHERE location = ANY(%(names)s)"


class JobNotReady(GisIocError):
    status = 409
    title = "Job not ready"


class JobCancelled(Exception):
    """Raised inside a job's work at a progress tick once the job was dismissed."""


@dataclass(frozen=True)
class Result:
    """A job's file: its path (inside the job's folder), media type, download name, how many features
    or rows it holds, what else to tell about it, and the headers its download carries."""

    path: Path
    media_type: str
    filename: str
    count: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        return {
            "file": self.filename,
            "media_type": self.media_type,
            "count": self.count,
            "detail": self.detail,
            "headers": self.headers,
        }

    @classmethod
    def load(cls, folder: Path, stored: dict[str, Any]) -> Result:
        return cls(
            folder / str(stored["file"]),
            str(stored["media_type"]),
            str(stored["file"]),
            stored.get("count"),
            dict(stored.get("detail") or {}),
            dict(stored.get("headers") or {}),
        )


Work = Callable[[Path, Progress], Result]


def _seconds(start: datetime | None, end: datetime | None) -> float:
    """From start to end (or now), both naive UTC as the table holds them."""
    if start is None:
        return 0.0
    end = end or datetime.now(UTC).replace(tzinfo=None)
    return max(0.0, (end - start).total_seconds())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


@dataclass
class Job:
    """A job as its row holds it."""

    id: str
    type: str
    kind: str
    status: str  # the row's (pygeoapi's) word; :attr:`state` is the API's
    owner: str | None
    request: dict[str, Any]
    folder: Path | None
    result: Result | None
    done: int
    total: int | None
    message: str | None
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    updated: datetime | None
    seconds: float

    @classmethod
    def of(cls, row: dict[str, Any], home: Path) -> Job:
        folder = home / row["folder"] if row["folder"] else None
        result = Result.load(folder, row["result"]) if folder is not None and row["result"] else None
        return cls(
            row["identifier"],
            row["type"],
            row["process_id"],
            row["status"],
            row["owner"],
            row["request"] or {},
            folder,
            result,
            int(row["done"] or 0),
            None if row["total"] is None else int(row["total"]),
            row["message"],
            row["created"],
            row["started"],
            row["finished"],
            row["updated"],
            _seconds(row["started"] or row["created"], row["finished"]),
        )

    @property
    def state(self) -> str:
        return STATUS.get(self.status, self.status)

    @property
    def error(self) -> str | None:
        return self.message if self.status == "failed" else None

    def file(self) -> Path:
        """The job's file, once done: a regular file inside the job's own folder, or 409/404."""
        if self.status != "successful" or self.result is None or self.folder is None:
            raise JobNotReady(
                f"{self.type} job {self.id} is {self.state}" + (f": {self.message}" if self.error else "")
            )
        path = self.result.path
        folder = self.folder.resolve()
        if path.is_symlink() or not path.is_file() or folder not in path.resolve().parents:
            raise NotFound(f"{self.type} job {self.id} has no file any more")
        return path

    def describe(self, base: str) -> dict[str, Any]:
        percent = round(100.0 * self.done / self.total, 1) if self.total else 0.0
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "kind": self.kind,
            "request": self.request,
            "status": self.state,
            "done": self.done,
            "total": self.total,
            "percent": 100.0 if self.status == "successful" else min(percent, 100.0),
            "seconds": round(self.seconds, 2),
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "updated": _iso(self.updated),
            "links": [{"rel": "self", "href": f"{base}/{self.id}"}],
        }
        if self.error:
            body["error"] = self.error
        elif self.status == "dismissed" and self.message:
            body["message"] = self.message
        if self.result is not None and self.status == "successful":
            described = {"file": self.result.filename, "media_type": self.result.media_type, **self.result.detail}
            if self.result.count is not None:
                described.setdefault("features", self.result.count)
            body["result"] = described
            body["links"].append({"rel": "enclosure", "href": f"{base}/{self.id}/file", "type": self.result.media_type})
        return body


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder.resolve() in path.resolve().parents
    except OSError:
        return False


def sweep(cursor: Any, home: Path, retention_hours: float) -> int:
    """Mark jobs that lost their process as failed, delete every job (of any type) that ended more than
    ``retention_hours`` ago, then remove the files of the rows this call deleted, and folders and
    results left without a row. ``cursor``: a DB-API cursor (psycopg 3 or psycopg2) in a transaction
    the caller commits; safe when several processes sweep at once (each deleted row is returned to one).
    Returns how many jobs were deleted."""
    params = {"live": list(LIVE), "stale": STALE_SECONDS, "keep": retention_hours * 3600.0}
    cursor.execute(
        """UPDATE gis_ioc.jobs SET status = 'failed', finished = timezone('utc', now()),
               message = 'the server process running it stopped; start the ' || type || ' again'
           WHERE status = ANY(%(live)s) AND type <> 'process'
             AND updated < timezone('utc', now()) - make_interval(secs => %(stale)s)""",
        params,
    )
    cursor.execute(
        "DELETE FROM gis_ioc.jobs WHERE coalesce(finished, updated, created) "
        "< timezone('utc', now()) - make_interval(secs => %(keep)s) RETURNING type, folder, location",
        params,
    )
    gone = cursor.fetchall()
    for kind, folder, location in gone:
        if kind == "process":
            if location and _inside(Path(location), home / PROCESS_FOLDER):
                Path(location).unlink(missing_ok=True)
        elif folder and _inside(home / folder, home / FOLDER):
            shutil.rmtree(home / folder, ignore_errors=True)
    _sweep_orphans(cursor, home, retention_hours)
    return len(gone)


def _sweep_orphans(cursor: Any, home: Path, retention_hours: float) -> None:
    """Folders and process results older than the retention that no row names (their process stopped
    between writing and recording, or between deleting a row and its files)."""
    cutoff = time.time() - retention_hours * 3600.0
    for sub, column in ((FOLDER, "folder"), (PROCESS_FOLDER, "location")):
        try:
            old = [p for p in (home / sub).iterdir() if p.lstat().st_mtime < cutoff]
        except OSError:
            continue
        if not old:
            continue
        names = [f"{sub}/{p.name}" if column == "folder" else str(p) for p in old]
        query = QUERY_FOLDERS if column == "folder" else QUERY_LOCATIONS
        cursor.execute(query, {"names": names})
        kept = {r[0] for r in cursor.fetchall()}
        for path, name in zip(old, names, strict=True):
            if name in kept:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


class JobManager:
    """The jobs of one server process's application: it runs at most ``workers`` at once and answers
    about every job in the table (whichever process runs it)."""

    def __init__(self, pool: Any, home: Path, workers: int = 2, retention_hours: float = 24.0) -> None:
        self.pool = pool
        self.home = home
        self.folder = home / FOLDER
        self.retention_hours = retention_hours
        self.live: dict[str, threading.Event] = {}  # jobs this process holds → their dismissal flag
        self.lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gis-ioc-job")
        self._stop = threading.Event()
        self._swept = 0.0
        self._beat = threading.Thread(target=self._heartbeat, name="gis-ioc-job-heartbeat", daemon=True)
        self._beat.start()

    # -- the table ---------------------------------------------------------------------------------

    def _one(self, query: str, params: dict[str, Any]) -> dict[str, Any] | None:
        with translate_errors(), self.pool.connection(timeout=10) as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            row: dict[str, Any] | None = cur.fetchone()
            return row

    def _execute(self, query: str, params: dict[str, Any]) -> int:
        with translate_errors(), self.pool.connection(timeout=10) as conn:
            return int(conn.execute(query, params).rowcount)

    @property
    def jobs(self) -> Mapping[str, Job]:
        """Every job of ours by id, as the table holds it (no owner check: for the console and tests)."""
        return _Table(self)

    def read(self, job_id: str) -> Job | None:
        """A job (of ours, not pygeoapi's), a stale one recorded as failed first; None if there is none."""
        row = self._one(
            """WITH stale AS (
                    UPDATE gis_ioc.jobs SET status = 'failed', finished = timezone('utc', now()),
                           message = 'the server process running it stopped; start the ' || type || ' again'
                     WHERE identifier = %(id)s AND status = ANY(%(live)s) AND type <> 'process'
                       AND updated < timezone('utc', now()) - make_interval(secs => %(stale)s)
                    RETURNING *)
                SELECT * FROM stale
                UNION ALL
                SELECT * FROM gis_ioc.jobs
                 WHERE identifier = %(id)s AND type <> 'process' AND NOT EXISTS (SELECT 1 FROM stale)""",
            {"id": job_id, "live": list(LIVE), "stale": STALE_SECONDS},
        )
        return None if row is None else Job.of(row, self.home)

    # -- asking ------------------------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        request: dict[str, Any],
        work: Work,
        *,
        owner: str | None,
        type: str = "export",
        personal: bool = False,
    ) -> Job:
        """Record a job (queued) and run ``work(folder, progress)`` in this process's thread pool."""
        self.maybe_sweep()
        job_id = uuid.uuid4().hex
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)  # the files of every account's jobs: the server's alone
        name = secrets.token_urlsafe(24)
        cancelled = threading.Event()
        with self.lock:
            self.live[job_id] = cancelled
        try:
            row = self._one(
                """INSERT INTO gis_ioc.jobs (identifier, type, process_id, created, updated, status, message,
                        progress, owner, personal, request, folder, done, worker)
                    VALUES (%(id)s, %(type)s, %(kind)s, timezone('utc', now()), timezone('utc', now()),
                        'accepted', 'queued', 0, %(owner)s, %(personal)s, %(request)s, %(folder)s, 0, %(worker)s)
                    RETURNING *""",
                {
                    "id": job_id,
                    "type": type,
                    "kind": kind,
                    "owner": owner,
                    "personal": personal,
                    "request": Jsonb(request),
                    "folder": f"{FOLDER}/{name}",
                    "worker": WORKER,
                },
            )
        except BaseException:
            with self.lock:
                self.live.pop(job_id, None)
            raise
        assert row is not None
        self.executor.submit(self._run, job_id, self.folder / name, work, cancelled)
        return Job.of(row, self.home)

    def get(self, job_id: str, viewer: Viewer) -> Job:
        """The job, if ``viewer`` owns it (or administers); otherwise 404, as for a job that never was."""
        job = self.read(job_id)
        if job is None or not viewer.owns(job.owner):
            raise NotFound(f"no export job {job_id[:64]!r} (jobs are kept {self.retention_hours:g} h after they end)")
        return job

    def dismiss(self, job_id: str, viewer: Viewer) -> Job:
        """Dismiss the viewer's job: a queued or running one is marked dismissed (its work stops at its
        next progress tick, in whichever process runs it, and removes its folder); a finished one is
        deleted with its file. Answers the job as dismissed; 404 for a job the viewer does not own."""
        job = self.get(job_id, viewer)
        message = f"dismissed by {viewer.name}"
        if job.status in LIVE:
            row = self._one(
                """UPDATE gis_ioc.jobs SET status = 'dismissed', message = %(message)s,
                        finished = timezone('utc', now()), updated = timezone('utc', now())
                    WHERE identifier = %(id)s AND status = ANY(%(live)s) RETURNING *""",
                {"id": job_id, "message": message, "live": list(LIVE)},
            )
            with self.lock:
                flag = self.live.get(job_id)
            if flag is not None:
                flag.set()
            if row is not None:
                return Job.of(row, self.home)
        row = self._one(
            """DELETE FROM gis_ioc.jobs WHERE identifier = %(id)s AND type <> 'process'
                AND NOT status = ANY(%(live)s) RETURNING *""",
            {"id": job_id, "live": list(LIVE)},
        )
        if row is None:  # another request dismissed it meanwhile
            raise NotFound(f"no export job {job_id[:64]!r}")
        gone = Job.of(row, self.home)
        self._remove(gone.folder)
        gone.status, gone.message = "dismissed", message
        return gone

    def maybe_sweep(self) -> None:
        if time.monotonic() - self._swept >= SWEEP_SECONDS:
            self._swept = time.monotonic()
            try:
                self.sweep()
            except Exception as exc:  # never in the way of the job being started: the next sweep tries again
                log.warning("job retention sweep: %s", exc)

    def sweep(self) -> int:
        """Delete expired jobs and their files (see :func:`sweep`); how many were deleted."""
        with translate_errors(), self.pool.connection(timeout=10) as conn, conn.cursor() as cur:
            return sweep(cur, self.home, self.retention_hours)

    def close(self) -> None:
        """Stop: jobs still queued or running here are recorded as failed (the process is stopping)."""
        self._stop.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self.lock:
            held = list(self.live)
            for flag in self.live.values():
                flag.set()
        if held:
            try:
                self._execute(
                    """UPDATE gis_ioc.jobs SET status = 'failed', finished = timezone('utc', now()),
                            updated = timezone('utc', now()),
                            message = 'the server process running it stopped; start the ' || type || ' again'
                        WHERE identifier = ANY(%(ids)s) AND status = ANY(%(live)s)""",
                    {"ids": held, "live": list(LIVE)},
                )
            except Exception as exc:  # the pool may be gone: the heartbeat's absence tells the same
                log.warning("could not record the jobs of a stopping server as failed: %s", exc)

    # -- running -----------------------------------------------------------------------------------

    def _run(self, job_id: str, folder: Path, work: Work, cancelled: threading.Event) -> None:
        seen: dict[str, Any] = {"done": 0, "total": None, "written": 0.0}

        def progress(done: int, total: int) -> None:
            seen["done"], seen["total"] = done, total
            if cancelled.is_set():
                raise JobCancelled()
            now = time.monotonic()
            if now - seen["written"] < PROGRESS_SECONDS:
                return
            seen["written"] = now
            percent = int(100 * done / total) if total else 0
            updated = self._execute(
                """UPDATE gis_ioc.jobs SET done = %(done)s, total = %(total)s, progress = %(percent)s,
                        updated = timezone('utc', now())
                    WHERE identifier = %(id)s AND status = 'running'""",
                {"id": job_id, "done": done, "total": total, "percent": min(percent, 100)},
            )
            if updated == 0:  # dismissed (or swept) meanwhile
                raise JobCancelled()

        try:
            if cancelled.is_set() or not self._execute(
                """UPDATE gis_ioc.jobs SET status = 'running', message = 'running', started = timezone('utc', now()),
                        updated = timezone('utc', now()), worker = %(worker)s
                    WHERE identifier = %(id)s AND status = 'accepted'""",
                {"id": job_id, "worker": WORKER},
            ):
                self._remove(folder)
                return  # dismissed before it started
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            result = work(folder, progress)
            done = result.count if result.count is not None else seen["done"]
            total = seen["total"] if seen["total"] is not None else done
            finished = self._execute(
                """UPDATE gis_ioc.jobs SET status = 'successful', message = 'done', finished = timezone('utc', now()),
                        updated = timezone('utc', now()), done = %(done)s, total = %(total)s, progress = 100,
                        result = %(result)s, mimetype = %(media)s
                    WHERE identifier = %(id)s AND status = 'running'""",
                {
                    "id": job_id,
                    "done": done,
                    "total": total,
                    "result": Jsonb(result.stored()),
                    "media": result.media_type,
                },
            )
            if not finished:  # dismissed while it wrote its last rows
                self._remove(folder)
        except JobCancelled:
            self._remove(folder)
        except Exception as exc:  # a job must say why it failed rather than vanish
            self._remove(folder)
            message = str(exc) if isinstance(exc, GisIocError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, GisIocError):
                log.exception("job %s failed", job_id)
            try:
                self._execute(
                    """UPDATE gis_ioc.jobs SET status = 'failed', message = %(message)s,
                            finished = timezone('utc', now()), updated = timezone('utc', now())
                        WHERE identifier = %(id)s AND status = ANY(%(live)s)""",
                    {"id": job_id, "message": message[:2000], "live": list(LIVE)},
                )
            except Exception as again:  # PostGIS gone: without a heartbeat the job reads as failed soon
                log.warning("job %s failed (%s) and could not be recorded: %s", job_id, message, again)
        finally:
            with self.lock:
                self.live.pop(job_id, None)

    def _remove(self, folder: Path | None) -> None:
        if folder is not None and _inside(folder, self.folder):
            shutil.rmtree(folder, ignore_errors=True)

    def _heartbeat(self) -> None:
        """Refresh the heartbeat of the jobs this process holds; sweep expired jobs now and then."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self.lock:
                held = list(self.live)
            try:
                if held:
                    self._execute(
                        """UPDATE gis_ioc.jobs SET updated = timezone('utc', now())
                            WHERE identifier = ANY(%(ids)s) AND status = ANY(%(live)s)""",
                        {"ids": held, "live": list(LIVE)},
                    )
                self.maybe_sweep()
            except Exception as exc:  # PostGIS away for a while: try again at the next beat
                log.warning("job heartbeat: %s", exc)


class _Table(Mapping[str, Job]):
    """The table's jobs of ours, by id (reads the table on each access)."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager

    def __getitem__(self, job_id: str) -> Job:
        job = self.manager.read(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _ids(self) -> list[str]:
        with translate_errors(), self.manager.pool.connection(timeout=10) as conn:
            rows = conn.execute(
                "SELECT identifier FROM gis_ioc.jobs WHERE type <> 'process' ORDER BY created"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())


def dumps(value: Any) -> str:
    """JSON of a map's or report's body, as the synchronous answer gives it."""
    return json.dumps(value, ensure_ascii=False, default=str)


def write_body(folder: Path, name: str, body: Any) -> Path:
    """A map's or report's body into the job's folder: bytes as they are, text as UTF-8, anything else
    (a JSON answer) as :func:`dumps` writes it."""
    path = folder / name
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body if isinstance(body, str) else dumps(body), encoding="utf-8")
    return path
