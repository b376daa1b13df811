"""Opening a GIS officer's file through GDAL (pyogrio): format, safe unzipping, layer choice, raw text.

Formats: GeoJSON, zipped or plain Shapefile (with or without .prj/.cpg), GeoPackage, KML/KMZ,
CSV with lon/lat or VN-2000 X/Y columns, FlatGeobuf, DXF. Archives are unpacked into a private work
folder with every member checked (no absolute paths, no ``..``, a cap on the declared and the actual
uncompressed size), so a hostile zip writes nothing outside it.

Text fields of formats that carry no reliable encoding (Shapefile without .cpg, CSV, DXF) are read
byte-for-byte (as Latin-1) so that :mod:`gis_ioc.loaders.vn_text` can tell TCVN3, VNI and cp1258 apart.
"""

from __future__ import annotations

import math
import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pyogrio
import shapely
from pyproj import CRS

from gis_ioc.errors import LoadError
from gis_ioc.loaders import matching, vn_text

FORMATS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".shp": "Shapefile",
    ".gpkg": "GeoPackage",
    ".kml": "KML",
    ".kmz": "KMZ",
    ".csv": "CSV",
    ".fgb": "FlatGeobuf",
    ".dxf": "DXF",
    ".zip": "zip",
}
LON_NAMES = ("lon", "lng", "long", "longitude", "kinh_do", "Kinh độ", "x_lon", "Kinh độ (độ)")
LAT_NAMES = ("lat", "latitude", "vi_do", "Vĩ độ", "y_lat", "Vĩ độ (độ)")
#: Vietnamese survey convention: X is the northing, Y the easting.
VN_X_NAMES = ("x", "toa_do_x", "Tọa độ X", "Toạ độ X", "x_vn2000", "X (m)")
VN_Y_NAMES = ("y", "toa_do_y", "Tọa độ Y", "Toạ độ Y", "y_vn2000", "Y (m)")
_CHUNK = 1 << 20


class SourceError(LoadError):
    """A file that cannot be read: the message in Vietnamese (``str``), in English as ``en``."""

    def __init__(self, message: str, en: str) -> None:
        super().__init__(message)
        self.en = en


@dataclass
class Source:
    """A file read into a GeoDataFrame in its own coordinates, with what was learnt on the way."""

    frame: gpd.GeoDataFrame
    format: str
    layer: str | None
    declared_crs: CRS | None
    crs_origin: str  # "file", "none", "implied by format"
    encoding: str | None = None  # the text encoding used, when it was detected or given
    encoding_detected: vn_text.Detection | None = None
    converted_values: int = 0
    notes: list[str] = field(default_factory=list)
    csv_axes: str | None = None  # "lonlat" or "vn_xy" for CSV


