"""Layer styles served as QML, SLD 1.0 and MapLibre GL from each collection (issue 18); QGIS reads them in
tests/qgis."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient

from gis_ioc.catalog import Catalog

SLD = "{http://www.opengis.net/sld}"
OGC = "{http://www.opengis.net/ogc}"


def test_the_style_list_links_every_stylesheet(client: TestClient) -> None:
    answer = client.get("/ogc/collections/schools/styles")
    assert answer.status_code == 200
    body = answer.json()
    assert body["default"] == "default"
    links = {li["type"]: li["href"] for li in body["styles"][0]["links"]}
    assert set(links) == {
        "application/vnd.qgis.qml",
        "application/vnd.ogc.sld+xml;version=1.0",
        "application/vnd.mapbox.style+json",
    }
    assert links["application/vnd.qgis.qml"].endswith("/ogc/collections/schools/styles/default?f=qml")
    collection = client.get("/ogc/collections/schools", params={"f": "json"}).json()
    styles = [li for li in collection["links"] if li["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/styles"]
    assert styles and styles[0]["href"].endswith("/ogc/collections/schools/styles")


def test_qml_has_the_catalog_classes_and_vietnamese_labels(client: TestClient, catalog: Catalog) -> None:
    answer = client.get("/ogc/collections/schools/styles/default", params={"f": "qml"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/vnd.qgis.qml")
    root = ET.fromstring(answer.text.split("\n", 1)[1])  # after the DOCTYPE line
    renderer = root.find("renderer-v2")
    assert renderer is not None and renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "level"
    categories = renderer.findall("categories/category")
    style = catalog.style_of(catalog.layers["schools"])
    assert [c.get("value") for c in categories[:-1]] == [str(c.value) for c in style.classes]
    assert [c.get("label") for c in categories[:-1]] == [
        "Mầm non",
        "Tiểu học",
        "Trung học cơ sở",
        "Trung học phổ thông",
    ]
    preschool = renderer.find("symbols/symbol[@name='0']/layer/prop[@k='color']")
    assert preschool is not None and preschool.get("v") == "166,206,227,230"  # #a6cee3 at 0.9
    english = client.get("/ogc/collections/schools/styles/default", params={"f": "qml", "lang": "en"}).text
    assert 'label="Preschool"' in english or 'label="Pre-school"' in english


def test_sld_rules_filter_on_the_styled_field(client: TestClient) -> None:
    answer = client.get("/ogc/collections/roads/styles/default", params={"f": "sld"})
    assert answer.status_code == 200 and "sld+xml" in answer.headers["content-type"]
    root = ET.fromstring(answer.content)
    assert root.tag == f"{SLD}StyledLayerDescriptor" and root.get("version") == "1.0.0"
    rules = root.findall(f".//{SLD}Rule")
    values = [r.findtext(f"{OGC}Filter/{OGC}PropertyIsEqualTo/{OGC}Literal") for r in rules]
    assert values[:5] == ["national", "provincial", "urban", "commune", "village"]
    assert rules[-1].find(f"{SLD}ElseFilter") is not None
    national = rules[0].find(f"{SLD}LineSymbolizer/{SLD}Stroke")
    assert national is not None
    css = {p.get("name"): p.text for p in national}
    assert css == {"stroke": "#d7301f", "stroke-width": "4"}
    communes = ET.fromstring(client.get("/ogc/collections/communes/styles/default", params={"f": "sld"}).content)
    label = communes.find(f".//{SLD}TextSymbolizer/{SLD}Label/{OGC}PropertyName")
    assert label is not None and label.text == "name"


def test_mapbox_style_draws_the_collection_tiles(client: TestClient) -> None:
    answer = client.get("/ogc/collections/schools/styles/default", params={"f": "mapbox"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/vnd.mapbox.style+json")
    style = answer.json()
    assert style["version"] == 8
    assert style["sources"]["schools"]["tiles"][0].endswith("/collections/schools/tiles/WebMercatorQuad/{z}/{y}/{x}")
    assert style["layers"][0]["type"] == "circle"


def test_style_errors_and_access(client: TestClient, anonymous: TestClient) -> None:
    bad = client.get("/ogc/collections/schools/styles/default", params={"f": "lyrx"})
    assert bad.status_code == 400 and "qml" in bad.json()["detail"]
    assert client.get("/ogc/collections/schools/styles/default", params={"lang": "fr"}).status_code == 400
    assert client.get("/ogc/collections/schools/styles/other").status_code == 404
    assert client.get("/ogc/collections/schools/styles/default", params={"x": "1"}).status_code == 400
    # an internal layer's styles exist only for those who may read it
    assert anonymous.get("/ogc/collections/land_parcels/styles").status_code == 404
    assert anonymous.get("/ogc/collections/land_parcels/styles/default").status_code == 404
    private = client.get("/ogc/collections/land_parcels/styles/default")
    assert private.status_code == 200 and private.headers["cache-control"].startswith("private")
    public = anonymous.get("/ogc/collections/schools/styles/default")
    assert public.headers["cache-control"].startswith("public")
