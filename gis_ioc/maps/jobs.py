"""Background exports with progress: a job runs in a worker thread, reports rows written out of rows
in all, and leaves its file in ``GIS_IOC_HOME/exports/<job>/`` until it expires."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gis_ioc.errors import GisIocError, NotFound
from gis_ioc.maps.exports import ExportResult, Progress


class JobNotReady(GisIocError):
    status = 409
    title = "Export not ready"


@dataclass
class Job:
    id: str
    kind: str
    request: dict[str, Any]
    folder: Path
    status: str = "queued"  # queued | running | done | failed
    done: int = 0
    total: int | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    result: ExportResult | None = None

    def describe(self, base: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "request": self.request,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "percent": round(100.0 * self.done / self.total, 1)
            if self.total
            else (100.0 if self.status == "done" else 0.0),
            "seconds": round((self.finished or time.time()) - self.started, 2),
            "links": [{"rel": "self", "href": f"{base}/{self.id}"}],
        }
        if self.error:
            body["error"] = self.error
        if self.result is not None:
            body["result"] = self.result.describe()
            body["links"].append({"rel": "enclosure", "href": f"{base}/{self.id}/file", "type": self.result.media_type})
        return body


class JobManager:
    """At most ``workers`` exports at once; finished jobs and their files are kept for ``keep_seconds``."""

    def __init__(self, folder: Path, workers: int = 2, keep_seconds: float = 3600.0) -> None:
        self.folder = folder
        self.keep_seconds = keep_seconds
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gis-ioc-export")

    def submit(self, kind: str, request: dict[str, Any], work: Callable[[Path, Progress], ExportResult]) -> Job:
        self.expire()
        job_id = uuid.uuid4().hex
        job = Job(job_id, kind, request, self.folder / job_id)
        with self.lock:
            self.jobs[job_id] = job

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        def run() -> None:
            job.status = "running"
            try:
                job.result = work(job.folder, progress)
                job.status = "done"
            except GisIocError as exc:
                job.status, job.error = "failed", str(exc)
            except Exception as exc:  # a job must say why it failed rather than vanish
                job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
            job.finished = time.time()

        self.pool.submit(run)
        return job

    def get(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no export job {job_id!r} (jobs are kept for {self.keep_seconds:g} s)")
        return job

    def expire(self) -> None:
        now = time.time()
        with self.lock:
            old = [j for j in self.jobs.values() if j.finished and now - j.finished > self.keep_seconds]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
