"""Benchmark: the same parcels through gis_ioc, stock pygeoapi, tipg, and raw SQL, side by side.

One throwaway cluster (boundaries + demo data, 200,000 parcels) serves five contenders in turn,
each in its own process on 127.0.0.1, under the same bounded load (wrk, 8 connections, 2 threads):

  gis_ioc        `gis-ioc serve --workers 1` (GeoJSON built in PostGIS, keyset paging, no count on big
                 pages), asked with a leader's API key (land_parcels is internal), as its least-privileged
                 database role under row-level security
  gis_ioc ×N     the same with N worker processes (--workers-list, default 1 and the machine's cores)
  gis_ioc, no cache  one worker with its tile and GeoJSON caches off: every answer made by PostGIS
  gis_ioc as owner  the same server connected as the database's superuser (row security bypassed):
                 the difference is the cost of row security
  pygeoapi       pygeoapi's stock PostgreSQL provider (and its MVT-postgresql provider for tiles)
  tipg           developmentseed's tipg, installed by this script in its own virtual environment
  raw SQL        pgbench running gis_ioc's own SQL for the request: the floor

Requests: items?limit=100&bbox=<1 km box>, items?limit=1000, a single feature, a cql2 filter, a z14 tile:
each the same request again and again (what a cache in the server answers after the first), and, for the
single feature and the tile, a random one each time (``random``: what the database must answer).

    .venv/bin/python bench/ogc_features.py [--duration 10] [--connections 8] [--skip tipg] [--workers-list 1,2]

Needs wrk and pgbench (Debian: apt-get install wrk postgresql-client); tipg comes from PyPI.
Figures depend on the machine; compare the columns of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import psycopg
import yaml
from _support import free_port, remove_bench_database, start_bench_database

from gis_ioc.auth import accounts, audit
from gis_ioc.database.cluster import SUPERUSER
from gis_ioc.database.connection import connect
from gis_ioc.demo import DemoOptions, generate_demo
from gis_ioc.publish.features import ItemsQuery
from gis_ioc.publish.params import parse_items
from gis_ioc.publish.tiles import tile_sql
from gis_ioc.settings import PROJECT_ROOT, Settings

HERE = Path(__file__).resolve().parent
BBOX = (106.045, 20.645, 106.055, 20.655)  # about 1 km around Phố Hiến
CQL = "land_use = 'LUC' AND area_m2 > 3000"
REQUESTS = [
    "items limit=100 bbox",
    "items limit=1000",
    "single feature",
    "single feature, random",
    "cql2 filter",
    "tile z14",
    "tile z14, all fields",
    "tile z14, random",
]
#: Ranges of the random requests' placeholders ({fid}, {x}, {y}); set once the data is loaded.
RANGES: dict[str, tuple[int, int]] = {}


def tile_index(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    return z, x, y


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no answer from {url} in {seconds} s")


def concrete(url: str) -> str:
    """A URL template ({fid}, {x}, {y}) with the middle of each range, for the check before the load."""
    for name, (low, high) in RANGES.items():
        url = url.replace("{" + name + "}", str((low + high) // 2))
    return url


def wrk(url: str, duration: int, connections: int, headers: dict[str, str]) -> tuple[float, float, float, int]:
    random_args: list[str] = []
    if "{" in url:  # a template: wrk_report.lua asks a random instance each time
        split = httpx.URL(url.replace("{", "%7B").replace("}", "%7D"))
        path = url[url.index("/", len(f"{split.scheme}://")) :]
        url = f"{split.scheme}://{split.host}:{split.port}/"
        random_args = ["--", path]
        for name, (low, high) in RANGES.items():
            random_args += [name, str(low), str(high)]
    out = subprocess.run(
        [
            "wrk",
            *[part for name, value in headers.items() for part in ("-H", f"{name}: {value}")],
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "30s",
            "-s",
            str(HERE / "wrk_report.lua"),
            url,
            *random_args,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(li for li in out.splitlines() if li.startswith("RESULT"))
    _, rps, p50, p95, errors, _n = line.split()
    return float(rps), float(p50), float(p95), int(errors)


def pgbench(
    conninfo_args: list[str], sql_text: str, duration: int, connections: int
) -> tuple[float, float, float, int]:
    work = Path(tempfile.mkdtemp(prefix="gis-ioc-pgbench-"))
    script = work / "q.sql"
    script.write_text(sql_text + ";\n")
    subprocess.run(
        [
            "pgbench",
            "-n",
            "-c",
            str(connections),
            "-j",
            "2",
            "-T",
            str(duration),
            "-f",
            str(script),
            "-l",
            "--log-prefix",
            str(work / "log"),
            *conninfo_args,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
    )
    latencies = []
    for log in work.glob("log*"):
        for line in log.read_text().splitlines():
            latencies.append(int(line.split()[2]) / 1000)
    shutil.rmtree(work, ignore_errors=True)
    latencies.sort()
    return (len(latencies) / duration, statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))], 0)


def measure(
    request: str, url: str, args: argparse.Namespace, headers: dict[str, str]
) -> tuple[float, float, float, int] | None:
    """One request type against one running contender; None when it does not answer properly."""
    try:
        started = time.perf_counter()
        check = httpx.get(concrete(url), timeout=30, headers=headers)
        single = time.perf_counter() - started
    except httpx.HTTPError as exc:
        print(f"  {request:<22} no answer within 30 s ({type(exc).__name__}): n/a", flush=True)
        return None
    if check.status_code not in (200, 204):
        print(f"  {request:<22} HTTP {check.status_code}: n/a ({check.text[:100]!r})", flush=True)
        return None
    if single > 5:
        print(f"  {request:<22} one request took {single:.1f} s: not loaded further, n/a", flush=True)
        return None
    wrk(url, 2, args.connections, headers)  # warm-up
    result = wrk(url, args.duration, args.connections, headers)
    rps, p50, p95, errors = result
    if rps == 0:
        print(f"  {request:<22} no request completed under load: n/a", flush=True)
        return None
    print(
        f"  {request:<22} {rps:8.1f} req/s  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"
        f"{f'  ({errors} errors)' if errors else ''}",
        flush=True,
    )
    return result


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def tipg_python(cache: Path) -> Path:
    venv = cache / "tipg-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print("installing tipg into its own environment …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # the same HTTP server stack as gis_ioc (uvicorn with uvloop and httptools), for a fair comparison
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "tipg>=1.0", "uvicorn[standard]"], check=True, capture_output=True
    )
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per request and contender")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--parcels", type=int, default=200_000)
    parser.add_argument("--skip", action="append", default=[], choices=["gis_ioc", "pygeoapi", "tipg", "raw SQL"])
    parser.add_argument(
        "--workers-list",
        default=f"1,{len(os.sched_getaffinity(0))}",
        help="gis_ioc's worker counts to run side by side (default: 1 and the machine's cores)",
    )
    parser.add_argument("--owner", action="store_true", help="also gis_ioc as the database owner (row security off)")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.workers_list.split(",") if n.strip()})
    for tool in ("wrk", "pgbench"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y wrk postgresql-client")

    cache = PROJECT_ROOT / "var" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    settings, cluster, catalog = start_bench_database()
    home = settings.home
    audit.configure(home)  # the bench's account is created in the audit trail, as the console does
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, tuple[float, float, float, int] | None]] = {}
    try:
        print("loading demo data …", flush=True)
        with connect(settings, autocommit=True) as conn:
            generate_demo(conn, catalog, DemoOptions(as_of=date(2026, 11, 27), parcels=args.parcels))
            fid = conn.execute(
                "SELECT fid FROM layers.land_parcels ORDER BY fid OFFSET %s LIMIT 1", (args.parcels // 2,)
            ).fetchone()[0]  # type: ignore[index]
            low, high = conn.execute("SELECT min(fid), max(fid) FROM layers.land_parcels").fetchone()  # type: ignore[misc]
            RANGES["fid"] = (int(low), int(high))
            extent = conn.execute(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom) AS e FROM layers.land_parcels) s"
            ).fetchone()
            assert extent is not None
            _, x0, y0 = tile_index(extent[0], extent[3], 14)  # top left
            _, x1, y1 = tile_index(extent[2], extent[1], 14)  # bottom right
            RANGES["x"], RANGES["y"] = (x0, x1), (y0, y1)
            raw_sql = raw_queries(conn, catalog.layer("land_parcels"), fid)
            # land_parcels is internal: gis_ioc is asked by a leader's API key, as a client system would
            accounts.create_account(
                conn,
                username="bench.leader",
                full_name="Benchmark",
                agency="gis_ioc",
                roles=["leader"],
                ref=accounts.RequestRef("1/BENCH", date(2026, 12, 1), "benchmark"),
                actor="cli:bench",
                with_password=False,
            )
            key = accounts.issue_key(
                conn, "bench.leader", accounts.RequestRef("1/BENCH", date(2026, 12, 1), "benchmark"), "cli:bench"
            )
        password = cluster.password_file.read_text().strip()
        tcp_url = f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{settings.db_port}/{settings.db_name}"
        z, x, y = tile_index(106.05, 20.65, 14)
        bbox = ",".join(map(str, BBOX))
        cql = httpx.QueryParams({"filter": CQL}).__str__()

        contenders: dict[str, Callable[[], tuple[subprocess.Popen[bytes], dict[str, str]]]] = {}

        def gis_ioc(
            as_owner: bool = False, workers: int = 1, cache: bool = True
        ) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
            port = free_port()
            env = {
                **os.environ,
                "GIS_IOC_HOME": str(home),
                "GIS_IOC_DB_PORT": str(settings.db_port),
                "GIS_IOC_PORT": str(port),
                "GIS_IOC_LOG_LEVEL": "warning",
            }
            if not cache:  # every answer made by the database: what a first request costs
                env |= {"GIS_IOC_TILE_CACHE_MB": "0", "GIS_IOC_FEATURE_CACHE_MB": "0"}
            if as_owner:  # the reference: the same server as the database's superuser, row security bypassed
                env["GIS_IOC_SERVER_DATABASE_URL"] = (
                    f"host={cluster.socket_dir} port={settings.db_port} dbname={settings.db_name} user={SUPERUSER}"
                )
            proc = start(
                [str(Path(sys.executable).parent / "gis-ioc"), "serve", "--workers", str(workers)],
                env,
                home / "gis_ioc.log",
            )
            base = f"http://127.0.0.1:{port}/ogc/collections/land_parcels"
            return proc, {
                "items limit=100 bbox": f"{base}/items?limit=100&bbox={bbox}",
                "items limit=1000": f"{base}/items?limit=1000",
                "single feature": f"{base}/items/{fid}",
                "single feature, random": base + "/items/{fid}",
                "cql2 filter": f"{base}/items?limit=100&{cql}",
                "tile z14": f"{base}/tiles/WebMercatorQuad/{z}/{y}/{x}",
                "tile z14, all fields": f"{base}/tiles/WebMercatorQuad/{z}/{y}/{x}?properties=*",
                "tile z14, random": base + "/tiles/WebMercatorQuad/14/{y}/{x}",
            }

        def stock() -> tuple[subprocess.Popen[bytes], dict[str, str]]:
            port = free_port()
            config = stock_config(settings, port, password, home)
            cfg_path, oas_path = home / "stock.yml", home / "stock-openapi.yml"
            cfg_path.write_text(yaml.safe_dump(config))
            env = {**os.environ, "PYGEOAPI_CONFIG": str(cfg_path), "PYGEOAPI_OPENAPI": str(oas_path)}
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "pygeoapi"),
                    "openapi",
                    "generate",
                    str(cfg_path),
                    "--output-file",
                    str(oas_path),
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            proc = start(
                [
                    str(Path(sys.executable).parent / "uvicorn"),
                    "pygeoapi.starlette_app:APP",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env,
                home / "pygeoapi.log",
            )
            base = f"http://127.0.0.1:{port}/collections/land_parcels"
            urls = {
                "items limit=100 bbox": f"{base}/items?f=json&limit=100&bbox={bbox}",
                "items limit=1000": f"{base}/items?f=json&limit=1000",
                "single feature": f"{base}/items/{fid}?f=json",
                "single feature, random": base + "/items/{fid}?f=json",
                "cql2 filter": f"{base}/items?f=json&limit=100&filter-lang=cql2-text&{cql}",
                "tile z14": f"http://127.0.0.1:{port}/collections/land_parcels_tiles/tiles/WebMercatorQuad/"
                f"{z}/{y}/{x}?f=mvt",
            }
            urls["tile z14, all fields"] = urls["tile z14"]  # pygeoapi's tiles carry every field
            urls["tile z14, random"] = (
                f"http://127.0.0.1:{port}/collections/land_parcels_tiles/tiles/WebMercatorQuad/" + "14/{y}/{x}?f=mvt"
            )
            return proc, urls

        def tipg() -> tuple[subprocess.Popen[bytes], dict[str, str]]:
            python = tipg_python(cache)
            port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": tcp_url,
                "TIPG_DB_SCHEMAS": '["layers"]',
                "TIPG_MAX_FEATURES_PER_QUERY": "10000",
            }
            proc = start(
                [str(python), "-m", "uvicorn", "tipg.main:app", "--port", str(port), "--log-level", "warning"],
                env,
                home / "tipg.log",
            )
            base = f"http://127.0.0.1:{port}/collections/layers.land_parcels"
            return proc, {
                "items limit=100 bbox": f"{base}/items?limit=100&bbox={bbox}",
                "items limit=1000": f"{base}/items?limit=1000",
                "single feature": f"{base}/items/{fid}",
                "single feature, random": base + "/items/{fid}",
                "cql2 filter": f"{base}/items?limit=100&filter-lang=cql2-text&{cql}",
                "tile z14": f"{base}/tiles/WebMercatorQuad/{z}/{x}/{y}",
                "tile z14, all fields": f"{base}/tiles/WebMercatorQuad/{z}/{x}/{y}",
                "tile z14, random": base + "/tiles/WebMercatorQuad/14/{x}/{y}",
            }

        contenders = {"gis_ioc": gis_ioc, "gis_ioc, no cache": functools.partial(gis_ioc, cache=False)}
        for n in counts:
            if n > 1:
                contenders[f"gis_ioc x{n}"] = functools.partial(gis_ioc, workers=n)
        if args.owner:
            contenders["gis_ioc as owner"] = functools.partial(gis_ioc, as_owner=True)
        contenders |= {"pygeoapi": stock, "tipg": tipg}
        for name, launch in contenders.items():
            if name in args.skip or (name.startswith("gis_ioc") and "gis_ioc" in args.skip):
                continue
            headers = {"X-API-Key": key} if name.startswith("gis_ioc") else {}
            print(f"{name}: starting …", flush=True)
            proc, urls = launch()
            procs.append(proc)
            wait_ready(urls["single feature"], proc)
            if name.startswith("gis_ioc"):  # every worker up (each answers /healthz once it has started)
                time.sleep(3)
            results[name] = {}
            for request, url in urls.items():
                results[name][request] = measure(request, url, args, headers)
            stop(proc)
        if "raw SQL" not in args.skip:
            print("raw SQL (pgbench) …", flush=True)
            pg_args = ["-h", str(cluster.socket_dir), "-p", str(settings.db_port), "-U", SUPERUSER, settings.db_name]
            results["raw SQL"] = {r: pgbench(pg_args, raw_sql[r], args.duration, args.connections) for r in REQUESTS}
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop(proc)
        remove_bench_database(cluster)
    report(results, args)


def raw_queries(conn: psycopg.Connection[object], layer: object, fid: int) -> dict[str, str]:
    """gis_ioc's own SQL for each request, with its values inlined, for pgbench."""
    from psycopg import ClientCursor, sql

    from gis_ioc.catalog import Layer
    from gis_ioc.publish.cql import Params
    from gis_ioc.publish.features import feature_sql, order_sql, where_sql
    from gis_ioc.query.viewer import Viewer

    assert isinstance(layer, Layer)
    cursor = ClientCursor(conn)
    viewer = Viewer.console("bench")  # reads every row, as the owner's plain SQL does

    def page_sql(params: dict[str, str]) -> str:
        query: ItemsQuery = parse_items(viewer, layer, params)
        p = Params()
        where = where_sql(query, p)

        statement = sql.SQL(
            "SELECT coalesce(json_agg(f), '[]'::json)::text FROM (SELECT {} AS f FROM layers.land_parcels t "
            "WHERE {} ORDER BY {} LIMIT {}) s"
        ).format(feature_sql(layer, query.crs, None, False), where, order_sql(query), sql.Literal(query.limit))
        return cursor.mogrify(statement, p.values)

    z, x, y = tile_index(106.05, 20.65, 14)

    def tile(properties: list[str] | None) -> str:
        p = Params()
        return cursor.mogrify(tile_sql(viewer, layer, z, x, y, p, properties), p.values)

    one = sql.SQL(
        "SELECT {}::text FROM layers.land_parcels t WHERE t.fid = %(fid)s AND t.approval = 'approved'"
    ).format(feature_sql(layer, parse_items(viewer, layer, {}).crs, None, False))
    low, high = RANGES["fid"]
    (x0, x1), (y0, y1) = RANGES["x"], RANGES["y"]
    # the tile's own x and y become pgbench's random variables
    tile_random = tile(["parcel_code", "land_use"]).replace(
        f"ST_TileEnvelope(14, {x}, {y})", "ST_TileEnvelope(14, :x, :y)"
    )
    return {
        "items limit=100 bbox": page_sql({"limit": "100", "bbox": ",".join(map(str, BBOX))}),
        "items limit=1000": page_sql({"limit": "1000"}),
        "single feature": cursor.mogrify(one, {"fid": fid}),
        "single feature, random": f"\\set fid random({low}, {high})\n"
        + cursor.mogrify(one, {"fid": 0}).replace("t.fid = 0", "t.fid = :fid"),
        "cql2 filter": page_sql({"limit": "100", "filter": CQL}),
        "tile z14": tile(["parcel_code", "land_use"]),
        "tile z14, all fields": tile(None),
        "tile z14, random": f"\\set x random({x0}, {x1})\n\\set y random({y0}, {y1})\n" + tile_random,
    }


