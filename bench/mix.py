"""Benchmark: 50 concurrent clients over a mix of requests, for one worker and for N workers, side by side.

Issue 12's target: "50 concurrent clients for 5 minutes over a mix (items, tiles, scenarios, identify):
0 errors, p99 stated", and "2 workers on this 2-core machine ≥ 1.6× the throughput of 1 worker on
items limit=100".

One throwaway cluster (boundaries + demo data, 200,000 parcels by default) and a leader's API key; then,
for each worker count in ``--workers-list``, ``gis-ioc serve --workers N`` is started and

1. every request of the mix is asked once (a check that each answers 2xx, and a warm-up);
2. ``items?limit=100&bbox=<1 km>`` on land_parcels alone, with the key, ``wrk -t2 -c8`` (as
   bench/ogc_features.py measures it), twice: on one box (the same URL each time: after the first it is
   answered from the worker's cache of GeoJSON answers) and on a new box around a random parcel each time
   (the database works every time); the worker ratio is given for both;
3. the mix: ``--clients`` closed-loop clients (each sends its next request when the last is answered)
   for ``--duration`` seconds. Each request is drawn at random, by weight, from a pool of a few hundred
   made beforehand around points where the demo has parcels:

   items public     roads, schools, health facilities, trees in a 2 km box, anonymous
   items internal   land_parcels or buildings in a 1 km box, limit=100, leader's API key
   feature          one parcel (key) or one school (anonymous)
   tile             z12–z16: land_parcels (z13+) and buildings (z14+) with the key, roads anonymous
   identify         /api/identify at a parcel, radius 500 m, half with the key, half anonymous
   scenario         POST /api/scenarios/{id}/run, a 1–3 km radius or one commune, with the key

The load is made by wrk (its C event loop leaves the machine's cores to the server), one thread per client
(``-t50 -c50``) so that each thread has one connection and its Lua ``request()`` and ``response()`` alternate:
the Lua script times every request with the monotonic clock and files it under its kind. An error is any
answer that is not 2xx (a 204 empty tile is fine) and any socket error (connect, read, write, timeout
after 30 s). The percentiles come from these timings, not from wrk's own histogram: under CPU contention
(client and server on one machine) its latencies add up to more than clients × duration, which a closed
loop cannot do; the report prints that sum for the script's timings as a check ("clients waiting …").

    .venv/bin/python bench/mix.py [--duration 300] [--clients 50] [--workers-list 1,2] [--parcels 200000]
                                  [--items-duration 10] [--workers N]

``--workers-list`` defaults to 1 and the machine's cores. The server's log lines of failure (tracebacks,
ERROR) are printed after the table.

Needs wrk (Debian: apt-get install wrk; its LuaJIT gives the script a clock). Figures depend on the
machine, and client and server share it: compare the columns of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from _support import free_port, remove_bench_database, start_bench_database

from gis_ioc.auth import accounts, audit
from gis_ioc.database.connection import connect
from gis_ioc.database.migrations import upgrade
from gis_ioc.demo import DemoOptions, generate_demo
from gis_ioc.errors import MigrationError
from gis_ioc.settings import Settings

BBOX = (106.045, 20.645, 106.055, 20.655)  # about 1 km around Phố Hiến, as bench/ogc_features.py
PERIOD = "2026-Q3"
SCENARIOS = ["health", "public_order", "social_welfare", "environment", "transport", "socio_economic"]
# kind: (share of requests, how many distinct requests in its pool)
KINDS: dict[str, tuple[int, int]] = {
    "items public": (15, 60),
    "items internal": (20, 60),
    "feature": (10, 60),
    "tile": (35, 200),
    "identify": (12, 60),
    "scenario": (8, 40),
}

LUA = r"""
-- bench/mix.py's wrk script. One connection per thread, so request() and response() alternate: each answer
-- is timed (monotonic clock through LuaJIT's ffi) and written, with its kind and status, to the thread's log
-- (line-buffered: wrk has no end-of-thread hook, and its thread:get cannot carry nested tables).
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } mix_timespec;
int clock_gettime(int clk_id, mix_timespec *tp);
]]
local ts = ffi.new("mix_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local data = dofile(os.getenv("MIX_REQUESTS"))
local made = 0

function setup(thread)
  made = made + 1
  thread:set("id", made)
end

local pool, log = {}, nil
local pending, started = nil, 0

function init(args)
  math.randomseed(id * 7919 + os.time())
  log = assert(io.open(os.getenv("MIX_LOGS") .. "/thread-" .. id .. ".log", "w"))
  log:setvbuf("line")
  for k, requests in ipairs(data.requests) do
    pool[k] = {}
    for _, r in ipairs(requests) do
      pool[k][#pool[k] + 1] = wrk.format(r.method, r.path, r.headers, r.body)
    end
  end
end

function request()
  local u, k = math.random(), 1
  while data.cumulative[k] < u do k = k + 1 end
  local requests = pool[k]
  pending = k
  started = now_us()
  return requests[math.random(#requests)]
end

function response(status, headers, body)
  if pending == nil then return end
  log:write(string.format("%d %d %d\n", pending, status, now_us() - started))
  pending = nil
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("MIX_TOTAL %d %.3f %.2f %.2f %.2f %.2f %d %d %d %d\n", summary.requests,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, e.connect, e.read, e.write, e.timeout))
end
"""


@dataclass
class Request:
    kind: str
    method: str
    path: str
    key: bool  # sent with the leader's API key
    body: dict[str, Any] | None = None

    def headers(self, api_key: str) -> dict[str, str]:
        headers = {"X-API-Key": api_key} if self.key else {}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        return headers


@dataclass
class KindFigures:
    n: int = 0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if not 200 <= code < 300)


@dataclass
class MixFigures:
    requests: int  # wrk's count (those cut off at the end of the run are not in the logs)
    seconds: float
    all: KindFigures  # every answer, from the logs
    all_latencies: list[float]  # ms
    socket: dict[str, int]
    clients: int
    kinds: dict[str, KindFigures]

    @property
    def occupancy(self) -> float:
        """Sum of the answers' latencies over clients × seconds: at most 1 in a closed loop (each client has one
        request out at a time), near 1 when the clients wait for the server all the time. A check of the
        clock: wrk's own histogram fails it under CPU contention (its latencies add up to more than the run)."""
        return sum(self.all_latencies) / 1000 / (self.clients * self.seconds)

    @property
    def errors(self) -> int:
        return sum(self.socket.values()) + sum(k.errors for k in self.kinds.values())


def tile_index(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    return z, x, y


def box(lon: float, lat: float, km: float) -> str:
    dlat = km / 2 / 111.0
    dlon = km / 2 / (111.0 * math.cos(math.radians(lat)))
    return f"{lon - dlon:.5f},{lat - dlat:.5f},{lon + dlon:.5f},{lat + dlat:.5f}"


def make_requests(settings: Settings, seed: int) -> tuple[list[Request], list[tuple[float, float]]]:
    """The pools of the mix, around points where the demo has parcels (the same for every worker count), and
    those points (lon, lat)."""
    rnd = random.Random(seed)
    with connect(settings, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.42)")
        points = conn.execute(
            "SELECT fid, ST_X(p), ST_Y(p) FROM (SELECT fid, ST_PointOnSurface(geom) AS p FROM layers.land_parcels "
            "ORDER BY random() LIMIT 400) s"
        ).fetchall()
        schools = [r[0] for r in conn.execute("SELECT fid FROM layers.schools ORDER BY random() LIMIT 100")]
        communes = [r[0] for r in conn.execute("SELECT code FROM layers.communes WHERE valid_to IS NULL")]
    ogc = settings.ogc_path
    out: list[Request] = []

    def point() -> tuple[int, float, float]:
        fid, lon, lat = rnd.choice(points)
        return int(fid), float(lon), float(lat)

    for _ in range(KINDS["items public"][1]):
        _, lon, lat = point()
        layer = rnd.choice(["roads", "schools", "health_facilities", "trees"])
        out.append(
            Request("items public", "GET", f"{ogc}/collections/{layer}/items?limit=100&bbox={box(lon, lat, 2)}", False)
        )
    for _ in range(KINDS["items internal"][1]):
        _, lon, lat = point()
        layer = rnd.choice(["land_parcels", "land_parcels", "buildings"])
        out.append(
            Request("items internal", "GET", f"{ogc}/collections/{layer}/items?limit=100&bbox={box(lon, lat, 1)}", True)
        )
    for i in range(KINDS["feature"][1]):
        if i % 2:
            out.append(Request("feature", "GET", f"{ogc}/collections/schools/items/{rnd.choice(schools)}", False))
        else:
            out.append(Request("feature", "GET", f"{ogc}/collections/land_parcels/items/{point()[0]}", True))
    for _ in range(KINDS["tile"][1]):
        _, lon, lat = point()
        z = rnd.randint(12, 16)
        choices = ["roads"] + (["land_parcels"] if z >= 13 else []) + (["buildings"] if z >= 14 else [])
        layer = rnd.choice(choices)
        z, x, y = tile_index(lon, lat, z)
        out.append(
            Request("tile", "GET", f"{ogc}/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}", layer != "roads")
        )
    for i in range(KINDS["identify"][1]):
        _, lon, lat = point()
        out.append(Request("identify", "GET", f"/api/identify?lon={lon:.6f}&lat={lat:.6f}&radius=500", bool(i % 2)))
    for i in range(KINDS["scenario"][1]):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        if i % 3 == 2:
            body: dict[str, Any] = {"period": PERIOD, "communes": [rnd.choice(communes)]}
        else:
            _, lon, lat = point()
            body = {
                "period": PERIOD,
                "radius": {"at": [round(lon, 6), round(lat, 6)], "metres": rnd.randint(1, 3) * 1000},
            }
        out.append(Request("scenario", "POST", f"/api/scenarios/{scenario}/run", True, body))
    return out, [(float(lon), float(lat)) for _, lon, lat in points]


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def write_lua_requests(path: Path, requests: list[Request], api_key: str) -> None:
    kinds = list(KINDS)
    total = sum(share for share, _ in KINDS.values())
    cumulative, running = [], 0
    for kind in kinds:
        running += KINDS[kind][0]
        cumulative.append(running / total)
    cumulative[-1] = 1.0
    groups = []
    for kind in kinds:
        items = []
        for r in (r for r in requests if r.kind == kind):
            headers = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in r.headers(api_key).items())
            body = lua_string(json.dumps(r.body, ensure_ascii=False)) if r.body is not None else "nil"
            items.append(
                f"{{method = {lua_string(r.method)}, path = {lua_string(r.path)}, "
                f"headers = {{{headers}}}, body = {body}}}"
            )
        groups.append("{\n" + ",\n".join(items) + "\n}")
    path.write_text(
        "return {\n"
        f"kinds = {{{', '.join(lua_string(k) for k in kinds)}}},\n"
        f"cumulative = {{{', '.join(repr(c) for c in cumulative)}}},\n"
        f"requests = {{\n{',\n'.join(groups)}\n}}\n"
        "}\n"
    )


def check_requests(base: str, requests: list[Request], api_key: str) -> dict[str, float]:
    """Ask every request once; exit naming those that do not answer 2xx. Answers mean ms per kind."""
    failures: list[str] = []
    spent: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for r in requests:
            started = time.perf_counter()
            answer = client.request(r.method, r.path, headers=r.headers(api_key), json=r.body)
            spent.setdefault(r.kind, []).append((time.perf_counter() - started) * 1000)
            if not 200 <= answer.status_code < 300:
                failures.append(
                    f"  {r.method} {r.path} {r.body or ''}: HTTP {answer.status_code} {answer.text[:200]!r}"
                )
    if failures:
        print(f"{len(failures)} of {len(requests)} requests of the mix do not answer 2xx:", *failures[:20], sep="\n")
        raise SystemExit(1)
    return {kind: sum(ms) / len(ms) for kind, ms in spent.items()}


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline, last = time.monotonic() + seconds, "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before answering {url}")
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200:
                return
            last = f"HTTP {answer.status_code} {answer.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready in {seconds} s: {last}")


