"""A ready QGIS project (``.qgz``) holding every layer a viewer may read, for GIS officers' QGIS desktop.

- Layers are grouped as in the catalog (Hành chính, Đất đai, …), titled in Vietnamese (English with
  ``lang=en``), styled from ``styles/`` (:mod:`gis_ioc.publish.styles`): OGC API Features for most layers,
  gis_ioc's vector tiles for the large ones (those whose style starts at a street zoom: parcels,
  buildings), and the approved planning drawings as XYZ raster tiles.
- The project CRS is VN-2000 / TM-3 105°30' (EPSG:9209), with the official VN-2000 ↔ WGS 84
  transformation (EPSG:6960, Decision 05/2007/QĐ-BTNMT) pinned in the project's transform context for
  every source CRS the layers use, so QGIS never picks another operation.
- Layers that differ by who asks (internal and restricted layers, personal fields) carry
  ``authcfg=<id>``: QGIS's Basic authentication configuration of that id, holding the user name and an
  API key, which the user creates once (``docs/qgis.md``). No credential is ever written into the file.

The XML is what QGIS 3.22 (Debian 12) reads; the tests open the project with PyQGIS, check that every
layer is valid and render it.
"""

from __future__ import annotations

import io
import re
import warnings
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from typing import Any

import psycopg
from pyproj import CRS

from gis_ioc.catalog import Catalog, Layer
from gis_ioc.crs import PUBLISHED, transformer
from gis_ioc.errors import InvalidInput
from gis_ioc.loaders import plans
from gis_ioc.maps.mapstyle import BASE_LAYERS, SOURCE_MAXZOOM
from gis_ioc.publish import styles
from gis_ioc.publish.config import PROVINCE_BBOX
from gis_ioc.publish.tiles import TMS_ID, same_for_everyone
from gis_ioc.query.viewer import Viewer

PROJECT_EPSG = 9209
#: QGIS authentication configuration ids are 7 characters.
AUTHCFG_RE = re.compile(r"^[a-z0-9]{7}$")
DEFAULT_AUTHCFG = "gisioc1"
#: The catalog's groups, in the layer panel's order (top first: drawn above the ones below).
GROUPS = {
    "iot": {"vi": "Cảm biến IoT", "en": "IoT sensors"},
    "infrastructure": {"vi": "Hạ tầng kỹ thuật", "en": "Infrastructure"},
    "housing": {"vi": "Nhà ở", "en": "Housing"},
    "land": {"vi": "Đất đai", "en": "Land"},
    "planning": {"vi": "Quy hoạch", "en": "Planning"},
    "administrative": {"vi": "Hành chính", "en": "Administrative"},
}
#: Within a group: points above lines above polygons.
_DRAW = {"marker": 0, "line": 1, "fill": 2}
PLAN_ZOOMS = (10, 20)


@dataclass(frozen=True)
class Plan:
    """An approved planning drawing (``gis_ioc.plans``)."""

    id: int
    name: str
    zone_code: str | None


def check_authcfg(authcfg: str) -> str:
    if not AUTHCFG_RE.match(authcfg):
        raise InvalidInput(
            f"authcfg={authcfg!r}: a QGIS authentication configuration id is 7 lower-case letters or digits"
        )
    return authcfg


def vector_tiles(layer: Layer, catalog: Catalog) -> bool:
    """Is the layer offered as vector tiles rather than features? Those drawn only from a street zoom."""
    return catalog.style_of(layer).min_zoom > 0


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def spatialrefsys(authid: str) -> ET.Element:
    crs = CRS.from_user_input(authid)
    srs = ET.Element("spatialrefsys")
    _text(srs, "wkt", crs.to_wkt())
    with warnings.catch_warnings():  # a PROJ string loses detail: it is only informative beside the WKT
        warnings.simplefilter("ignore", UserWarning)
        plain = (crs.to_proj4() or "").replace(" +type=crs", "")
    pinned = next((c.proj4 for c in PUBLISHED if c.epsg is not None and authid == f"EPSG:{c.epsg}"), None)
    # VN-2000 as QGIS writes it: with the EPSG:6960 datum shift
    _text(srs, "proj4", pinned or plain)
    _text(srs, "authid", authid)
    _text(srs, "description", crs.name)
    _text(srs, "geographicflag", "true" if crs.is_geographic else "false")
    return srs


def _srs(parent: ET.Element, tag: str, authid: str) -> None:
    ET.SubElement(parent, tag).append(spatialrefsys(authid))