def stock_config(settings: Settings, port: int, password: str, home: Path) -> dict[str, object]:
    db = {
        "host": "127.0.0.1",
        "port": settings.db_port,
        "dbname": settings.db_name,
        "user": SUPERUSER,
        "password": password,
        "search_path": ["layers", "public"],
    }
    return {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 1000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "stock",
                "description": "stock",
                "keywords": ["x"],
                "terms_of_service": "x",
                "url": "x",
            },
            "license": {"name": "x", "url": "http://example.invalid"},
            "provider": {"name": "x", "url": "http://example.invalid"},
            "contact": {"name": "x"},
        },
        "resources": {
            "land_parcels": {
                "type": "collection",
                "title": "parcels",
                "description": "parcels",
                "keywords": ["x"],
                "extents": {"spatial": {"bbox": [105.8, 20.2, 106.7, 21.1]}},
                "providers": [
                    {
                        "type": "feature",
                        "name": "PostgreSQL",
                        "data": db,
                        "id_field": "fid",
                        "table": "land_parcels",
                        "geom_field": "geom",
                    }
                ],
            },
            "land_parcels_tiles": {
                "type": "collection",
                "title": "parcels tiles",
                "description": "parcels",
                "keywords": ["x"],
                "extents": {"spatial": {"bbox": [105.8, 20.2, 106.7, 21.1]}},
                "providers": [
                    {
                        "type": "tile",
                        "name": "MVT-postgresql",
                        "data": db,
                        "id_field": "fid",
                        "table": "land_parcels",
                        "geom_field": "geom",
                        "options": {"zoom": {"min": 0, "max": 22}},
                        "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"},
                    }
                ],
            },
        },
    }