ITEMS_LUA = r"""
-- bench/mix.py: items?limit=100 on land_parcels with the key. MIX_ITEMS_BOX "same": one 1 km box (as
-- bench/ogc_features.py asks it: after the first, answered from the worker's cache); "new": a new 1 km
-- box around a random parcel each time (the database works every time).
local same = os.getenv("MIX_ITEMS_BOX") == "same"
local path, key = os.getenv("MIX_ITEMS_PATH"), os.getenv("MIX_KEY")
local points = dofile(os.getenv("MIX_POINTS"))
local made = 0
function setup(thread)
  made = made + 1
  thread:set("id", made)
end
function init(args)
  math.randomseed(id * 104729 + os.time())
end
function request()
  local bbox = os.getenv("MIX_BBOX")
  if not same then
    local p = points[math.random(#points)]
    local lon, lat = p[1] + (math.random() - 0.5) * 0.01, p[2] + (math.random() - 0.5) * 0.01
    bbox = string.format("%.5f,%.5f,%.5f,%.5f", lon - 0.0048, lat - 0.0045, lon + 0.0048, lat + 0.0045)
  end
  return wrk.format("GET", path .. "?limit=100&bbox=" .. bbox, {["X-API-Key"] = key})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("ITEMS %d %.3f %d\n", summary.requests, summary.duration / 1e6,
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_items(base: str, box_kind: str, seconds: int, api_key: str, work: Path) -> tuple[float, int]:
    """items limit=100 alone, wrk -t2 -c8 as bench/ogc_features.py asks it: req/s and errors."""
    script = work / "items.lua"
    script.write_text(ITEMS_LUA)
    env = {
        **os.environ,
        "MIX_ITEMS_BOX": box_kind,
        "MIX_ITEMS_PATH": "/ogc/collections/land_parcels/items",
        "MIX_KEY": api_key,
        "MIX_POINTS": str(work / "points.lua"),
        "MIX_BBOX": ",".join(map(str, BBOX)),
    }
    argv = ["wrk", "-t2", "-c8", "--timeout", "30s", "-s", str(script)]
    subprocess.run([*argv, "-d2s", base + "/"], capture_output=True, check=True, env=env)  # warm-up
    out = subprocess.run(
        [*argv, f"-d{seconds}s", base + "/"], capture_output=True, text=True, check=True, env=env
    ).stdout
    _, n, duration, errors = next(li for li in out.splitlines() if li.startswith("ITEMS")).split()
    return int(n) / float(duration), int(errors)


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else 0.0


def figures_of(latencies: list[float], statuses: dict[int, int]) -> KindFigures:
    ordered = sorted(latencies)
    return KindFigures(
        n=len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1] if ordered else 0.0,
        statuses=statuses,
    )


def wrk_mix(base: str, clients: int, seconds: int, work: Path, requests_file: Path) -> MixFigures:
    script, logs = work / "mix.lua", work / f"logs-{time.monotonic_ns()}"
    script.write_text(LUA)
    logs.mkdir()
    out = subprocess.run(
        ["wrk", f"-t{clients}", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), base + "/"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MIX_REQUESTS": str(requests_file), "MIX_LOGS": str(logs)},
    ).stdout
    total = next((li.split()[1:] for li in out.splitlines() if li.startswith("MIX_TOTAL")), None)
    if total is None:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    kinds = list(KINDS)
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    statuses: dict[str, dict[int, int]] = {kind: {} for kind in kinds}
    for log in logs.glob("thread-*.log"):
        for line in log.read_text().splitlines():
            k, status, micros = line.split()
            kind = kinds[int(k) - 1]
            latencies[kind].append(int(micros) / 1000)
            statuses[kind][int(status)] = statuses[kind].get(int(status), 0) + 1
    every = [ms for kind in kinds for ms in latencies[kind]]
    all_statuses: dict[int, int] = {}
    for kind in kinds:
        for code, n in statuses[kind].items():
            all_statuses[code] = all_statuses.get(code, 0) + n
    return MixFigures(
        requests=int(total[0]),
        seconds=float(total[1]),
        all=figures_of(every, all_statuses),
        socket=dict(zip(("connect", "read", "write", "timeout"), map(int, total[6:10]), strict=True)),
        clients=clients,
        all_latencies=every,
        kinds={kind: figures_of(latencies[kind], statuses[kind]) for kind in kinds},
    )


def server_problems(log: Path) -> list[str]:
    """Lines of the server's log that tell of a failure (the server logs at warning level here)."""
    if not log.exists():
        return []
    words = ("Traceback", "ERROR", "Exception", "CRITICAL")
    return [line for line in log.read_text(errors="replace").splitlines() if any(w in line for w in words)]