def safe_extract(archive: Path, dest: Path, *, max_bytes: int, max_members: int = 10_000) -> list[Path]:
    """Unpack ``archive`` into ``dest`` refusing unsafe paths and oversized content; returns the files."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(
            f"{archive.name}: không phải tệp nén zip đọc được (bị cắt hoặc hỏng?)",
            f"{archive.name}: not a readable zip archive (truncated or damaged?)",
        ) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise SourceError(
                f"{archive.name}: có {len(infos)} tệp bên trong; chỉ nhận tối đa {max_members}",
                f"{archive.name}: {len(infos)} members; at most {max_members} are accepted",
            )
        declared = sum(i.file_size for i in infos)
        if declared > max_bytes:
            raise SourceError(
                f"{archive.name}: tệp nén khai báo {_gb(declared)} GB khi giải nén, vượt giới hạn {_gb(max_bytes)} GB "
                "(GIS_IOC_LOAD_MAX_UNZIPPED_MB); chưa giải nén gì",
                f"{archive.name}: the archive declares {declared / 1e9:.2f} GB uncompressed, more than the "
                f"{max_bytes / 1e9:.2f} GB limit (GIS_IOC_LOAD_MAX_UNZIPPED_MB); nothing was unpacked",
            )
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        out: list[Path] = []
        written = 0
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                raise SourceError(
                    f"{archive.name}: tệp {info.filename!r} trỏ ra ngoài tệp nén; từ chối",
                    f"{archive.name}: member {info.filename!r} points outside the archive; refused",
                )
            target = (dest / PurePosixPath(name)).resolve()
            if not target.is_relative_to(root):
                raise SourceError(
                    f"{archive.name}: tệp {info.filename!r} trỏ ra ngoài tệp nén; từ chối",
                    f"{archive.name}: member {info.filename!r} points outside the archive; refused",
                )
            if info.is_dir():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, target.open("wb") as dst:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise SourceError(
                                f"{archive.name}: hơn {_gb(max_bytes)} GB khi giải nén; từ chối",
                                f"{archive.name}: more than {max_bytes / 1e9:.2f} GB when unpacked; refused",
                            )
                        dst.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as exc:
                raise SourceError(
                    f"{archive.name}: không đọc được tệp {info.filename!r} trong tệp nén (hỏng?)",
                    f"{archive.name}: member {info.filename!r} cannot be read (damaged?)",
                ) from exc
            out.append(target)
        return out


def _pick_in_archive(files: list[Path], archive: Path) -> Path:
    """The one dataset inside an unpacked archive (a .shp, .gpkg, .geojson …)."""
    data = [
        f for f in files if f.suffix.lower() in FORMATS and f.suffix.lower() != ".zip" and "__MACOSX" not in f.parts
    ]
    if not data:
        names = ", ".join(sorted(f.name for f in files)) or "nothing"
        raise SourceError(
            f"{archive.name}: bên trong không có Shapefile (.shp), GeoPackage, GeoJSON, KML, CSV, FlatGeobuf hay DXF "
            f"(có: {names})",
            f"{archive.name}: no Shapefile (.shp), GeoPackage, GeoJSON, KML, CSV, FlatGeobuf or DXF inside "
            f"(found {names})",
        )
    if len(data) > 1:
        shp = [f for f in data if f.suffix.lower() == ".shp"]
        if len(shp) == 1:
            return shp[0]
        names = ", ".join(sorted(f.name for f in data))
        raise SourceError(
            f"{archive.name}: có nhiều bộ dữ liệu bên trong ({names}); mỗi tệp nén chỉ để một",
            f"{archive.name}: several datasets inside ({names}); put one per archive",
        )
    return data[0]


_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s'\"]*[/\\]([^/\\\s'\"]+)")


def _clean(exc: Exception, path: Path) -> str:
    """GDAL's message without server paths (the officer knows the file by its name) or GDAL's own advice
    (configuration options the officer cannot set)."""
    text = _PATH.sub(r"\1", str(exc).replace(str(path), path.name))
    sentences = [p.strip() for p in re.split(r"(?<=[.;])\s+", text)]
    kept = [p for p in sentences if p and not re.search(r"config option|It might help|SHAPE_RESTORE_SHX|GDAL_", p)]
    return " ".join(kept).rstrip(";. ")


def _missing_sidecar(path: Path) -> str | None:
    if path.suffix.lower() == ".shp":
        for ext in (".shx", ".dbf"):
            if not path.with_suffix(ext).exists() and not path.with_suffix(ext.upper()).exists():
                return ext
    return None


def _layers(path: Path) -> list[str]:
    try:
        return [str(name) for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        kind = FORMATS.get(path.suffix.lower(), "GIS")
        missing = _missing_sidecar(path)
        if missing:
            raise SourceError(
                f"{path.name}: Shapefile thiếu tệp {missing} đi kèm (hãy nén đủ .shp, .shx, .dbf, .prj)",
                f"{path.name}: the Shapefile's {missing} is missing (zip .shp, .shx, .dbf and .prj together)",
            ) from exc
        raise SourceError(
            f"{path.name}: không phải tệp {kind} đọc được (hỏng hoặc bị cắt?): {_clean(exc, path)}",
            f"{path.name}: not a readable {kind} file (damaged or truncated?): {_clean(exc, path)}",
        ) from exc


def open_source(
    path: Path,
    work: Path,
    *,
    source_layer: str | None = None,
    encoding: str | None = None,
    where: str | None = None,
    max_unzipped_bytes: int,
    polygons: bool = False,
) -> Source:
    """Read ``path`` (any supported format) into a GeoDataFrame in the file's own coordinates."""
    if not path.exists():
        raise SourceError(f"{path.name}: không tìm thấy tệp", f"{path.name}: file not found")
    if path.stat().st_size == 0:
        raise SourceError(f"{path.name}: tệp rỗng", f"{path.name}: the file is empty")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SourceError(
            f"{path.name}: không nhận dạng được định dạng {suffix or '(không có phần mở rộng)'}; "
            f"nhận: {', '.join(FORMATS)}",
            f"{path.name}: unknown format {suffix or '(no extension)'}; accepted: {', '.join(FORMATS)}",
        )
    fmt = FORMATS[suffix]
    notes: list[str] = []
    if suffix in (".zip", ".kmz"):
        files = safe_extract(path, work / "unpacked", max_bytes=max_unzipped_bytes)
        if suffix == ".kmz":
            kml = [f for f in files if f.suffix.lower() == ".kml"]
            if not kml:
                raise SourceError(
                    f"{path.name}: tệp KMZ không có tài liệu .kml bên trong",
                    f"{path.name}: a KMZ without a .kml document inside",
                )
            target = kml[0]
        else:
            target = _pick_in_archive(files, path)
            fmt = FORMATS[target.suffix.lower()]
            notes.append(f"read {target.name} from the archive")
        source = _read(target, fmt, source_layer, encoding, where, polygons)
        source.notes[:0] = notes
        return source
    return _read(path, fmt, source_layer, encoding, where, polygons)


