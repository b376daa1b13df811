"""Screenshots of QGIS's own authentication widgets for docs/qgis.md, made offscreen by Debian's QGIS.

    /usr/bin/python3 tools/qgis_screenshots.py docs/images

Run by the system's Python (python3-qgis is built for it). The credentials shown are examples.
"""

import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
home = tempfile.mkdtemp(prefix="qgis-shots-")
os.environ["QGIS_AUTH_DB_DIR_PATH"] = home
os.environ.setdefault("XDG_RUNTIME_DIR", home)

from qgis.core import QgsApplication, QgsAuthMethodConfig  # noqa: E402
from qgis.gui import QgsAuthConfigEditor, QgsAuthSettingsWidget  # noqa: E402


def main(folder: str) -> None:
    app = QgsApplication([], True)
    app.initQgis()
    manager = QgsApplication.authManager()
    manager.setMasterPassword("example-master-password", True)
    config = QgsAuthMethodConfig("Basic")
    config.setId("gisioc1")
    config.setName("gis_ioc Hưng Yên")
    config.setUri("https://gis.hungyen.gov.vn/ogc")
    config.setConfig("username", "nguyen.van.a")
    config.setConfig("password", "gis_1a2b3c4d_vi-du-khoa-api")
    manager.storeAuthenticationConfig(config)
    editor = QgsAuthConfigEditor(None, False, False)
    editor.resize(760, 220)
    editor.show()
    app.processEvents()
    editor.grab().save(os.path.join(folder, "qgis-auth-configurations.png"))
    widget = QgsAuthSettingsWidget(None, "gisioc1")
    widget.resize(560, 170)
    widget.show()
    app.processEvents()
    widget.grab().save(os.path.join(folder, "qgis-connection-authentication.png"))
    os._exit(0)  # QGIS's teardown can hang offscreen


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