def report(results: dict[str, dict[str, tuple[float, float, float, int] | None]], args: argparse.Namespace) -> None:
    names = list(results)
    print(
        f"\nrequests/s and p50/p95 latency (ms); wrk -c{args.connections} -d{args.duration}s; {args.parcels:,} parcels"
    )
    header = f"{'request':<24}" + "".join(f"{n:>26}" for n in names)
    print(header + (f"{'vs pygeoapi':>13}{'vs tipg':>10}{'no cache vs tipg':>18}" if "gis_ioc" in results else ""))
    for request in REQUESTS:
        line = f"{request:<24}"
        for name in names:  # "gis_ioc as owner": the same server without row security (its cost)
            r = results[name].get(request)
            line += f"{'n/a':>26}" if r is None else f"{r[0]:9.1f} {r[1]:7.1f}/{r[2]:<7.1f}"
        for mine, other in (("gis_ioc", "pygeoapi"), ("gis_ioc", "tipg"), ("gis_ioc, no cache", "tipg")):
            ours = results.get(mine, {}).get(request)
            theirs = results.get(other, {}).get(request)
            if ours and theirs:
                line += f"{ours[0] / theirs[0]:>11.1f}x "
            elif "gis_ioc" in results:
                line += f"{'n/a':>12} "
        print(line)


if __name__ == "__main__":
    main()