def main() -> None:
    cores = max(1, len(os.sched_getaffinity(0)))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=300, help="seconds of the mix per worker count")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (one wrk thread each)")
    parser.add_argument(
        "--workers-list",
        default=",".join(dict.fromkeys(["1", str(cores)])),
        help=f"worker counts to compare, each a `gis-ioc serve --workers N` (default 1,{cores}: one, the cores)",
    )
    parser.add_argument("--workers", type=int, help="only this worker count (same as --workers-list N)")
    parser.add_argument("--items-duration", type=int, default=10, help="seconds of wrk -t2 -c8 on items limit=100")
    parser.add_argument("--parcels", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    workers_list = [args.workers] if args.workers else [int(w) for w in args.workers_list.split(",") if w.strip()]
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")

    settings, cluster, catalog = start_bench_database()
    home = settings.home
    audit.configure(home)  # the bench's account is created in the audit trail, as the console does
    work = Path(tempfile.mkdtemp(prefix="gis-ioc-mix-"))
    mixes: dict[int, MixFigures] = {}
    items: dict[int, dict[str, tuple[float, int]]] = {}
    checks: dict[int, dict[str, float]] = {}
    problems: dict[int, list[str]] = {}
    proc: subprocess.Popen[bytes] | None = None
    try:
        print(f"loading demo data ({args.parcels:,} parcels) …", flush=True)
        with connect(settings, autocommit=True) as conn:
            generate_demo(conn, catalog, DemoOptions(as_of=date(2026, 11, 27), parcels=args.parcels))
            ref = accounts.RequestRef("1/BENCH", date(2026, 12, 1), "benchmark")
            accounts.create_account(
                conn,
                username="bench.leader",
                full_name="Benchmark",
                agency="gis_ioc",
                roles=["leader"],
                ref=ref,
                actor="cli:bench",
                with_password=False,
            )
            api_key = accounts.issue_key(conn, "bench.leader", ref, "cli:bench")
        requests, points = make_requests(settings, args.seed)
        (work / "points.lua").write_text(
            "return {" + ", ".join(f"{{{lon:.6f}, {lat:.6f}}}" for lon, lat in points) + "}\n"
        )
        requests_file = work / "requests.lua"
        write_lua_requests(requests_file, requests, api_key)
        for count in workers_list:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            env = {
                **os.environ,
                "GIS_IOC_HOME": str(home),
                "GIS_IOC_DB_PORT": str(settings.db_port),
                "GIS_IOC_PORT": str(port),
                "GIS_IOC_LOG_LEVEL": "warning",
            }
            try:  # as `gis-ioc db upgrade` before a start (for migrations added to the tree meanwhile)
                with connect(settings, autocommit=True) as conn:
                    upgrade(conn, catalog)
            except MigrationError as exc:
                print(f"  (migrations not re-applied: {exc})", flush=True)
            log = home / f"serve-{count}.log"
            print(f"gis-ioc serve --workers {count}: starting …", flush=True)
            with log.open("w") as out:
                proc = subprocess.Popen(
                    [str(Path(sys.executable).parent / "gis-ioc"), "serve", "--workers", str(count)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            wait_ready(f"{base}/readyz", proc)
            checks[count] = check_requests(base, requests, api_key)
            print(
                "  each request once (mean ms): " + ", ".join(f"{kind} {ms:.0f}" for kind, ms in checks[count].items()),
                flush=True,
            )
            items[count] = {
                box_kind: wrk_items(base, box_kind, args.items_duration, api_key, work) for box_kind in ("same", "new")
            }
            print(
                f"  items limit=100 alone (wrk -t2 -c8): {items[count]['same'][0]:.1f} req/s on one box, "
                f"{items[count]['new'][0]:.1f} req/s on a new box each time",
                flush=True,
            )
            print(f"  mix: {args.clients} clients for {args.duration} s …", flush=True)
            mixes[count] = wrk_mix(base, args.clients, args.duration, work, requests_file)
            m = mixes[count]
            print(f"  {m.all.n / m.seconds:.1f} req/s, p99 {m.all.p99:.1f} ms, {m.errors} errors", flush=True)
            proc.terminate()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
            problems[count] = server_problems(log)
    except BaseException:
        logs = sorted(home.glob("serve-*.log"), key=lambda p: p.stat().st_mtime)
        if logs:  # the home goes with the cluster: show why the server stopped, if it did
            tail = logs[-1].read_text(errors="replace").splitlines()[-40:]
            print(f"the server's log ({logs[-1].name}), its end:", *tail, sep="\n  ", file=sys.stderr)
        if proc is not None:
            print(
                f"server process: {'running' if proc.poll() is None else f'exited {proc.returncode}'}", file=sys.stderr
            )
        raise
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
        remove_bench_database(cluster)
    report(args, workers_list, mixes, items, problems)


def report(
    args: argparse.Namespace,
    workers_list: list[int],
    mixes: dict[int, MixFigures],
    items: dict[int, dict[str, tuple[float, int]]],
    problems: dict[int, list[str]],
) -> None:
    total = sum(share for share, _ in KINDS.values())
    print(
        f"\nmix: {args.clients} concurrent clients, {args.duration} s per worker count, {args.parcels:,} parcels; "
        "req/s, latency in ms (p50 / p90 / p99 / max), errors (non-2xx and socket errors)"
    )
    print(f"{'':<22}" + "".join(f"{f'{n} worker' + ('s' if n > 1 else ''):^48}" for n in workers_list))
    columns = f"{'req/s':>9}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'errors':>8}"
    print(f"{'request':<16}{'share':>6}" + columns * len(workers_list))
    for kind, (share, _) in KINDS.items():
        line = f"{kind:<16}{share * 100 / total:5.0f}%"
        for n in workers_list:
            m = mixes[n]
            k = m.kinds[kind]
            line += f"{k.n / m.seconds:9.1f} {k.p50:7.1f} {k.p90:7.1f} {k.p99:7.1f} {k.max:7.1f} {k.errors:7d}"
        print(line)
    line = f"{'all':<16}{'100%':>6}"
    for n in workers_list:
        m, a = mixes[n], mixes[n].all
        line += f"{a.n / m.seconds:9.1f} {a.p50:7.1f} {a.p90:7.1f} {a.p99:7.1f} {a.max:7.1f} {m.errors:7d}"
    print(line)
    for n in workers_list:
        m = mixes[n]
        answers = ", ".join(f"{code}: {count:,}" for code, count in sorted(m.all.statuses.items()))
        errors = [
            f"HTTP {code} × {count} ({kind})"
            for kind, k in m.kinds.items()
            for code, count in sorted(k.statuses.items())
            if not 200 <= code < 300
        ]
        errors += [f"socket {what} × {count}" for what, count in m.socket.items() if count]
        print(
            f"{n} worker{'s' if n > 1 else ''}: {m.all.n:,} answers in {m.seconds:.0f} s (HTTP {answers}; clients "
            f"waiting {m.occupancy:.0%} of the time); "
            f"errors: {', '.join(errors) if errors else 'none'}"
        )
        if problems.get(n):
            print(f"  server log: {len(problems[n])} lines of failure, the first:", *problems[n][:10], sep="\n    ")
    print(
        f"\nitems?limit=100 on land_parcels alone, leader's key, wrk -t2 -c8 -d{args.items_duration}s "
        "(req/s, errors); the issue's target: 2 workers ≥ 1.6× 1 worker on 2 cores"
    )
    for box_kind, title in (("same", "one 1 km box (cached after the first)"), ("new", "a new 1 km box each time")):
        line = f"  {title:<40}"
        for n in workers_list:
            rps, errors = items[n][box_kind]
            line += f"  {n} worker{'s' if n > 1 else ' '}: {rps:7.1f} ({errors})"
        if 1 in items:
            line += "".join(
                f"  {n}/1: {items[n][box_kind][0] / items[1][box_kind][0]:.2f}×" for n in workers_list if n > 1
            )
        print(line)


if __name__ == "__main__":
    main()
