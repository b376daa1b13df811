// Live sensor stations on the web map: latest values, VN_AQI band, flood alarm level and staleness,
// updated as readings arrive (server-sent events from /api/iot/stream) without reloading the page.
// Uses the map and the page state that app.js exposes (window.gisIocMap, window.gisIoc).
(() => {
  "use strict";
  const T = {
    vi: {
      title: "Trạm quan trắc", aqi: "AQI", stale: "Mất tín hiệu", fresh: "Đang truyền", alerts: "Cảnh báo đang mở",
      time: "Lúc", water: "Mực nước", none: "Chưa có số đo", alert_new: "Cảnh báo mới", alert_closed: "Đã hết cảnh báo",
      alert_ack: "Đã xác nhận cảnh báo", basis_hour: "giờ (NowCast)", basis_day: "ngày",
      kind: { limit: "vượt QCVN 05:2023/BTNMT", aqi: "chất lượng không khí", water: "báo động lũ", stale: "mất tín hiệu" },
    },
    en: {
      title: "Monitoring station", aqi: "AQI", stale: "Silent", fresh: "Reporting", alerts: "Open alerts",
      time: "At", water: "Water level", none: "No reading yet", alert_new: "New alert", alert_closed: "Alert ended",
      alert_ack: "Alert acknowledged", basis_hour: "hourly (NowCast)", basis_day: "daily",
      kind: { limit: "above QCVN 05:2023/BTNMT", aqi: "air quality", water: "flood alarm", stale: "silent" },
    },
  };
  const SOURCE = "iot-live";
  const stations = new Map();
  window.gisIocLive = stations; // the stations as last pushed (device code → GeoJSON feature)
  let source = null;
  let lang = null;

  const pageLang = () => (window.gisIoc && window.gisIoc.lang) || document.documentElement.lang || "vi";
  const t = (k) => (T[lang] || T.vi)[k];
  const VN_TIME = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Ho_Chi_Minh", day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23",
  });
  const when = (iso) => {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const part = {}; // Vietnam's local time, whatever the browser's zone
    for (const p of VN_TIME.formatToParts(d)) part[p.type] = p.value;
    return `${part.day}/${part.month}/${part.year} ${part.hour}:${part.minute}`;
  };
  const number = (v) => (v === null || v === undefined ? "—"
    : Number(v).toLocaleString(lang === "en" ? "en-GB" : "vi-VN", { maximumFractionDigits: 2 }));
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  function colour(p) {
    if (p.stale) return "#9e9e9e";
    if (p.water && p.water.level) return ["#1e88e5", "#ffb300", "#fb8c00", "#d50000"][p.water.level];
    if (p.aqi) return p.aqi.colour;
    return "#1e88e5";
  }

  function collection() {
    const features = [];
    for (const f of stations.values()) {
      const p = f.properties;
      features.push({ type: "Feature", id: f.id, geometry: f.geometry,
        properties: { device_code: p.device_code, colour: colour(p), stale: p.stale, alerts: p.alerts } });
    }
    return { type: "FeatureCollection", features };
  }

  function redraw() {
    const map = window.gisIocMap;
    const src = map && map.getSource(SOURCE);
    if (src) src.setData(collection());
  }

  function popupHtml(p) {
    const rows = p.readings.map((r) => `<tr><th>${esc(r.name)}</th><td>${number(r.value)} ${esc(r.unit)}</td>`
      + `<td>${when(r.time)}${r.stale ? ` · <b>${t("stale")}</b>` : ""}</td></tr>`).join("");
    const aqi = p.aqi ? `<p><span class="iot-swatch" style="background:${esc(p.aqi.colour)}"></span>`
      + ` ${t("aqi")} ${esc(p.aqi.value)} — <b>${esc(p.aqi.label)}</b> (${t(`basis_${p.aqi.basis}`)}, ${esc(p.aqi.dominant)})</p>` : "";
    const water = p.water ? `<p>${esc(p.water.name)} (${esc(p.water.river)}): <b>${esc(p.water.label)}</b></p>` : "";
    return `<div class="iot-popup"><h3>${t("title")} ${esc(p.device_code)}</h3>${aqi}${water}`
      + `<table>${rows || `<tr><td>${t("none")}</td></tr>`}</table>`
      + `<p>${p.stale ? t("stale") : t("fresh")}${p.alerts ? ` · ${t("alerts")}: ${p.alerts}` : ""}</p></div>`;
  }

  function notice(alert) {
    const box = document.getElementById("status");
    if (!box) return;
    const head = alert.state === "closed" ? t("alert_closed") : alert.state === "acknowledged" ? t("alert_ack") : t("alert_new");
    box.textContent = `${head}: ${alert.device_code} — ${t("kind")[alert.kind] || alert.kind} (${when(alert.updated_at)})`;
  }

  function connect() {
    if (source) source.close();
    lang = pageLang();
    stations.clear();
    source = new EventSource(`/api/iot/stream?lang=${encodeURIComponent(lang)}`);
    source.addEventListener("stations", (e) => {
      for (const f of JSON.parse(e.data).features) stations.set(f.id, f);
      redraw();
    });
    source.addEventListener("alert", (e) => notice(JSON.parse(e.data)));
  }

  function install(map) {
    map.addSource(SOURCE, { type: "geojson", data: collection() });
    map.addLayer({ id: "iot-live", type: "circle", source: SOURCE, paint: {
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 8, 4, 14, 9],
      "circle-color": ["get", "colour"],
      "circle-stroke-width": ["case", [">", ["get", "alerts"], 0], 3, 1],
      "circle-stroke-color": ["case", [">", ["get", "alerts"], 0], "#b71c1c", "#ffffff"],
    } });
    map.on("click", "iot-live", (e) => {
      const f = e.features && e.features[0] && stations.get(e.features[0].properties.device_code);
      if (f) new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(f.geometry.coordinates).setHTML(popupHtml(f.properties)).addTo(map);
    });
    map.on("mouseenter", "iot-live", () => { map.getCanvas().style.cursor = "pointer"; });
    map.on("mouseleave", "iot-live", () => { map.getCanvas().style.cursor = ""; });
    connect();
    setInterval(() => { if (pageLang() !== lang) connect(); }, 1000); // the language switch
  }

  // Only for callers who may read the devices layer (the page's configuration lists the readable
  // layers): no request at all is made for the others.
  const readable = () => {
    const config = window.gisIoc && window.gisIoc.config;
    return Boolean(config && (config.layers || []).some((l) => l.id === "iot_devices"));
  };
  let installed = false;
  setInterval(() => {
    const map = window.gisIocMap;
    if (installed || !map || !window.gisIoc || !window.gisIoc.ready || !readable()) return;
    installed = true;
    install(map);
  }, 250);
})();
