"""Background exports with progress: a job runs in a worker thread, reports rows written out of rows
in all, and leaves its file in ``GIS_IOC_HOME/exports/<secret>/`` until it expires.

A job belongs to the account that started it: :meth:`JobManager.get` answers only its owner (and
administrators, see :meth:`gis_ioc.query.viewer.Viewer.owns`); anyone else is told there is no such job.
The folder of a job's file is a random name of its own (not the job id), made private, and the file is
served only when it is still a regular file inside that folder.

Jobs live in this process's memory (issue 12 moves them to PostgreSQL, as every other job).
"""

from __future__ import annotations

import secrets
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
from gis_ioc.query.viewer import Viewer


class JobNotReady(GisIocError):
    status = 409
    title = "Export not ready"


@dataclass
class Job:
    id: str
    kind: str
    request: dict[str, Any]
    folder: Path
    owner: str | None = None  # the account that started the job
    status: str = "queued"  # queued | running | done | failed
    done: int = 0
    total: int | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    result: ExportResult | None = None

    def file(self) -> Path:
        """The job's file, once done: a regular file inside the job's own folder, or 409/404."""
        if self.status != "done" or self.result is None:
            raise JobNotReady(f"export job {self.id} is {self.status}" + (f": {self.error}" if self.error else ""))
        path = self.result.path
        folder = self.folder.resolve()
        if path.is_symlink() or not path.is_file() or folder not in path.resolve().parents:
            raise NotFound(f"export job {self.id} has no file any more")
        return path

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

    def submit(
        self,
        kind: str,
        request: dict[str, Any],
        work: Callable[[Path, Progress], ExportResult],
        *,
        owner: str | None,
    ) -> Job:
        self.expire()
        job_id = uuid.uuid4().hex
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)  # the files of every account's exports: the server's alone
        job = Job(job_id, kind, request, self.folder / secrets.token_urlsafe(24), owner=owner)
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

    def get(self, job_id: str, viewer: Viewer) -> Job:
        """The job, if ``viewer`` owns it (or administers); otherwise 404, as for a job that never was."""
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None or not viewer.owns(job.owner):
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
