"""Drives Debian's QGIS (PyQGIS, offscreen) for the tests: run by the system's python3, not the suite's.

    python3 pyqgis_driver.py '<JSON request>'   → prints one JSON answer on the last line of stdout

Requests (``"do"``):
- ``features``: OGC API Features layers of the server at ``url``, each (in ``layers``) a ``typename`` with
  optional ``subset`` (a QGIS filter expression), ``bbox`` (lon/lat) and ``qml`` (a style file to load);
  answers each one's validity, feature count, fields and every feature's values (what QGIS asked the
  server is in the server's access log).
- ``project``: opens a ``.qgz`` (``path``), answers each layer's validity and provider, renders the checked
  layers to ``png`` and answers how many pixels are not background; with ``point`` (lon, lat) also
  answers the point in the project CRS through the project's transform context.
Both take ``user`` and ``key``: a QGIS Basic authentication configuration (id ``authcfg``, default
``gisioc1``) holding them is made first in a throwaway authentication database.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
home = tempfile.mkdtemp(prefix="pyqgis-")
os.environ["QGIS_AUTH_DB_DIR_PATH"] = home
os.environ.setdefault("XDG_RUNTIME_DIR", home)

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsAuthMethodConfig,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402


def value(v):
    if v is None or (hasattr(v, "isNull") and v.isNull()):
        return None
    if hasattr(v, "toString") and not isinstance(v, str):
        if v.__class__.__name__ == "QDate":
            return v.toString("yyyy-MM-dd")
        if v.__class__.__name__ == "QDateTime":  # in UTC, as the server's JSON gives it
            return v.toUTC().toString("yyyy-MM-dd'T'HH:mm:ss")
        return v.toString()
    return v


def authenticate(request):
    if "user" not in request:
        return
    manager = QgsApplication.authManager()
    manager.setMasterPassword("pyqgis-test-master", True)
    config = QgsAuthMethodConfig("Basic")
    config.setId(request.get("authcfg", "gisioc1"))
    config.setName("gis_ioc")
    config.setConfig("username", request["user"])
    config.setConfig("password", request["key"])
    if not manager.storeAuthenticationConfig(config):
        raise SystemExit("could not store the authentication configuration")


def one_layer(request, spec):
    source = f"url='{request['url']}' typename='{spec['typename']}' pagingEnabled='true'"
    if "authcfg" in request:
        source += f" authcfg='{request['authcfg']}'"
    layer = QgsVectorLayer(source, spec["typename"], "OAPIF")
    answer = {"valid": layer.isValid()}
    if not layer.isValid():
        return answer
    if spec.get("qml"):
        _message, loaded = layer.loadNamedStyle(spec["qml"])
        renderer = layer.renderer()
        answer["style"] = {
            "loaded": loaded,
            "renderer": renderer.type(),
            "categories": [c.label() for c in renderer.categories()] if hasattr(renderer, "categories") else [],
            "labels": layer.labelsEnabled(),
        }
    if spec.get("subset"):
        answer["subset_set"] = layer.setSubsetString(spec["subset"])
    query = QgsFeatureRequest()
    if spec.get("bbox"):
        query.setFilterRect(QgsRectangle(*spec["bbox"]))
    names = [f.name() for f in layer.fields()]
    rows = []
    for feature in layer.getFeatures(query):
        rows.append({n: value(feature[n]) for n in names})
    types = {f.name(): f.typeName() for f in layer.fields()}
    answer.update({"fields": names, "types": types, "count": len(rows), "features": rows, "crs": layer.crs().authid()})
    return answer


def features(request):
    return {"layers": {spec["typename"]: one_layer(request, spec) for spec in request["layers"]}}


def project(request):
    proj = QgsProject.instance()
    ok = proj.read(request["path"])
    answer = {"read": ok, "crs": proj.crs().authid(), "title": proj.title(), "layers": [], "groups": []}
    root = proj.layerTreeRoot()
    answer["groups"] = [g.name() for g in root.findGroups()]
    checked = []
    for node in root.findLayers():
        layer = node.layer()
        entry = {
            "name": node.name(),
            "id": node.layerId(),
            "valid": bool(layer and layer.isValid()),
            "provider": layer.providerType() if layer else None,
            "group": node.parent().name(),
            "checked": node.isVisible(),
        }
        if layer is not None and layer.isValid() and layer.type() == 0 and request.get("count"):
            entry["count"] = layer.featureCount()
        answer["layers"].append(entry)
        if node.isVisible() and layer is not None:
            checked.append(layer)
    if "point" in request:
        transform = QgsCoordinateTransform(
            QgsCoordinateReferenceSystem("OGC:CRS84"), proj.crs(), proj.transformContext()
        )
        p = transform.transform(QgsPointXY(*request["point"]))
        answer["point"] = [p.x(), p.y()]
        answer["operation"] = transform.coordinateOperation()
    if request.get("png"):
        settings = QgsMapSettings()
        settings.setLayers(checked)
        settings.setDestinationCrs(proj.crs())
        settings.setTransformContext(proj.transformContext())
        settings.setBackgroundColor(QColor(255, 255, 255))
        settings.setOutputSize(QSize(900, 700))
        to_project = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), proj.crs(), proj)
        settings.setExtent(to_project.transformBoundingBox(QgsRectangle(*request["extent"])))
        job = QgsMapRendererSequentialJob(settings)
        job.start()
        job.waitForFinished()
        image = job.renderedImage()
        image.save(request["png"], "PNG")
        drawn = 0
        for x in range(0, image.width(), 5):
            for y in range(0, image.height(), 5):
                if image.pixelColor(x, y) != QColor(255, 255, 255):
                    drawn += 1
        answer["drawn_share"] = drawn / ((image.width() // 5 + 1) * (image.height() // 5 + 1))
        answer["errors"] = [f"{e.layerID}: {e.message}" for e in job.errors()]
    return answer


def main():
    request = json.loads(sys.argv[1])
    app = QgsApplication([], False)
    app.initQgis()
    authenticate(request)
    answer = {"features": features, "project": project}[request["do"]](request)
    print(json.dumps(answer, ensure_ascii=False, default=str))
    sys.stdout.flush()
    os._exit(0)  # QGIS's teardown can hang offscreen; the answer is out


if __name__ == "__main__":
    main()