def _read(
    path: Path, fmt: str, source_layer: str | None, encoding: str | None, where: str | None, polygons: bool
) -> Source:
    layers = _layers(path)
    if not layers:
        raise SourceError(f"{path.name}: tệp không có lớp dữ liệu nào", f"{path.name}: no layers in the file")
    if source_layer is not None:
        if source_layer not in layers:
            raise SourceError(
                f"{path.name}: không có lớp {source_layer!r}; tệp có: {', '.join(layers)}",
                f"{path.name}: no layer {source_layer!r}; it has {', '.join(layers)}",
            )
        layer = source_layer
    elif len(layers) == 1:
        layer = layers[0]
    else:
        raise SourceError(
            f"{path.name} có {len(layers)} lớp ({', '.join(layers)}): chọn một lớp bằng --source-layer",
            f"{path.name} holds {len(layers)} layers ({', '.join(layers)}): choose one with --source-layer",
        )

    kwargs: dict[str, Any] = {}
    config: dict[str, str] = {}
    raw_text = False
    csv_axes = None
    crs_origin = "file"
    if fmt == "Shapefile":
        has_cpg = path.with_suffix(".cpg").exists() or path.with_suffix(".CPG").exists()
        raw_text = encoding is not None or not has_cpg
        if not path.with_suffix(".prj").exists() and not path.with_suffix(".PRJ").exists():
            crs_origin = "none"
    elif fmt == "CSV":  # coordinates parsed here (decimal commas, Vietnamese headers in any encoding)
        raw_text = True
        kwargs["read_geometry"] = False
    elif fmt == "DXF":
        raw_text = True
        config["DXF_ENCODING"] = "ISO-8859-1"  # GDAL configuration options: raw bytes, detected below
        config["DXF_CLOSED_LINE_AS_POLYGON"] = "TRUE" if polygons else "FALSE"
    read_encoding = "ISO-8859-1" if raw_text else None
    if config:
        pyogrio.set_gdal_config_options(config)
    try:
        frame = pyogrio.read_dataframe(
            path, layer=layer, encoding=read_encoding, where=where, on_invalid="ignore", **kwargs
        )
    except Exception as exc:
        raise SourceError(
            f"{path.name}: không đọc được dạng {fmt} (hỏng hoặc bị cắt?): {_clean(exc, path)}",
            f"{path.name}: cannot be read as {fmt} (damaged or truncated?): {_clean(exc, path)}",
        ) from exc
    finally:
        if config:
            pyogrio.set_gdal_config_options(dict.fromkeys(config))
    if fmt == "CSV":
        frame, csv_axes = _csv_points(frame, path)
    if not isinstance(frame, gpd.GeoDataFrame):
        raise SourceError(
            f"{path.name}: lớp {layer!r} không có hình học", f"{path.name}: layer {layer!r} has no geometry"
        )
    if len(frame) == 0:
        raise SourceError(
            f"{path.name}: lớp {layer!r} không có đối tượng nào" + (f" khớp với {where!r}" if where else ""),
            f"{path.name}: layer {layer!r} has no features" + (f" matching {where!r}" if where else ""),
        )
    declared = frame.crs
    if fmt == "CSV":
        declared = CRS.from_epsg(4326) if csv_axes == "lonlat" else None
        crs_origin = "implied by format" if declared is not None else "none"
    elif fmt in ("GeoJSON", "KML", "KMZ") and declared is not None:
        crs_origin = "implied by format"
    elif declared is None:
        crs_origin = "none"
    source = Source(frame=frame, format=fmt, layer=layer, declared_crs=declared, crs_origin=crs_origin)
    source.csv_axes = csv_axes
    if raw_text:
        _decode_text(source, encoding)
    else:
        _normalise_text(source.frame)
    return source