def _extent(parent: ET.Element, tag: str, bbox: list[float]) -> None:
    extent = ET.SubElement(parent, tag)
    for name, value in zip(("xmin", "ymin", "xmax", "ymax"), bbox, strict=True):
        _text(extent, name, repr(float(value)))


def _project_bbox() -> list[float]:
    """The province in the project CRS (metres), with a margin."""
    to_project = transformer(4326, PROJECT_EPSG)
    xs, ys = to_project.transform(
        [PROVINCE_BBOX[0], PROVINCE_BBOX[2], PROVINCE_BBOX[0], PROVINCE_BBOX[2]],
        [PROVINCE_BBOX[1], PROVINCE_BBOX[1], PROVINCE_BBOX[3], PROVINCE_BBOX[3]],
    )
    margin = 2000.0
    return [min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin]


def _maplayer(
    layer_type: str, layer_id: str, name: str, datasource: str, authid: str, provider: str, **attrs: str
) -> ET.Element:
    element = ET.Element("maplayer", {"type": layer_type, "hasScaleBasedVisibilityFlag": "0", **attrs})
    _text(element, "id", f"gis_ioc_{layer_id}")
    _text(element, "datasource", datasource)
    _text(element, "layername", name)
    _srs(element, "srs", authid)
    provider_element = _text(element, "provider", provider)
    if provider == "OAPIF":
        provider_element.set("encoding", "UTF-8")
    return element


class ProjectBuilder:
    """The project of one viewer's layers on one server address."""

    def __init__(self, catalog: Catalog, base_url: str, ogc_path: str, *, authcfg: str, lang: str) -> None:
        self.catalog = catalog
        self.base = base_url.rstrip("/")
        self.ogc = f"{self.base}{ogc_path}"
        self.authcfg = check_authcfg(authcfg)
        self.lang = styles.parse_lang(lang)

    def title(self, text: Any) -> str:
        return str(getattr(text, self.lang))

    def features_layer(self, layer: Layer) -> ET.Element:
        parts = [f"url='{self.ogc}'", f"typename='{layer.id}'", "pagingEnabled='true'", "restrictToRequestBBOX='1'"]
        if not same_for_everyone(layer):
            parts.append(f"authcfg='{self.authcfg}'")
        style = self.catalog.style_of(layer)
        labels = styles.labeling(layer)
        element = _maplayer(
            "vector",
            layer.id,
            self.title(layer.title),
            " ".join(parts),
            "OGC:CRS84",
            "OAPIF",
            geometry={"marker": "Point", "line": "Line", "fill": "Polygon"}[styles.kind_of(layer)],
            wkbType=layer.geometry,
            labelsEnabled="1" if labels is not None else "0",
        )
        element.append(styles.renderer_v2(layer, style, self.lang))
        if labels is not None:
            element.append(labels)
        return element

    def tiles_layer(self, layer: Layer) -> ET.Element:
        style = self.catalog.style_of(layer)
        url = f"{self.ogc}/collections/{layer.id}/tiles/{TMS_ID}/{{z}}/{{y}}/{{x}}"
        source = f"type=xyz&url={url}&zmin={style.min_zoom}&zmax={SOURCE_MAXZOOM}"
        if not same_for_everyone(layer):
            source += f"&authcfg={self.authcfg}"
        element = _maplayer("vector-tile", layer.id, self.title(layer.title), source, "EPSG:3857", "vectortile")
        renderer = ET.SubElement(element, "renderer", {"type": "basic"})
        ET.SubElement(renderer, "styles").extend(styles.tile_styles(layer, style, self.lang, style.min_zoom))
        return element

    def plan_layer(self, plan: Plan) -> ET.Element:
        url = f"{self.base}/api/plans/{plan.id}/tiles/{{z}}/{{x}}/{{y}}.png"
        source = f"type=xyz&url={url}&zmin={PLAN_ZOOMS[0]}&zmax={PLAN_ZOOMS[1]}"
        name = f"{'Bản vẽ' if self.lang == 'vi' else 'Drawing'}: {plan.name}"
        return _maplayer("raster", f"plan_{plan.id}", name, source, "EPSG:3857", "wms")

    def entries(self, layers: list[Layer], plans: list[Plan]) -> list[tuple[str, str, ET.Element, bool]]:
        """(group, provider key, map layer, shown at first) in the layer panel's order."""
        out: list[tuple[str, str, ET.Element, bool]] = []
        order = list(GROUPS)
        for layer in sorted(
            layers,
            key=lambda la: (order.index(la.group), _DRAW[styles.kind_of(la)], la.id != "communes", la.id),
        ):
            shown = layer.id in BASE_LAYERS
            if vector_tiles(layer, self.catalog):
                out.append((layer.group, "vectortile", self.tiles_layer(layer), shown))
            else:
                out.append((layer.group, "OAPIF", self.features_layer(layer), shown))
            if layer.id == "planning_zones":
                out += [("planning", "wms", self.plan_layer(plan), False) for plan in plans]
        if plans and not any(layer.id == "planning_zones" for layer in layers):
            out += [("planning", "wms", self.plan_layer(plan), False) for plan in plans]
        return out

    def xml(self, layers: list[Layer], plans: list[Plan]) -> str:
        title = "gis_ioc Hưng Yên" + (" — Trung tâm giám sát, điều hành thông minh" if self.lang == "vi" else " — IOC")
        root = ET.Element("qgis", {"projectname": title, "version": styles.QGIS_VERSION})
        _text(root, "title", title)
        _srs(root, "projectCrs", f"EPSG:{PROJECT_EPSG}")
        entries = self.entries(layers, plans)
        tree = ET.SubElement(root, "layer-tree-group")
        groups: dict[str, ET.Element] = {}
        for group, provider, element, shown in entries:
            if group not in groups:
                groups[group] = ET.SubElement(
                    tree,
                    "layer-tree-group",
                    {"name": GROUPS[group][self.lang], "expanded": "1", "checked": "Qt::Checked"},
                )
            ET.SubElement(
                groups[group],
                "layer-tree-layer",
                {
                    "id": element.findtext("id", ""),
                    "name": element.findtext("layername", ""),
                    "source": element.findtext("datasource", ""),
                    "providerKey": provider,
                    "checked": "Qt::Checked" if shown else "Qt::Unchecked",
                    "expanded": "0",
                },
            )
        canvas = ET.SubElement(root, "mapcanvas", {"name": "theMapCanvas", "annotationsVisible": "1"})
        _text(canvas, "units", "meters")
        _extent(canvas, "extent", _project_bbox())
        _text(canvas, "rotation", "0")
        _srs(canvas, "destinationsrs", f"EPSG:{PROJECT_EPSG}")
        context = ET.SubElement(root, "transformContext")
        for source in ("EPSG:4326", "OGC:CRS84", "EPSG:3857"):
            epsg = 3857 if source == "EPSG:3857" else 4326
            pair = ET.SubElement(
                context,
                "srcDest",
                {"coordinateOp": transformer(epsg, PROJECT_EPSG).to_proj4(), "allowFallback": "0"},
            )
            _srs(pair, "src", source)
            _srs(pair, "dest", f"EPSG:{PROJECT_EPSG}")
        projectlayers = ET.SubElement(root, "projectlayers")
        projectlayers.extend(element for _, _, element, _ in entries)
        properties = ET.SubElement(root, "properties")
        refsys = ET.SubElement(properties, "SpatialRefSys")  # QGIS reads projectCrs only when this is set
        _text(refsys, "ProjectionsEnabled", "1").set("type", "int")
        measure = ET.SubElement(properties, "Measure")
        _text(measure, "Ellipsoid", "EPSG:7030").set("type", "QString")
        ET.indent(root)
        return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")


