// The citizens' report page (gis_ioc): send a report with a point, photos and contact; follow it and rate
// the answer with the token given at intake. Talks only to gis_ioc (Open311 under /open311/v2).
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const lang = document.body.dataset.lang === "en" ? "en" : "vi";
  const T = JSON.parse($("texts").textContent);
  const headers = { "Accept-Language": lang };
  let map = null;
  let marker = null;

  const pad = (n) => String(n).padStart(2, "0");
  function when(iso) { // 10:30 28/04/2026, in Vietnam's time
    const d = new Date(new Date(iso).getTime() + 7 * 3600 * 1000);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} ${pad(d.getUTCDate())}/${pad(d.getUTCMonth() + 1)}/${d.getUTCFullYear()}`;
  }
  function show(el, cls, html) { el.className = cls; el.innerHTML = html; }
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  async function problemText(r) {
    try {
      const body = await r.json();
      if (Array.isArray(body) && body[0] && body[0].description) return body[0].description;
      if (body.detail) return body.detail;
    } catch (e) { /* not JSON */ }
    return `${T.error} (${r.status})`;
  }

  // ---- categories ----
  fetch("/open311/v2/services.json", { headers }).then((r) => r.json()).then((services) => {
    const select = $("category");
    for (const s of services) {
      const o = document.createElement("option");
      o.value = s.service_code;
      o.textContent = `${s.service_name} (${s.group})`;
      select.appendChild(o);
    }
  });

  // ---- the map: gis_ioc's own base layers, no tile server from outside ----
  function setPoint(lng, lat) {
    $("lat").value = lat.toFixed(7);
    $("long").value = lng.toFixed(7);
    $("point").textContent = `${T.picked}: ${lat.toFixed(5)}, ${lng.toFixed(5)}`;
    if (map) {
      if (!marker) marker = new maplibregl.Marker({ color: "#b71c1c" }).setLngLat([lng, lat]).addTo(map);
      else marker.setLngLat([lng, lat]);
    }
  }
  fetch("/api/map/config").then((r) => r.json()).then((config) => {
    const style = JSON.parse(JSON.stringify(config.style));
    for (const src of Object.values(style.sources)) {
      if (src.tiles) src.tiles = src.tiles.map((u) => location.origin + u);
    }
    const b = config.bbox;
    map = new maplibregl.Map({ container: "map", style, bounds: [[b[0], b[1]], [b[2], b[3]]], attributionControl: false, maxZoom: 19 });
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-right");
    map.on("click", (e) => setPoint(e.lngLat.lng, e.lngLat.lat));
  }).catch(() => { $("point").textContent = T.no_map; });

  $("locate").addEventListener("click", () => {
    if (!navigator.geolocation) { $("point").textContent = T.no_location; return; }
    navigator.geolocation.getCurrentPosition(
      (p) => { setPoint(p.coords.longitude, p.coords.latitude); if (map) map.flyTo({ center: [p.coords.longitude, p.coords.latitude], zoom: 17 }); },
      () => { $("point").textContent = T.no_location; },
      { enableHighAccuracy: true, timeout: 15000 },
    );
  });

  // ---- sending ----
  $("send").addEventListener("submit", async (e) => {
    e.preventDefault();
    const result = $("result");
    const form = $("send");
    if (!form.service_code.value) return show(result, "err", esc(T.need_category));
    if (!form.description.value.trim()) return show(result, "err", esc(T.need_description));
    if (!$("lat").value) return show(result, "err", esc(T.need_point));
    if ($("media").files.length > 3) return show(result, "err", esc(T.too_many_photos));
    $("submit").disabled = true;
    try {
      const r = await fetch("/open311/v2/requests.json", { method: "POST", body: new FormData(form), headers });
      if (r.status !== 201) return show(result, "err", esc(await problemText(r)));
      const got = (await r.json())[0];
      localStorage.setItem(`gis_ioc.feedback.${got.service_request_id}`, got.reporter_token);
      show(result, "ok", `<p>${esc(got.service_notice)}</p><p>${esc(T.report_id)}: <code>${esc(got.service_request_id)}</code><br>` +
        `${esc(T.token)}: <code>${esc(got.reporter_token)}</code></p>`);
      form.reset();
      $("lat").value = ""; $("long").value = "";
    } catch (err) {
      show(result, "err", esc(T.offline));
    } finally {
      $("submit").disabled = false;
    }
  });

  // ---- following and rating ----
  let followed = null;
  $("follow-id").addEventListener("change", () => {
    const saved = localStorage.getItem(`gis_ioc.feedback.${$("follow-id").value.trim()}`);
    if (saved) $("follow-token").value = saved;
  });
  $("follow-go").addEventListener("click", async () => {
    const id = $("follow-id").value.trim();
    const out = $("follow-result");
    if (!/^\d+$/.test(id)) return show(out, "err", esc(T.need_id));
    const r = await fetch(`/open311/v2/requests/${id}.json`, { headers });
    if (r.status !== 200) { $("rate").hidden = true; return show(out, "err", esc(await problemText(r))); }
    const req = (await r.json())[0];
    followed = id;
    show(out, "ok", `<p><b>${esc(req.service_name)}</b> — ${esc(req.agency_responsible)}</p>` +
      `<p>${esc(T.received)}: ${esc(when(req.requested_datetime))}<br>${esc(T.due)}: ${esc(when(req.expected_datetime))}</p>` +
      `<p>${esc(T.status)}: ${esc(req.status_notes)}</p>`);
    $("rate").hidden = req.detailed_status !== "resolved";
  });
  $("rate").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = $("rate");
    const body = { token: $("follow-token").value.trim(), score: Number(f.score.value), comment: f.comment.value || null, reopen: f.reopen.checked };
    const r = await fetch(`/api/feedback/reports/${followed}/rating`, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (r.status !== 200) return show($("follow-result"), "err", esc(await problemText(r)));
    f.hidden = true;
    show($("follow-result"), "ok", esc(T.thanks));
  });

  // ---- tabs ----
  for (const tab of document.querySelectorAll("#tabs button")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("#tabs button")) other.setAttribute("aria-selected", String(other === tab));
      $("send").hidden = tab.dataset.tab !== "send";
      $("follow").hidden = tab.dataset.tab !== "follow";
      if (tab.dataset.tab === "send" && map) map.resize();
    });
  }
})();