def _header_keys(raw: str) -> set[str]:
    """Matching keys of a header read byte for byte (Latin-1), under each encoding it may be in."""
    data = raw.encode("latin-1", errors="replace")
    keys = set()
    for enc in vn_text.CANDIDATES:
        try:
            keys.add(matching.key(vn_text.decode(data, enc)))
        except (UnicodeDecodeError, ValueError):
            continue
    return keys


def _header_text(raw: str) -> str:
    """A header read byte for byte, shown readably (UTF-8 when it is, else as detected)."""
    data = raw.encode("latin-1", errors="replace")
    if data.isascii():
        return raw
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return vn_text.decode(data, vn_text.detect([data]).encoding)


def _number(value: object) -> float:
    """A coordinate as written: ``106.05``, ``106,05``, ``2.300.123,45`` or ``2,300,123.45``."""
    if value is None:
        return math.nan
    text = str(value).strip().replace(" ", "").replace("\u00a0", "")
    if "," in text and "." in text:
        text = text.replace(".", "").replace(",", ".") if text.rfind(",") > text.rfind(".") else text.replace(",", "")
    elif text.count(",") == 1:
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return math.nan


def _csv_points(frame: pd.DataFrame, path: Path) -> tuple[gpd.GeoDataFrame, str]:
    """Points from the coordinate columns of a CSV: lon/lat (Kinh độ/Vĩ độ) or VN-2000 X/Y (X the northing)."""
    keys = {str(c): _header_keys(str(c)) for c in frame.columns}

    def find(names: tuple[str, ...]) -> str | None:
        wanted = {matching.key(n) for n in names}
        return next((c for c, k in keys.items() if k & wanted), None)

    lon, lat = find(LON_NAMES), find(LAT_NAMES)
    axes = "lonlat"
    if lon is None or lat is None:
        lat, lon = find(VN_X_NAMES), find(VN_Y_NAMES)  # Vietnamese X (northing) is GDAL's y
        axes = "vn_xy"
    if lon is None or lat is None:
        shown = ", ".join(_header_text(str(c)) for c in frame.columns)
        raise SourceError(
            f"{path.name}: không có cột tọa độ; đặt tên Kinh độ/Vĩ độ (lon/lat) cho độ, hoặc X/Y cho VN-2000 "
            f"(X là tọa độ bắc, Y là tọa độ đông). Các cột có: {shown}",
            f"{path.name}: no coordinate columns; name them lon/lat (Kinh độ/Vĩ độ) for degrees, or X/Y for "
            f"VN-2000 (X the northing, Y the easting). Columns found: {shown}",
        )
    x = np.fromiter((_number(v) for v in frame[lon].tolist()), dtype=float, count=len(frame))
    y = np.fromiter((_number(v) for v in frame[lat].tolist()), dtype=float, count=len(frame))
    good = np.isfinite(x) & np.isfinite(y)
    geoms = np.full(len(frame), None, dtype=object)
    geoms[good] = shapely.points(x[good], y[good])
    rest = frame.drop(columns=[lon, lat]).reset_index(drop=True)
    return gpd.GeoDataFrame(rest, geometry=gpd.GeoSeries(geoms), crs=None), axes