def project_qgz(
    catalog: Catalog,
    layers: list[Layer],
    plans: list[Plan],
    base_url: str,
    ogc_path: str,
    *,
    authcfg: str = DEFAULT_AUTHCFG,
    lang: str = "vi",
) -> bytes:
    """The zipped project (``.qgz``): one ``.qgs`` inside, as QGIS saves it."""
    document = ProjectBuilder(catalog, base_url, ogc_path, authcfg=authcfg, lang=lang).xml(layers, plans)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("gis_ioc_hung_yen.qgs", document)
    return buffer.getvalue()


def approved_plans(conn: psycopg.Connection[Any]) -> list[Plan]:
    """The approved planning drawings (a transaction bound to the viewer)."""
    return [Plan(p["id"], p["name"], p["zone_code"]) for p in plans.list_plans(conn)]


def project_for(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    viewer: Viewer,
    base_url: str,
    ogc_path: str,
    *,
    authcfg: str = DEFAULT_AUTHCFG,
    lang: str = "vi",
) -> bytes:
    """The project of every layer ``viewer`` may read, and the approved drawings (``conn``: a transaction
    bound to the viewer)."""
    check_authcfg(authcfg)
    styles.parse_lang(lang)
    layers = viewer.readable(list(catalog))
    return project_qgz(catalog, layers, approved_plans(conn), base_url, ogc_path, authcfg=authcfg, lang=lang)
