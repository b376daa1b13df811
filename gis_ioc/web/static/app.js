/* gis_ioc web map: MapLibre GL over gis_ioc's own vector tiles; scenarios over a radius, a drawn
   polygon or picked communes; Vietnamese by default, English on a switch. No external requests. */
(function () {
  "use strict";
  const T = {
    vi: {
      title: "Bản đồ điều hành tỉnh Hưng Yên", search: "Tìm xã, phường (tên hoặc mã)", selection: "Vùng chọn",
      mode_identify: "Xem thông tin", mode_radius: "Bán kính", mode_polygon: "Vẽ vùng", mode_communes: "Chọn xã",
      radius: "Bán kính (m)", finish: "Đóng vùng", clear: "Xóa vùng chọn", scenario: "Lĩnh vực", period: "Kỳ",
      run: "Phân tích", layers: "Lớp bản đồ", hint_identify: "Bấm vào bản đồ để xem thông tin tại điểm đó.",
      hint_radius: "Bấm vào bản đồ để đặt tâm vòng tròn.", hint_polygon: "Bấm để thêm đỉnh, rồi bấm «Đóng vùng».",
      hint_communes: "Bấm vào xã trên bản đồ (hoặc tìm theo tên) để chọn hoặc bỏ chọn.",
      centre: "Tâm", communes_picked: "Xã đã chọn", vertices: "Số đỉnh", nothing: "Chưa chọn vùng.",
      running: "Đang phân tích…", loading: "Đang tải…", results: "Kết quả", run_id: "Mã lần phân tích",
      indicator: "Chỉ tiêu", value: "Giá trị", target: "Mục tiêu", status: "Đánh giá", flags: "Chỉ tiêu chưa đạt",
      no_flags: "Tất cả chỉ tiêu có mục tiêu đều đạt.", gap: "còn thiếu", above: "vượt", above_after: "so với chỉ tiêu",
      in_selection: "trong vùng chọn", commune: "Xã/phường", whole: "toàn vùng", quarter: "Quý", year: "Năm",
      flagged_communes: "Xã có chỉ tiêu chưa đạt", report: "Báo cáo PDF", export_gpkg: "Xuất GeoPackage (VN-2000)",
      export_xlsx: "Xuất Excel", parcel: "Thửa đất", nearby: "Gần đây", none_found: "Không tìm thấy.",
      s_met: "đạt", "s_not met": "chưa đạt", "s_no data": "không có số liệu", s_stale: "số liệu cũ",
      "s_no target": "không có mục tiêu", s_suppressed: "ẩn (bảo vệ dữ liệu cá nhân)", error: "Lỗi",
      communes_in: "Số xã trong vùng", change: "so với kỳ trước",
      username: "Tên đăng nhập", password: "Mật khẩu", code: "Mã OTP", login: "Đăng nhập", logout: "Đăng xuất",
      qgis_project: "Tải dự án QGIS",
      emergency: "Ứng phó sự cố", emergency_run: "Phân tích sự cố", incident: "Loại sự cố", rings: "Các vòng (m)",
      emergency_hint: "Bấm một điểm (chế độ «Bán kính» hoặc «Xem thông tin») hoặc vẽ vùng ngập, chọn loại sự cố rồi bấm «Phân tích sự cố».",
      i_flood: "Lũ lụt, ngập úng", i_fire: "Cháy, nổ", i_epidemic: "Dịch bệnh", i_environment: "Sự cố môi trường", i_rescue: "Cứu nạn, cứu hộ",
      em_title: "Sự cố", em_ring: "Phạm vi", em_people: "Dân số", em_households: "Hộ gia đình", em_within: "Số liệu tính gộp từ tâm sự cố đến hết mỗi vòng.",
      em_shelters: "Điểm sơ tán", em_capacity: "Sức chứa", em_evacuate: "Số dân cần sơ tán", em_short: "Còn thiếu chỗ",
      em_enough: "Đủ chỗ sơ tán", em_inside: "Trong vùng ảnh hưởng", em_schools: "Trường học", em_health: "Cơ sở y tế",
      em_nearest_h: "Bệnh viện gần nhất", em_nearest_f: "Đội PCCC và CNCH gần nhất", em_communes: "Xã, phường liên quan",
      em_print: "In kết quả", em_none: "Không có", em_withheld: "ẩn (ít hộ, bảo vệ dữ liệu cá nhân)",
      em_need_place: "Hãy bấm một điểm trên bản đồ hoặc vẽ vùng trước.", em_bad_rings: "Các vòng phải là số mét tăng dần, ví dụ 500, 1000, 2000.",
      feedback_queue: "Phản ánh cần xử lý", feedback_layer: "Phản ánh của người dân (90 ngày)", due: "hạn",
      overdue: "quá hạn", feedback_none: "Không có phản ánh đang chờ xử lý.",
      first_password_title: "Đổi mật khẩu lần đầu",
      first_password_help: "Tài khoản đang dùng mật khẩu được cấp một lần. Hãy đặt mật khẩu mới để tiếp tục: ít nhất 14 ký tự (8 ký tự khi đã bật bảo mật hai lớp), nên là một cụm từ dài, không chứa tên đăng nhập.",
      old_password: "Mật khẩu được cấp", new_password: "Mật khẩu mới", new_password_again: "Nhập lại mật khẩu mới",
      save_password: "Đổi mật khẩu", passwords_differ: "Hai lần nhập mật khẩu mới không giống nhau.",
      password_changed: "Đã đổi mật khẩu.", totp_open: "Bảo mật hai lớp", totp_title: "Bảo mật hai lớp (mã OTP)",
      totp_help1: "Bảo mật hai lớp là bắt buộc với quản trị viên và khi đăng nhập từ ngoài mạng của cơ quan nhà nước. Nhập mật khẩu để bắt đầu.",
      totp_help2: "Quét mã QR bằng ứng dụng xác thực trên điện thoại (Google Authenticator, Microsoft Authenticator…), rồi nhập mã 6 chữ số ứng dụng hiện ra.",
      totp_secret: "Hoặc nhập khóa bí mật:", totp_done: "Đã bật bảo mật hai lớp. Từ lần đăng nhập sau, hãy nhập mã OTP cùng mật khẩu.",
      continue: "Tiếp tục", confirm: "Xác nhận", close: "Đóng",
      change_password: "Cần đổi mật khẩu lần đầu", plans: "Bản vẽ quy hoạch",
      overview: "Toàn tỉnh", o_met: "Đạt", o_not_met: "Chưa đạt", o_stale: "Số liệu cũ", o_other: "Chưa đánh giá",
      o_sector: "Lĩnh vực", o_period: "Kỳ", o_behind: "Xã, phường còn nhiều chỉ tiêu chưa đạt nhất",
      o_missed: "chỉ tiêu chưa đạt", o_trend: "Xu hướng 4 kỳ gần nhất (các chỉ tiêu có số liệu theo kỳ)", o_communes_not_met: "xã, phường chưa đạt",
      o_province_not_met: "toàn tỉnh chưa đạt", o_click: "Bấm vào một chỉ tiêu để xem các xã, phường chưa đạt trên bản đồ.",
      o_none_behind: "Không có xã, phường nào chưa đạt chỉ tiêu.", o_totals: "Số chỉ tiêu của tỉnh",
      o_loading: "Đang tổng hợp số liệu toàn tỉnh…", o_not_met_trend: "Số chỉ tiêu chưa đạt theo kỳ",
      legend: "Chú giải", legend_flagged: "Xã, phường chưa đạt", legend_selection: "Vùng chọn",
      legend_picked: "Xã, phường đã chọn", legend_labels: "Tên xã, phường", map_period: "Kỳ số liệu",
      session_expired: "Phiên làm việc đã hết hạn (sau một thời gian không thao tác). Hãy đăng nhập lại: bản đồ và vùng chọn vẫn được giữ nguyên.",
      relogged: "Đã đăng nhập lại.",
    },
    en: {
      title: "Hưng Yên operations map", search: "Find a commune or ward (name or code)", selection: "Selection",
      mode_identify: "Identify", mode_radius: "Radius", mode_polygon: "Draw area", mode_communes: "Pick communes",
      radius: "Radius (m)", finish: "Close area", clear: "Clear selection", scenario: "Sector", period: "Period",
      run: "Analyse", layers: "Layers", hint_identify: "Click the map to see what is there.",
      hint_radius: "Click the map to place the centre of the circle.", hint_polygon: "Click to add corners, then «Close area».",
      hint_communes: "Click communes on the map (or search by name) to pick or drop them.",
      centre: "Centre", communes_picked: "Communes picked", vertices: "Corners", nothing: "Nothing selected.",
      running: "Analysing…", loading: "Loading…", results: "Results", run_id: "Analysis no.",
      indicator: "Indicator", value: "Value", target: "Target", status: "Status", flags: "Targets not met",
      no_flags: "Every indicator with a target is met.", gap: "short by", above: "above the target by", above_after: "",
      in_selection: "inside the selection", commune: "Commune", whole: "whole selection", quarter: "Q", year: "Year",
      flagged_communes: "Communes with targets not met", report: "PDF report", export_gpkg: "GeoPackage (VN-2000)",
      export_xlsx: "Excel", parcel: "Parcel", nearby: "Nearby", none_found: "Nothing found.",
      s_met: "met", "s_not met": "not met", "s_no data": "no data", s_stale: "stale", "s_no target": "no target",
      s_suppressed: "suppressed (privacy)", error: "Error", communes_in: "Communes in the selection",
      change: "from the previous period",
      username: "User name", password: "Password", code: "OTP code", login: "Log in", logout: "Log out",
      qgis_project: "Download the QGIS project",
      emergency: "Emergency response", emergency_run: "Analyse the incident", incident: "Incident", rings: "Rings (m)",
      emergency_hint: "Click a point (Radius or Identify mode) or draw the flooded area, choose the incident, then «Analyse the incident».",
      i_flood: "Flood", i_fire: "Fire or explosion", i_epidemic: "Epidemic", i_environment: "Environmental incident", i_rescue: "Rescue",
      em_title: "Incident", em_ring: "Ring", em_people: "People", em_households: "Households", em_within: "Figures are cumulative from the centre to the end of each ring.",
      em_shelters: "Shelters", em_capacity: "Capacity", em_evacuate: "People to evacuate", em_short: "Places short",
      em_enough: "Enough shelter places", em_inside: "Inside the affected area", em_schools: "Schools", em_health: "Health facilities",
      em_nearest_h: "Nearest hospitals", em_nearest_f: "Nearest fire and rescue stations", em_communes: "Communes concerned",
      em_print: "Print", em_none: "None", em_withheld: "withheld (few households: privacy)",
      em_need_place: "Click a point on the map or draw an area first.", em_bad_rings: "Rings are increasing metres, e.g. 500, 1000, 2000.",
      feedback_queue: "Citizen reports to handle", feedback_layer: "Citizen reports (90 days)", due: "due",
      overdue: "overdue", feedback_none: "No report is waiting.",
      first_password_title: "Change the first password",
      first_password_help: "This account still has its one-time password. Choose a new one to go on: at least 14 characters (8 once a second factor is enrolled), best a long phrase, without the user name.",
      old_password: "One-time password", new_password: "New password", new_password_again: "New password again",
      save_password: "Change the password", passwords_differ: "The two new passwords differ.",
      password_changed: "Password changed.", totp_open: "Second factor", totp_title: "Second factor (OTP code)",
      totp_help1: "A second factor is required of administrators and for logins from outside the government network. Enter your password to start.",
      totp_help2: "Scan the QR code with an authenticator app (Google Authenticator, Microsoft Authenticator…), then enter the 6-digit code it shows.",
      totp_secret: "Or type the secret key:", totp_done: "Second factor enrolled. From the next login, enter the OTP code with the password.",
      continue: "Continue", confirm: "Confirm", close: "Close",
      change_password: "First password must be changed", plans: "Planning drawings",
      overview: "Whole province", o_met: "Met", o_not_met: "Not met", o_stale: "Stale", o_other: "Not judged",
      o_sector: "Sector", o_period: "Period", o_behind: "Communes with the most targets not met",
      o_missed: "targets not met", o_trend: "Trend over the last 4 periods (indicators reported per period)", o_communes_not_met: "communes not met",
      o_province_not_met: "province not met", o_click: "Click an indicator to see its communes not met on the map.",
      o_none_behind: "No commune misses a target.", o_totals: "The province's indicators",
      o_loading: "Adding up the whole province…", o_not_met_trend: "Targets not met per period",
      legend: "Legend", legend_flagged: "Communes not met", legend_selection: "Selection",
      legend_picked: "Communes picked", legend_labels: "Commune names", map_period: "Period",
      session_expired: "The session has ended (after a while without activity). Log in again: the map and the selection are kept.",
      relogged: "Logged in again.",
    },
  };
  const GROUPS = {
    administrative: { vi: "Hành chính", en: "Administrative" }, land: { vi: "Đất đai", en: "Land" },
    housing: { vi: "Nhà ở", en: "Housing" }, infrastructure: { vi: "Hạ tầng", en: "Infrastructure" },
    planning: { vi: "Quy hoạch", en: "Planning" }, iot: { vi: "Cảm biến IoT", en: "IoT sensors" },
    citizen: { vi: "Phản ánh của người dân", en: "Citizen reports" },
  };
  // the server's messages by their code (`code` in its problem answers), in the page's language
  const MESSAGES = {
    vi: {
      "auth.failed": "Thông tin đăng nhập không hợp lệ.",
      "auth.login_failed": "Tên đăng nhập, mật khẩu hoặc mã OTP không đúng, hoặc tài khoản hiện không đăng nhập được (bị khóa, chưa kích hoạt, cần mã OTP khi ở ngoài mạng cơ quan nhà nước).",
      "auth.session_ended": "Phiên làm việc đã hết hạn. Vui lòng đăng nhập lại.",
      "auth.key_invalid": "Khóa API không hợp lệ.",
      "auth.basic_failed": "Tên đăng nhập hoặc khóa API không đúng.",
      "auth.first_password": "Cần đổi mật khẩu được cấp trước khi dùng hệ thống.",
      "auth.same_password": "Mật khẩu mới phải khác mật khẩu cũ.",
      "auth.reauth_needed": "Cần nhập mật khẩu (và mã OTP nếu đã bật) để tiếp tục.",
      "auth.reauth_failed": "Mật khẩu hoặc mã OTP không đúng.",
      "auth.code_format": "Mã OTP gồm 6 chữ số.",
      "auth.totp_not_started": "Chưa bắt đầu bật bảo mật hai lớp, hoặc đã quá 10 phút: hãy bắt đầu lại.",
      "auth.totp_mismatch": "Mã OTP không khớp: kiểm tra giờ của điện thoại rồi thử lại.",
      "auth.password_too_long": "Mật khẩu quá dài.",
      "auth.password_min_14": "Mật khẩu phải có ít nhất 14 ký tự (8 ký tự khi đã bật bảo mật hai lớp).",
      "auth.password_min_8": "Mật khẩu phải có ít nhất 8 ký tự.",
      "auth.password_has_username": "Mật khẩu không được chứa tên đăng nhập.",
      "auth.password_repetitive": "Mật khẩu lặp lại quá ít ký tự khác nhau.",
      "auth.password_weak": "Mật khẩu quá phổ biến hoặc dễ đoán: hãy dùng một cụm từ dài gồm các từ không liên quan.",
      "auth.rate_limited": "Thử quá nhiều lần. Vui lòng chờ một phút rồi thử lại.",
      "auth.login_needed": "Hãy đăng nhập để xem tổng quan toàn tỉnh.",
    },
    en: {
      "auth.failed": "The credentials are not valid.",
      "auth.login_failed": "The user name, password or code is wrong, or the account cannot log in now (locked, not active, or a code is needed outside the government network).",
      "auth.session_ended": "The session has ended. Please log in again.",
      "auth.key_invalid": "The API key is not valid.",
      "auth.basic_failed": "The user name or API key is wrong.",
      "auth.first_password": "Change the one-time password before using the system.",
      "auth.same_password": "The new password must differ from the old one.",
      "auth.reauth_needed": "Enter your password (and OTP code if enrolled) to go on.",
      "auth.reauth_failed": "The password or code is wrong.",
      "auth.code_format": "OTP codes have 6 digits.",
      "auth.totp_not_started": "No enrolment is waiting, or it is older than 10 minutes: start again.",
      "auth.totp_mismatch": "The code does not match: check the phone's clock and try again.",
      "auth.password_too_long": "The password is too long.",
      "auth.password_min_14": "The password needs at least 14 characters (8 once a second factor is enrolled).",
      "auth.password_min_8": "The password needs at least 8 characters.",
      "auth.password_has_username": "The password must not contain the user name.",
      "auth.password_repetitive": "The password repeats too few different characters.",
      "auth.password_weak": "The password is too common or easy to guess: choose a long phrase of unrelated words.",
      "auth.rate_limited": "Too many attempts. Please wait a minute and try again.",
      "auth.login_needed": "Log in to see the province at a glance.",
    },
  };
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = {
    lang: params.get("lang") || localStorage.getItem("gis_ioc.lang") || document.body.dataset.lang || "vi",
    mode: "identify", centre: null, polygon: [], polygonClosed: false, communes: new Map(), point: null,
    config: null, lastRun: null, flagged: [], ready: false,
  };
  window.gisIoc = state;
  const t = (k) => (T[state.lang] && T[state.lang][k]) || T.vi[k] || k;
  const tx = (o) => (o && typeof o === "object" ? o[state.lang] || o.vi : o);
  const fmt = (v, digits) => {
    if (v === null || v === undefined) return "—";
    const d = digits === undefined ? 2 : digits;
    const n = Math.abs(Number(v)) < 0.5 * Math.pow(10, -d) ? 0 : Number(v); // never "-0"
    return n.toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB", { maximumFractionDigits: d });
  };
  // people, households and other whole counts are shown without decimals (as the reports show them)
  const WHOLE_UNITS = ["người", "hộ", "trường", "giường", "ngày", "chỗ", "cơ sở", "xã"];
  const fmtU = (v, unit) => fmt(v, WHOLE_UNITS.includes(String(unit || "").trim()) ? 0 : 2);
  // "2026-Q3" → "Quý III/2026" (English: "Q3 2026"); "2026" → "Năm 2026"
  const periodText = (p) => {
    const m = /^(\d{4})(?:-Q([1-4]))?$/.exec(String(p || ""));
    if (!m) return String(p || "");
    if (!m[2]) return `${t("year")} ${m[1]}`;
    return state.lang === "vi" ? `${t("quarter")} ${["I", "II", "III", "IV"][m[2] - 1]}/${m[1]}` : `Q${m[2]} ${m[1]}`;
  };
  // the distance to the target in words that follow the indicator's direction
  const gapText = (gap, unit, direction) => {
    const amount = `${fmtU(Math.abs(gap), unit)} ${unit || ""}`.trim();
    if (direction === "lower") return `${t("above")} ${amount}${t("above_after") ? " " + t("above_after") : ""}`;
    return `${t("gap")} ${amount}`;
  };
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  function status(text, isError) {
    const el = $("status");
    el.textContent = text || "";
    el.className = text ? (isError ? "on error" : "on") : "";
  }

  async function api(url, options) {
    const res = await fetch(url, options);
    const type = res.headers.get("content-type") || "";
    const body = type.includes("json") ? await res.json() : await res.text();
    if (!res.ok) {
      const err = new Error((body && body.detail) ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : res.statusText);
      err.code = body && body.code;
      // a session that ended mid-use reads as no account: the doors for accounts answer 401
      if (res.status === 401 && (err.code === "auth.session_ended" || (err.code === "auth.login_needed" && state.user))) sessionExpired();
      throw err;
    }
    return body;
  }
  // an error as the reader should see it: the server's message translated by its code when it has one
  const errText = (err) => (err && err.code && ((MESSAGES[state.lang] || {})[err.code] || MESSAGES.vi[err.code])) || err.message;

  function applyLang() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
    $("lang").textContent = state.lang === "vi" ? "EN" : "VI";
    document.title = t("title") + " — IOC";
    if (state.config) { fillSelects(); buildLayerList(); }
    if (state.ready) { showQueue(); fillIncidents(); }
    describeSelection();
    if (state.lastRun) renderResults(state.lastRun);
    if (state.overview) renderOverview(state.overview);
    setShownPeriod();
    renderLegend();
  }

  function fillSelects() {
    const sc = $("scenario"), pe = $("period");
    const keepS = sc.value, keepP = pe.value;
    sc.innerHTML = state.config.scenarios.map((s) => `<option value="${esc(s.id)}" title="${esc(tx(s.description))}">${esc(tx(s.title))}</option>`).join("");
    pe.innerHTML = state.config.periods.map((p) => `<option value="${esc(p)}">${esc(periodText(p))}</option>`).join("");
    if (keepS) sc.value = keepS; else if (params.get("scenario")) sc.value = params.get("scenario");
    if (keepP) pe.value = keepP;
  }

  // ---- map ----
  let map;
  function absoluteStyle(style) {
    const copy = JSON.parse(JSON.stringify(style));
    for (const src of Object.values(copy.sources)) {
      if (src.tiles) src.tiles = src.tiles.map((u) => location.origin + u);
    }
    if (copy.glyphs) copy.glyphs = location.origin + copy.glyphs;
    return copy;
  }

  const empty = () => ({ type: "FeatureCollection", features: [] });

  function addOverlays() {
    map.addSource("selection", { type: "geojson", data: empty() });
    map.addLayer({ id: "selection-fill", type: "fill", source: "selection", filter: ["==", ["geometry-type"], "Polygon"], paint: { "fill-color": "#1565c0", "fill-opacity": 0.12 } });
    map.addLayer({ id: "selection-line", type: "line", source: "selection", paint: { "line-color": "#1565c0", "line-width": 2.5, "line-dasharray": [2, 1] } });
    map.addLayer({ id: "selection-point", type: "circle", source: "selection", filter: ["==", ["geometry-type"], "Point"], paint: { "circle-radius": 6, "circle-color": "#1565c0", "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
    map.addLayer({ id: "picked-communes", type: "line", source: "communes", "source-layer": "communes", filter: ["in", ["get", "code"], ["literal", []]], paint: { "line-color": "#1565c0", "line-width": 3 } });
    map.addLayer({ id: "flagged-fill", type: "fill", source: "communes", "source-layer": "communes", filter: ["in", ["get", "code"], ["literal", []]], paint: { "fill-color": "#c62828", "fill-opacity": 0.45 } });
    map.addLayer({ id: "flagged-line", type: "line", source: "communes", "source-layer": "communes", filter: ["in", ["get", "code"], ["literal", []]], paint: { "line-color": "#b71c1c", "line-width": 3 } });
  }

  function circle(centre, metres, steps) {
    const [lon, lat] = centre, ring = [];
    const dy = metres / 110574, dx = metres / (111320 * Math.cos((lat * Math.PI) / 180));
    for (let i = 0; i <= steps; i++) {
      const a = (i / steps) * 2 * Math.PI;
      ring.push([lon + dx * Math.cos(a), lat + dy * Math.sin(a)]);
    }
    return { type: "Polygon", coordinates: [ring] };
  }

  function drawSelection() {
    const fc = empty();
    if (state.mode === "radius" && state.centre) {
      fc.features.push({ type: "Feature", properties: {}, geometry: circle(state.centre, radiusValue(), 96) });
      fc.features.push({ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: state.centre } });
    } else if (state.mode === "polygon" && state.polygon.length) {
      const ring = state.polygon.slice();
      if (state.polygonClosed && ring.length >= 3) {
        fc.features.push({ type: "Feature", properties: {}, geometry: { type: "Polygon", coordinates: [[...ring, ring[0]]] } });
      } else {
        fc.features.push({ type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: ring.length > 1 ? ring : [ring[0], ring[0]] } });
        ring.forEach((c) => fc.features.push({ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: c } }));
      }
    } else if (state.mode === "identify" && state.point) {
      fc.features.push({ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: state.point } });
    }
    if (map.getSource("selection")) map.getSource("selection").setData(fc);
    if (map.getLayer("picked-communes")) {
      map.setFilter("picked-communes", ["in", ["get", "code"], ["literal", state.mode === "communes" ? [...state.communes.keys()] : []]]);
    }
    describeSelection();
    renderLegend();
  }

  function radiusValue() {
    const v = Number($("radius").value);
    return Number.isFinite(v) && v > 0 ? v : 2000;
  }

  function describeSelection() {
    let text = t("hint_" + state.mode);
    if (state.mode === "radius" && state.centre) text = `${t("centre")}: ${state.centre[0].toFixed(5)}, ${state.centre[1].toFixed(5)} — ${fmt(radiusValue(), 0)} m`;
    if (state.mode === "polygon" && state.polygon.length) text = `${t("vertices")}: ${state.polygon.length}` + (state.polygonClosed ? " ✓" : "");
    if (state.mode === "communes" && state.communes.size) text = `${t("communes_picked")}: ${[...state.communes.values()].join(", ")}`;
    $("selection-text").textContent = text;
    $("radius-row").hidden = state.mode !== "radius";
    $("polygon-row").hidden = state.mode !== "polygon";
  }

  function setFlagged(codes, label) {
    state.flagged = codes;
    state.flagLabel = codes.length ? label || null : null;
    const filter = ["in", ["get", "code"], ["literal", codes]];
    map.setFilter("flagged-fill", filter);
    map.setFilter("flagged-line", filter);
    if (!codes.length) { $("flagged-communes").hidden = true; document.querySelectorAll("[data-flag-indicator].active").forEach((b) => b.classList.remove("active")); }
    renderLegend();
  }

  // ---- identify ----
  async function identifyAt(lngLat) {
    state.point = [lngLat.lng, lngLat.lat];
    drawSelection();
    try {
      const r = await api(`/api/identify?lon=${lngLat.lng}&lat=${lngLat.lat}&radius=500`);
      let html = "";
      if (r.commune) html += `<h4>${esc(r.commune.properties.name)}</h4><div>${esc(t("commune"))}: ${esc(r.commune.properties.code)} · ${fmt(r.commune.properties.area_km2)} km²</div>`;
      if (r.parcel) {
        const p = r.parcel.properties;
        const lb = r.parcel.labels || {};
        html += `<h4>${esc(t("parcel"))} ${esc(p.parcel_code)}</h4><div>${esc(tx(lb.land_use) || p.land_use)} (${esc(p.land_use)}) · ${fmt(p.area_m2, 0)} m² · ${esc(tx(lb.legal_status) || p.legal_status || "")}</div>`;
      }
      if (r.nearby.length) {
        html += `<h4>${esc(t("nearby"))} (500 m)</h4><ul>` + r.nearby.map((n) => `<li>${esc(n.name || n.code)} <small>(${esc(tx(n.title))}, ${fmt(n.distance_m, 0)} m)</small></li>`).join("") + "</ul>";
      }
      if (!html) html = esc(t("none_found"));
      new maplibregl.Popup({ maxWidth: "none" }).setLngLat(lngLat).setHTML(`<div class="identify">${html}</div>`).addTo(map);
    } catch (e) {
      status(`${t("error")}: ${e.message}`, true);
    }
  }

  function onClick(e) {
    if (state.mode === "identify") return identifyAt(e.lngLat);
    if (state.mode === "radius") { state.centre = [e.lngLat.lng, e.lngLat.lat]; return drawSelection(); }
    if (state.mode === "polygon") {
      if (state.polygonClosed) { state.polygon = []; state.polygonClosed = false; }
      state.polygon.push([e.lngLat.lng, e.lngLat.lat]);
      return drawSelection();
    }
    if (state.mode === "communes") {
      const hits = map.queryRenderedFeatures(e.point, { layers: ["communes-fill"] });
      if (!hits.length) return;
      const code = String(hits[0].properties.code), name = hits[0].properties.name;
      if (state.communes.has(code)) state.communes.delete(code); else state.communes.set(code, name);
      drawSelection();
    }
  }

  // ---- search ----
  let searchTimer = null, searchItems = [], active = -1;
  function renderSearch() {
    const ul = $("search-results");
    ul.innerHTML = searchItems.map((c, i) => `<li role="option" data-i="${i}" aria-selected="${i === active}">${esc(c.name)}<span class="code">${esc(c.code)}</span></li>`).join("");
    ul.hidden = !searchItems.length;
  }
  async function runSearch() {
    const q = $("search").value.trim();
    if (!q) { searchItems = []; renderSearch(); return; }
    try {
      const r = await api(`/api/communes?q=${encodeURIComponent(q)}&limit=10`);
      if ($("search").value.trim() !== q) return;
      searchItems = r.communes; active = searchItems.length ? 0 : -1; renderSearch();
    } catch (e) { status(`${t("error")}: ${e.message}`, true); }
  }
  function pick(c) {
    $("search").value = c.name;
    searchItems = []; renderSearch();
    map.fitBounds([[c.bbox[0], c.bbox[1]], [c.bbox[2], c.bbox[3]]], { padding: 40, duration: 0 });
    state.picked = c;
    if (state.mode === "communes") state.communes.set(c.code, c.name);
    else if (state.mode === "radius" || state.mode === "identify") { state.centre = c.centre; if (state.mode === "identify") setMode("radius"); }
    drawSelection();
  }

  function setMode(mode) {
    state.mode = mode;
    document.querySelectorAll('input[name="mode"]').forEach((el) => { el.checked = el.value === mode; });
    map.getCanvas().style.cursor = mode === "identify" ? "" : "crosshair";
    drawSelection();
  }

  // ---- scenario ----
  function selectionBody() {
    if (state.mode === "radius" && state.centre) return { radius: { at: state.centre, metres: radiusValue() } };
    if (state.mode === "polygon" && state.polygon.length >= 3) return { zone: { type: "Polygon", coordinates: [[...state.polygon, state.polygon[0]]] } };
    if (state.mode === "communes" && state.communes.size) return { communes: [...state.communes.keys()] };
    if (state.mode === "identify" && state.point) return { point: state.point };
    return null;
  }

  async function runScenario() {
    const sel = selectionBody();
    if (!sel) { status(t("nothing"), true); return; }
    if (state.mode === "polygon") { state.polygonClosed = true; drawSelection(); }
    const scenario = $("scenario").value, period = $("period").value;
    status(t("running"));
    $("run").disabled = true;
    try {
      const run = await api(`/api/scenarios/${encodeURIComponent(scenario)}/run`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ period, ...sel }),
      });
      state.lastRun = run;
      renderResults(run);
      const codes = [...new Set(run.flags.filter((f) => f.where !== "total").map((f) => f.where))];
      $("flagged-communes").hidden = true;
      setFlagged(codes, tx((state.config.scenarios.find((x) => x.id === run.scenario) || {}).title));
      setShownPeriod(run.period);
      status("");
    } catch (e) {
      status(`${t("error")}: ${e.message}`, true);
    } finally {
      $("run").disabled = false;
    }
  }

  function statusCell(s) {
    const cls = s === "met" ? "status-met" : s === "not met" ? "status-not-met" : "status-other";
    return `<span class="${cls}">${esc(t("s_" + s))}</span>`;
  }

  function renderResults(run) {
    const names = Object.fromEntries(run.communes.map((c) => [c.code, c.name]));
    const rows = run.indicators.map((ind) => {
      const f = ind.total;
      const bad = f.status === "not met";
      const change = f.change === null || f.change === undefined || fmtU(f.change, ind.unit) === "0" ? "" : ` <small title="${esc(t("change"))}">(${f.change > 0 ? "+" : ""}${fmtU(f.change, ind.unit)})</small>`;
      return `<tr class="${bad ? "not-met" : ""}" data-indicator="${esc(ind.id)}"><td>${esc(tx(ind.name))} <small>(${esc(ind.unit)})</small></td><td class="num">${fmtU(f.value, ind.unit)}${change}</td><td class="num">${fmtU(f.target, ind.unit)}</td><td>${statusCell(f.status)}</td></tr>`;
    }).join("");
    const directions = Object.fromEntries(run.indicators.map((i) => [i.id, i.direction]));
    const shares = Object.fromEntries(run.communes.map((c) => [c.code, c.share]));
    const place = (f) => {
      if (f.where === "total") return t("whole");
      const name = f.commune || names[f.where] || f.where;
      const share = shares[f.where];
      return share !== undefined && share < 0.995 ? `${name} (${fmt(100 * share, 0)} % ${t("in_selection")})` : name;
    };
    const flags = run.flags.map((f) => `<li class="flag" data-where="${esc(f.where)}">${esc(place(f))}: ${esc(tx(f.name))} ${fmtU(f.value, f.unit)} / ${fmtU(f.target, f.unit)} ${esc(f.unit)} (${esc(gapText(f.gap, f.unit, f.direction || directions[f.indicator]))})</li>`).join("");
    const flaggedCodes = [...new Set(run.flags.filter((f) => f.where !== "total").map((f) => f.where))];
    const scenario = encodeURIComponent(run.scenario);
    $("results").innerHTML = `<h2>${esc(t("results"))}</h2>
      <p class="hint">${esc(periodText(run.period))} · ${esc(t("communes_in"))}: ${run.communes.length} · ${esc(t("run_id"))} ${run.id}</p>
      <table><thead><tr><th>${esc(t("indicator"))}</th><th>${esc(t("value"))}</th><th>${esc(t("target"))}</th><th>${esc(t("status"))}</th></tr></thead><tbody>${rows}</tbody></table>
      <h2>${esc(t("flags"))} (${run.flags.length})</h2>
      ${run.flags.length ? `<ul class="flags">${flags}</ul>` : `<p class="status-met">${esc(t("no_flags"))}</p>`}
      ${flaggedCodes.length ? `<p><b>${esc(t("flagged_communes"))}:</b> <span id="flagged-list">${flaggedCodes.map((c) => esc(names[c] || c)).join(", ")}</span></p>` : ""}
      <p class="actions"><a href="/api/reports?runs=${run.id}&format=pdf" target="_blank" rel="noopener">${esc(t("report"))}</a>
      <a href="/api/exports/runs/${run.id}?format=gpkg&crs=EPSG:9209${flaggedCodes.length ? "&flagged=true" : ""}">${esc(t("export_gpkg"))}</a>
      <a href="/api/exports/runs/${run.id}?format=xlsx">${esc(t("export_xlsx"))}</a></p>`;
    void scenario;
  }

  // ---- account: the session is an HttpOnly cookie set by /api/auth/login ----
  async function showAccount() {
    const me = await api("/api/auth/session").catch(() => ({ authenticated: false }));
    if (me.authenticated) {
      $("who").textContent = me.username + (me.must_change_password ? ` (${t("change_password")})` : "");
      $("who").hidden = false; $("logout").hidden = false; $("login").hidden = true;
      $("qgis-project").hidden = Boolean(me.must_change_password);
      $("qgis-project").href = `/api/qgis-project?lang=${state.lang}`;
      $("totp-open").hidden = Boolean(me.must_change_password || me.second_factor || me.via !== "session");
      state.user = me;
      if (me.must_change_password) openDialog("password-form");
      if (state.ready) showQueue(); // the map came first: the queue now that we know who is asking
      loadOverview();
    } else {
      $("login").hidden = false; $("who").hidden = true; $("logout").hidden = true; $("qgis-project").hidden = true;
      $("totp-open").hidden = true;
      state.user = null;
      $("overview").hidden = true;
    }
  }

  // ---- logging in again: refusals explained, a session that ended mid-use ----
  function loginMessage(text) {
    $("login-message").textContent = text || "";
    $("login-message").hidden = !text;
  }
  // the server answers every refused login alike (no account is given away): say what may be behind it,
  // how long a lockout lasts and whom to ask
  function loginHelp() {
    const a = (state.config && state.config.auth) || { max_failed: 5, lockout_minutes: 30, inactive_days: 45 };
    return state.lang === "en"
      ? `After ${a.max_failed} wrong attempts in a row the account is locked for ${a.lockout_minutes} minutes: wait that long, then try again. An account unused for more than ${a.inactive_days} days (expired), locked by an administrator or not yet active is reopened by the system administrator of the province's IOC centre: ask them.`
      : `Sau ${a.max_failed} lần nhập sai liên tiếp, tài khoản bị khóa ${a.lockout_minutes} phút: hãy chờ hết thời gian đó rồi thử lại. Tài khoản không dùng quá ${a.inactive_days} ngày (hết hạn), bị quản trị viên khóa hoặc chưa kích hoạt: hãy liên hệ quản trị viên hệ thống của Trung tâm IOC tỉnh để mở lại.`;
  }
  function sessionExpired() {
    if (state.expired) return;
    state.expired = true;
    state.relogin = Boolean(state.user); // mid-use: log in again without leaving the map
    state.user = null;
    $("login").hidden = false; $("who").hidden = true; $("logout").hidden = true; $("qgis-project").hidden = true;
    $("totp-open").hidden = true;
    loginMessage(t("session_expired"));
    $("login-user").focus();
  }
  async function login(e) {
    e.preventDefault();
    const body = { username: $("login-user").value.trim(), password: $("login-password").value };
    if ($("login-code").value.trim()) body.code = $("login-code").value.trim();
    try {
      await api("/api/auth/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      if (state.relogin && state.ready) { // the session ended mid-use: carry on where the leader was
        state.relogin = false; state.expired = false;
        $("login-password").value = ""; $("login-code").value = "";
        loginMessage("");
        await showAccount();
        status(t("relogged"));
        setTimeout(() => status(""), 3000);
        return;
      }
      location.reload(); // the layers this account may see come with the map's configuration
    } catch (err) {
      $("login-password").value = "";
      const text = errText(err);
      status(`${t("error")}: ${text}`, true);
      loginMessage(err.code === "auth.login_failed" ? `${text} ${loginHelp()}` : text);
    }
  }

  // ---- the account's own dialogs: the first password, the second factor ----
  function openDialog(form) {
    for (const id of ["password-form", "totp-form"]) $(id).hidden = id !== form;
    const dialog = $("account-dialog");
    if (!dialog.open) dialog.showModal();
  }
  const post = (url, body) => api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  async function changePassword(e) {
    e.preventDefault();
    $("pw-error").textContent = "";
    if ($("pw-new").value !== $("pw-again").value) { $("pw-error").textContent = t("passwords_differ"); return; }
    try {
      await post("/api/auth/password", { old_password: $("pw-old").value, new_password: $("pw-new").value });
      status(t("password_changed"));
      location.reload(); // the session goes on; the map loads with the account's layers
    } catch (err) {
      $("pw-error").textContent = errText(err);
    }
  }
  async function startTotp() {
    $("totp-error").textContent = "";
    try {
      const answer = await post("/api/auth/totp", { password: $("totp-password").value });
      $("totp-qr").innerHTML = answer.qr_svg; // drawn by our server (segno): the secret never leaves it
      $("totp-secret").textContent = answer.secret;
      $("totp-step1").hidden = true; $("totp-step2").hidden = false;
      $("totp-code").focus();
    } catch (err) {
      $("totp-error").textContent = errText(err);
    }
  }
  async function confirmTotp() {
    $("totp-error").textContent = "";
    try {
      await post("/api/auth/totp/confirm", { code: $("totp-code").value.trim(), secret: $("totp-secret").textContent });
      $("totp-step2").hidden = true; $("totp-done").hidden = false; $("totp-open").hidden = true;
    } catch (err) {
      $("totp-error").textContent = errText(err);
    }
  }
  function openTotp() {
    $("totp-step1").hidden = false; $("totp-step2").hidden = true; $("totp-done").hidden = true;
    $("totp-password").value = ""; $("totp-code").value = ""; $("totp-error").textContent = "";
    openDialog("totp-form");
  }
  async function logout() {
    await api("/api/auth/logout", { method: "POST" }).catch(() => null);
    location.reload();
  }

  // ---- planning drawings (approved), as raster overlays off by default ----
  async function addPlans() {
    const plans = await api("/api/plans").catch(() => []);
    for (const p of plans) {
      const id = `plan-${p.id}`;
      map.addSource(id, { type: "raster", tiles: [`${location.origin}/api/plans/${p.id}/tiles/{z}/{x}/{y}.png`], tileSize: 256 });
      map.addLayer({ id, type: "raster", source: id, layout: { visibility: "none" }, paint: { "raster-opacity": 0.8 } }, "selection-fill");
      state.config.layers.push({
        id, title: { vi: p.name, en: p.name }, group: "planning", geometry: "Raster", base: false, min_zoom: 0,
        style_layers: [id], legend: [{ fill: "#e0c8a0", stroke: "#8d6e63" }],
      });
    }
  }

  // ---- emergency response: rings around a point (or a drawn zone), what and who is exposed, printable ----
  async function fillIncidents() {
    const settings = await api("/api/emergency").catch(() => null);
    const incidents = (settings && settings.incidents) || ["flood", "fire", "epidemic", "environment", "rescue"];
    const chosen = $("incident").value;
    $("incident").innerHTML = incidents.map((i) => `<option value="${esc(i)}">${esc(t("i_" + i))}</option>`).join("");
    if (chosen) $("incident").value = chosen;
  }
  function emergencyPlace() {
    if (state.mode === "polygon" && state.polygon.length >= 3) return { zone: { type: "Polygon", coordinates: [[...state.polygon, state.polygon[0]]] } };
    const at = state.centre || state.point;
    return at ? { at } : null;
  }
  const km = (m) => `${fmt(m / 1000, 1)} km`;
  const count = (v) => (v === null || v === undefined ? esc(t("em_withheld")) : fmt(v, 0));
  const listOf = (items, describe) => (items.length ? `<ul>${items.map((x) => `<li>${describe(x)}</li>`).join("")}</ul>` : `<p>${esc(t("em_none"))}</p>`);
  function renderEmergency(run) {
    const s = run.shelters || {};
    const rings = run.rings.map((r) => `<tr><td>${esc(r.label)}</td><td class="num">${count(r.people_within)}</td><td class="num">${count(r.households_within)}</td></tr>`).join("");
    const shortBy = s.short_by || 0;
    const contacts = (c) => (c.contacts || []).map((p) => `${esc(p.title || p.name)}: ${esc(p.name)} — ${esc(p.mobile_phone || p.office_phone || "")}`).join("<br>");
    $("emergency-results").innerHTML = `<h2>${esc(t("em_title"))}: ${esc(t("i_" + run.incident.incident))}</h2>`
      + `<p class="meta">${esc(t("run_id"))}: ${run.id}</p>`
      + `<table><thead><tr><th>${esc(t("em_ring"))}</th><th>${esc(t("em_people"))}</th><th>${esc(t("em_households"))}</th></tr></thead><tbody>${rings}</tbody></table>`
      + `<p class="hint">${esc(t("em_within"))}</p>`
      + `<h3>${esc(t("em_shelters"))}</h3><p>${esc(t("em_capacity"))}: <b>${fmt(s.capacity || 0, 0)}</b> · ${esc(t("em_evacuate"))}: <b>${count(s.people_to_evacuate)}</b><br>`
      + (shortBy > 0 ? `<span class="status-not-met">${esc(t("em_short"))}: ${fmt(shortBy, 0)}</span>` : `<span class="status-met">${esc(t("em_enough"))}</span>`) + `</p>`
      + `<h3>${esc(t("em_inside"))}</h3><h4>${esc(t("em_schools"))}</h4>` + listOf(run.inside.schools || [], (x) => `${esc(x.name)} (${esc(x.ring)})`)
      + `<h4>${esc(t("em_health"))}</h4>` + listOf(run.inside.health_facilities || [], (x) => `${esc(x.name)} (${esc(x.ring)})`)
      + `<h3>${esc(t("em_nearest_h"))}</h3>` + listOf(run.nearest.hospitals || [], (x) => `${esc(x.name)} — ${km(x.distance_m)}`)
      + `<h3>${esc(t("em_nearest_f"))}</h3>` + listOf(run.nearest.fire_stations || [], (x) => `${esc(x.name)} — ${km(x.distance_m)}${x.phone ? ` · ☎ ${esc(x.phone)}` : ""}`)
      + `<h3>${esc(t("em_communes"))}</h3>` + listOf(run.communes || [], (c) => `<b>${esc(c.name)}</b>: ${count(c.people)} ${esc(t("em_people").toLowerCase())}` + ((c.contacts || []).length ? `<br><small>${contacts(c)}</small>` : ""))
      + `<button type="button" id="emergency-print">${esc(t("em_print"))}</button>`;
    $("emergency-results").hidden = false;
    $("emergency-print").addEventListener("click", () => window.print());
    if (run.incident.at) {
      const fc = empty();
      for (const r of run.rings) fc.features.push({ type: "Feature", properties: {}, geometry: circle(run.incident.at, r.to_m, 96) });
      fc.features.push({ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: run.incident.at } });
      map.getSource("selection").setData(fc);
    }
  }
  async function runEmergency() {
    const place = emergencyPlace();
    if (!place) { status(t("em_need_place"), true); return; }
    const rings = $("rings").value.split(/[,;\s]+/).filter(Boolean).map(Number);
    if (!rings.length || rings.some((r) => !Number.isFinite(r) || r <= 0) || rings.some((r, i) => i && r <= rings[i - 1])) {
      status(t("em_bad_rings"), true); return;
    }
    status(t("running"));
    $("emergency-run").disabled = true;
    try {
      const body = { incident: $("incident").value, ...place };
      if (place.at) body.rings = rings;
      const run = await api("/api/emergency/run", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      renderEmergency(run);
      status("");
    } catch (err) {
      status(`${t("error")}: ${errText(err)}`, true);
    } finally {
      $("emergency-run").disabled = false;
    }
  }

  // ---- citizen reports: the public layer (no personal data), and the queue of those who handle them ----
  function addFeedbackLayer() {
    map.addSource("feedback", { type: "geojson", data: `${location.origin}/api/feedback/map` });
    map.addLayer({
      id: "feedback-points", type: "circle", source: "feedback", layout: { visibility: "none" },
      paint: { "circle-radius": 6, "circle-color": "#ef6c00", "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 },
    }, "selection-fill");
    state.config.layers.push({
      id: "feedback-points", title: { vi: t_("vi", "feedback_layer"), en: t_("en", "feedback_layer") }, group: "citizen",
      geometry: "Point", base: false, min_zoom: 0, style_layers: ["feedback-points"], legend: [{ fill: "#ef6c00", stroke: "#fff" }],
    });
  }
  const t_ = (lang, k) => (T[lang] && T[lang][k]) || T.vi[k] || k;
  const handlesReports = (me) => Boolean(me) && !me.must_change_password && (
    ["commune_officer", "leader", "administrator"].some((r) => (me.roles || []).includes(r))
    || (me.grants || []).some((g) => g.startsWith("feedback:")));
  const localTime = (iso) => (iso ? new Date(iso).toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB", {
    timeZone: "Asia/Ho_Chi_Minh", day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit",
  }) : "—");
  async function showQueue() {
    if (!handlesReports(state.user)) { $("feedback-queue").hidden = true; return; }
    const queue = await api("/api/feedback/queue", { headers: { "Accept-Language": state.lang } }).catch(() => null);
    if (!Array.isArray(queue)) { $("feedback-queue").hidden = true; return; }
    $("feedback-queue").hidden = false;
    $("feedback-list").innerHTML = queue.length ? queue.slice(0, 20).map((r) => `<li data-lon="${Number(r.lon)}" data-lat="${Number(r.lat)}" tabindex="0" class="${r.overdue ? "overdue" : ""}">`
      + `<b>${esc(r.category_name)}</b> · ${esc(r.commune_name)}<br><small>${esc(r.state_name)} · ${esc(t(r.overdue ? "overdue" : "due"))} ${esc(localTime(r.due_at))}</small></li>`).join("")
      : `<li>${esc(t("feedback_none"))}</li>`;
  }
  function flyToReport(e) {
    const li = e.target.closest("li[data-lon]");
    if (li) map.flyTo({ center: [Number(li.dataset.lon), Number(li.dataset.lat)], zoom: 16 });
  }

  // ---- the province at a glance: every sector for a period, the communes most behind, the trend ----
  const showsOverview = (me) => Boolean(me) && !me.must_change_password;
  let overviewAsked = 0;
  async function loadOverview(period) {
    if (!showsOverview(state.user)) { $("overview").hidden = true; return; }
    $("overview").hidden = false;
    const asked = ++overviewAsked;
    const chosen = period || $("overview-period").value || "";
    $("overview-body").innerHTML = `<p class="hint">${esc(t("o_loading"))}</p>`;
    try {
      const o = await api(`/api/overview${chosen ? `?period=${encodeURIComponent(chosen)}` : ""}`);
      if (asked !== overviewAsked) return; // a newer period was chosen meanwhile
      state.overview = o;
      renderOverview(o);
      if ($("period").querySelector(`option[value="${CSS.escape(o.period)}"]`)) $("period").value = o.period;
      setShownPeriod(o.period);
    } catch (err) {
      if (asked === overviewAsked) $("overview-body").innerHTML = `<p class="dialog-error">${esc(t("error"))}: ${esc(errText(err))}</p>`;
    }
  }
  const countCell = (n, key) => `<td class="num${key === "not_met" && n ? " status-not-met" : ""}" data-count="${key}">${fmt(n, 0)}</td>`;
  function sparkline(trend) {
    const w = 168, h = 44, max = Math.max(1, ...trend.map((x) => x.not_met));
    const pts = trend.map((x, i) => [6 + (i * (w - 12)) / Math.max(1, trend.length - 1), h - 6 - (x.not_met / max) * (h - 12)]);
    return `<svg id="overview-spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(t("o_not_met_trend"))}">`
      + `<polyline fill="none" stroke="#c62828" stroke-width="2" points="${pts.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" ")}"/>`
      + pts.map((p, i) => `<circle cx="${p[0].toFixed(1)}" cy="${p[1].toFixed(1)}" r="3" fill="#c62828"><title>${esc(periodText(trend[i].period))}: ${fmt(trend[i].not_met, 0)}</title></circle>`).join("")
      + "</svg>";
  }
  function renderOverview(o) {
    const periods = o.periods.length ? o.periods : [o.period];
    $("overview-period").innerHTML = periods.map((p) => `<option value="${esc(p)}">${esc(periodText(p))}</option>`).join("");
    $("overview-period").value = o.period;
    const head = (first) => `<tr><th>${esc(first)}</th><th class="num">${esc(t("o_met"))}</th><th class="num">${esc(t("o_not_met"))}</th><th class="num">${esc(t("o_stale"))}</th></tr>`;
    const seen = new Set(); // an indicator of two sectors is one figure
    const rows = o.sectors.map((s) => {
      const flagged = s.indicators.filter((i) => i.communes_not_met.length && !seen.has(i.id));
      flagged.forEach((i) => seen.add(i.id));
      const figures = flagged.map((i) => `<li><button type="button" class="flag-figure" data-flag-indicator="${esc(i.id)}">${esc(tx(i.name))}: `
        + `<b>${fmt(i.communes_not_met.length, 0)}</b> ${esc(t("o_communes_not_met"))}${i.status === "not met" ? ` (${esc(t("o_province_not_met"))})` : ""}</button></li>`).join("");
      return `<tr data-sector="${esc(s.id)}"><th scope="row">${esc(tx(s.title))}</th>${countCell(s.counts.met, "met")}${countCell(s.counts.not_met, "not_met")}${countCell(s.counts.stale, "stale")}</tr>`
        + (figures ? `<tr class="flag-row"><td colspan="4"><ul class="flag-figures">${figures}</ul></td></tr>` : "");
    }).join("");
    const behind = o.most_behind.length
      ? `<ol id="overview-behind">${o.most_behind.map((c) => `<li data-code="${esc(c.code)}"><button type="button" class="commune-link" data-code="${esc(c.code)}">${esc(c.name)}</button>: ${fmt(c.not_met, 0)} ${esc(t("o_missed"))}</li>`).join("")}</ol>`
      : `<p>${esc(t("o_none_behind"))}</p>`;
    const trend = o.trend.map((x) => `<tr data-period="${esc(x.period)}"><td>${esc(periodText(x.period))}</td>${countCell(x.met, "met")}${countCell(x.not_met, "not_met")}${countCell(x.stale, "stale")}</tr>`).join("");
    const tot = o.totals;
    $("overview-body").innerHTML = `<p id="overview-totals">${esc(t("o_totals"))}: ${esc(t("o_met").toLowerCase())} <b data-total="met">${fmt(tot.met, 0)}</b> · `
      + `${esc(t("o_not_met").toLowerCase())} <b data-total="not_met" class="status-not-met">${fmt(tot.not_met, 0)}</b> · ${esc(t("o_stale").toLowerCase())} <b data-total="stale">${fmt(tot.stale, 0)}</b></p>`
      + `<table id="overview-sectors"><thead>${head(t("o_sector"))}</thead><tbody>${rows}</tbody></table>`
      + `<p class="hint">${esc(t("o_click"))}</p>`
      + `<h3>${esc(t("o_behind"))}</h3>${behind}`
      + `<h3>${esc(t("o_trend"))}</h3>${sparkline(o.trend)}<table id="overview-trend"><thead>${head(t("o_period"))}</thead><tbody>${trend}</tbody></table>`;
    const active = state.flagIndicator;
    if (active && seen.has(active)) showFlaggedFigure(active);
    else if (active) { state.flagIndicator = null; setFlagged([]); }
  }
  async function communeIndex() {
    if (!state.communeIndex) {
      const r = await api("/api/communes?limit=200");
      state.communeIndex = new Map(r.communes.map((c) => [c.code, c]));
    }
    return state.communeIndex;
  }
  function fitCommunes(codes, index) {
    const boxes = codes.map((c) => index.get(c)).filter(Boolean).map((c) => c.bbox);
    if (!boxes.length) return;
    const b = boxes.reduce((a, x) => [Math.min(a[0], x[0]), Math.min(a[1], x[1]), Math.max(a[2], x[2]), Math.max(a[3], x[3])]);
    map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 40, duration: 0 });
  }
  async function showFlaggedFigure(id) {
    const ind = state.overview && state.overview.sectors.flatMap((s) => s.indicators).find((i) => i.id === id);
    if (!ind) return;
    const codes = ind.communes_not_met.map((c) => c.code);
    state.flagIndicator = id;
    setFlagged(codes, tx(ind.name));
    fitCommunes(codes, await communeIndex());
    $("flagged-communes").innerHTML = `<h3>${esc(tx(ind.name))} — ${esc(periodText(state.overview.period))}: ${fmt(codes.length, 0)} ${esc(t("o_communes_not_met"))}</h3>`
      + `<ul>${ind.communes_not_met.map((c) => `<li data-code="${esc(c.code)}">${esc(c.name)}</li>`).join("")}</ul>`;
    $("flagged-communes").hidden = false;
    document.querySelectorAll("[data-flag-indicator]").forEach((b) => b.classList.toggle("active", b.dataset.flagIndicator === id));
  }
  async function onOverviewClick(e) {
    const figure = e.target.closest("[data-flag-indicator]");
    if (figure) return showFlaggedFigure(figure.dataset.flagIndicator);
    const commune = e.target.closest("button.commune-link");
    if (commune) fitCommunes([commune.dataset.code], await communeIndex());
  }

  // ---- on the map: the period shown, and a legend of what is drawn ----
  class MapBox {
    constructor(id) { this.id = id; }
    onAdd() { this.el = document.createElement("div"); this.el.id = this.id; this.el.className = "maplibregl-ctrl map-box"; return this.el; }
    onRemove() { this.el.remove(); }
  }
  function setShownPeriod(period) {
    if (period) state.shownPeriod = period;
    if ($("map-period") && state.shownPeriod) $("map-period").textContent = `${t("map_period")}: ${periodText(state.shownPeriod)}`;
  }
  const layerShown = (l) => Boolean(map && map.getLayer(l.style_layers[0])) && map.getLayoutProperty(l.style_layers[0], "visibility") !== "none";
  const legendRow = (fill, stroke, label, line) => `<li><span class="legend-swatch" style="${line ? `background:${esc(stroke || "#555")};height:.25em;border:0` : `background:${esc(fill || "transparent")};border-color:${esc(stroke || "#555")}`}"></span>${esc(label)}</li>`;
  function renderLegend() {
    if (!map || !state.config || !$("legend")) return;
    const shown = [];
    if (state.flagged.length) shown.push(legendRow("rgba(198,40,40,.45)", "#b71c1c", `${t("legend_flagged")}${state.flagLabel ? `: ${state.flagLabel}` : ""} (${fmt(state.flagged.length, 0)})`));
    if (state.centre || state.polygon.length || state.point) shown.push(legendRow("rgba(21,101,192,.12)", "#1565c0", t("legend_selection")));
    if (state.mode === "communes" && state.communes.size) shown.push(legendRow("transparent", "#1565c0", t("legend_picked")));
    shown.push(`<li><span class="legend-label-sample">Aa</span>${esc(t("legend_labels"))}</li>`);
    const layers = state.config.layers.filter(layerShown).map((l) => {
      const line = l.geometry.includes("Line");
      const rows = l.legend.length > 1 ? l.legend.map((e) => legendRow(e.fill, e.stroke, tx(e.label), line)).join("") : "";
      const own = l.legend.length > 1 ? "" : `<span class="legend-swatch" style="${line ? `background:${esc((l.legend[0] || {}).stroke || "#555")};height:.25em;border:0` : `background:${esc((l.legend[0] || {}).fill || "transparent")};border-color:${esc((l.legend[0] || {}).stroke || "#555")}`}"></span>`;
      return `<li class="legend-layer" data-layer="${esc(l.id)}">${own}${esc(tx(l.title))}${rows ? `<ul>${rows}</ul>` : ""}</li>`;
    }).join("");
    $("legend").innerHTML = `<h3>${esc(t("legend"))}</h3><ul>${shown.join("")}${layers}</ul>`;
  }

  // ---- layers ----
  function buildLayerList() {
    const groups = {};
    for (const l of state.config.layers) (groups[l.group] = groups[l.group] || []).push(l);
    $("layers").innerHTML = Object.entries(groups).map(([g, ls]) => `<div class="layer-group"><h3>${esc(tx(GROUPS[g]) || g)}</h3>` + ls.map((l) => {
      const on = map && map.getLayer(l.style_layers[0]) ? map.getLayoutProperty(l.style_layers[0], "visibility") !== "none" : l.base;
      const sw = l.legend[0] || {};
      const line = l.geometry.includes("Line");
      const swatch = line ? `background:${esc(sw.stroke || "#555")};height:.25em;border:0` : `background:${esc(sw.fill || "transparent")};border-color:${esc(sw.stroke || "#555")}`;
      return `<label title="${esc(l.id)}"><input type="checkbox" data-layer="${esc(l.id)}" ${on ? "checked" : ""}> <span class="legend-swatch" style="${swatch}"></span>${esc(tx(l.title))}${l.min_zoom ? ` <small>(z ≥ ${l.min_zoom})</small>` : ""}</label>`;
    }).join("") + "</div>").join("");
  }
  function toggleLayer(id, on) {
    const l = state.config.layers.find((x) => x.id === id);
    if (!l) return;
    l.style_layers.forEach((sid) => map.getLayer(sid) && map.setLayoutProperty(sid, "visibility", on ? "visible" : "none"));
    renderLegend();
  }

  async function start() {
    status(t("loading"));
    state.config = await api("/api/map/config");
    fillSelects();
    const b = state.config.bbox;
    map = new maplibregl.Map({
      container: "map", style: absoluteStyle(state.config.style), bounds: [[b[0], b[1]], [b[2], b[3]]],
      fitBoundsOptions: { padding: 20 }, attributionControl: false, maxZoom: 19, preserveDrawingBuffer: true,
    });
    window.gisIocMap = map;
    map.addControl(new maplibregl.NavigationControl(), "top-right");
    map.addControl(new maplibregl.ScaleControl({ unit: "metric", maxWidth: 150 }), "bottom-left");
    map.addControl(new MapBox("map-period"), "top-left");
    map.addControl(new MapBox("legend"), "bottom-right");
    setShownPeriod(state.shownPeriod || $("period").value);
    map.addControl(new maplibregl.AttributionControl({ compact: true, customAttribution: "IOC Hưng Yên — gis_ioc" }));
    map.on("load", async () => {
      addOverlays();
      if (map.getLayer("commune-labels")) map.moveLayer("commune-labels"); // names over every overlay
      await addPlans();
      addFeedbackLayer();
      await fillIncidents();
      await showQueue();
      buildLayerList();
      drawSelection();
      if (map.getLayer("commune-labels")) map.moveLayer("commune-labels");
      renderLegend();
      state.ready = true;
      status("");
    });
    map.on("click", onClick);
    map.on("mousemove", "communes-fill", (e) => { if (e.features.length) map.getCanvas().title = e.features[0].properties.name; });
  }

  // ---- wiring ----
  $("lang").addEventListener("click", () => { state.lang = state.lang === "vi" ? "en" : "vi"; localStorage.setItem("gis_ioc.lang", state.lang); applyLang(); });
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 150); });
  $("search").addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && searchItems.length) { active = (active + 1) % searchItems.length; renderSearch(); e.preventDefault(); }
    else if (e.key === "ArrowUp" && searchItems.length) { active = (active - 1 + searchItems.length) % searchItems.length; renderSearch(); e.preventDefault(); }
    else if (e.key === "Enter") { if (searchItems[active]) pick(searchItems[active]); else runSearch(); e.preventDefault(); }
    else if (e.key === "Escape") { searchItems = []; renderSearch(); }
  });
  $("search-results").addEventListener("click", (e) => { const li = e.target.closest("li"); if (li) pick(searchItems[Number(li.dataset.i)]); });
  document.querySelectorAll('input[name="mode"]').forEach((el) => el.addEventListener("change", () => setMode(el.value)));
  $("radius").addEventListener("input", drawSelection);
  $("polygon-finish").addEventListener("click", () => { if (state.polygon.length >= 3) { state.polygonClosed = true; drawSelection(); } });
  $("clear").addEventListener("click", () => { state.centre = null; state.polygon = []; state.polygonClosed = false; state.communes.clear(); state.point = null; state.flagIndicator = null; setFlagged([]); drawSelection(); });
  $("run").addEventListener("click", runScenario);
  $("period").addEventListener("change", () => setShownPeriod($("period").value));
  $("overview-period").addEventListener("change", () => loadOverview($("overview-period").value));
  $("overview-body").addEventListener("click", onOverviewClick);
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("password-form").addEventListener("submit", changePassword);
  document.querySelector("#password-form .dialog-logout").addEventListener("click", logout);
  $("account-dialog").addEventListener("cancel", (e) => { if (!$("password-form").hidden) e.preventDefault(); }); // the first password first
  $("totp-open").addEventListener("click", openTotp);
  $("feedback-list").addEventListener("click", flyToReport);
  $("emergency-run").addEventListener("click", runEmergency);
  $("totp-start").addEventListener("click", startTotp);
  $("totp-confirm").addEventListener("click", confirmTotp);
  $("totp-close").addEventListener("click", () => $("account-dialog").close());
  showAccount();
  $("layers").addEventListener("change", (e) => { if (e.target.dataset.layer) toggleLayer(e.target.dataset.layer, e.target.checked); });
  applyLang();
  start().catch((e) => status(`${t("error")}: ${e.message}`, true));
})();