def _text_columns(frame: pd.DataFrame) -> list[str]:
    geometry = frame.geometry.name
    return [
        c
        for c in frame.columns
        if c != geometry and (frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]))
    ]


def _normalise_text(frame: pd.DataFrame) -> None:
    for col in _text_columns(frame):
        values = frame[col].dropna().tolist()
        try:
            joined = "".join(values)  # one C call; a generator with isinstance took 1.4 s per million values
        except TypeError:
            joined = "".join(v for v in values if isinstance(v, str))
        if joined.isascii():
            continue  # nothing to normalise (codes, numbers as text)
        frame[col] = frame[col].map(lambda v: unicodedata.normalize("NFC", v) if isinstance(v, str) else v)


def _decode_text(source: Source, encoding: str | None) -> None:
    """Values were read as Latin-1 (one character per byte): decode them with the given or detected encoding."""
    frame = source.frame
    columns = _text_columns(frame)
    samples: list[bytes] = [str(c).encode("latin-1") for c in frame.columns if not str(c).isascii()]
    for col in columns:
        for value in frame[col].dropna().head(5000):
            if isinstance(value, str) and not value.isascii():
                samples.append(value.encode("latin-1"))
    if encoding is None:
        detection = vn_text.detect(samples)
        chosen = detection.encoding
        source.encoding_detected = detection
    else:
        chosen = encoding.lower().replace("_", "-")
        if chosen in ("abc", "tcvn3", "tcvn-3"):
            chosen = "tcvn3"
        elif chosen in ("vni-windows", "vni"):
            chosen = "vni"
        try:
            if chosen not in vn_text.LEGACY:
                "".encode(chosen)
        except LookupError:
            raise SourceError(
                f"--encoding {encoding!r} không được hỗ trợ; dùng utf-8, cp1258, tcvn3 hoặc vni",
                f"--encoding {encoding!r} is not known; use utf-8, cp1258, tcvn3 or vni",
            ) from None
    source.encoding = chosen
    converted = 0
    for col in columns:
        values = frame[col].tolist()
        out = []
        for value in values:
            if isinstance(value, str) and not value.isascii():
                try:
                    out.append(vn_text.decode(value.encode("latin-1"), chosen))
                except (UnicodeDecodeError, ValueError) as exc:
                    raise SourceError(
                        f"cột {col}: {value!r} không phải văn bản {chosen} hợp lệ (chọn --encoding khác)",
                        f"column {col}: {value!r} is not valid {chosen} (choose another --encoding)",
                    ) from exc
                converted += 1
            else:
                out.append(value)
        frame[col] = out
    source.converted_values = converted
    frame.columns = [
        vn_text.decode(str(c).encode("latin-1"), chosen) if not str(c).isascii() else c for c in frame.columns
    ]


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f}".replace(".", ",")


def remove_work(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
