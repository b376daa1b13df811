"""Maps for leaders and analysts: the web map's data (commune search, identify, MapLibre style),
thematic maps (folium HTML, PNG/PDF print maps), exports (GeoPackage, Shapefile, GeoJSON, CSV, XLSX)
and meeting reports (PDF, DOCX, HTML). Plain Python over PostGIS; the HTTP routes and CLI are thin."""
