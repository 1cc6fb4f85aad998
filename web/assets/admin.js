// Ardoise — the script of /admin (admin.html), served from /assets/admin.js: pages
// carry no inline script (CSP script-src 'self').
import { t, lang, applyI18n, mountLangToggle, onLang, $, h, show, api, errorText, tokenFromHash, confirmed, clock, checksText } from "/assets/ardoise.js";

const token = tokenFromHash("ardoise.admin");
const WINDOW_MS = 120000, PERIOD_MS = 2000;
const COLORS = ["#0b57d0", "#b3261e", "#1d6b33", "#8a5300", "#6a1b9a", "#00695c"];
let last = null;               // last overview JSON
let prev = null;               // {t, parts: Map, workers: Map, cpu}
let rates = { parts: new Map(), workers: new Map(), cpu: null };
const hist = { egress: [], cpu: new Map() };   // {t, v} points
const sections = new Map();    // class id -> section element
let cluster = null;            // last /api/admin/nodes answer
const A = (window.ardoise = { error: null, overview: () => last, nodes: () => cluster });

mountLangToggle($("#lang-slot"));
applyI18n();
onLang(() => { sections.forEach((s) => s.remove()); sections.clear(); if (last) render(last); });

function status(text, kind) { const s = $("#status"); s.textContent = text; s.dataset.kind = kind || ""; show(s, !!text); }
const fmt = (n, d = 0) => (n === null || n === undefined || Number.isNaN(n) ? "—" : Number(n).toLocaleString(lang() === "fr" ? "fr-FR" : "en-GB", { maximumFractionDigits: d, minimumFractionDigits: d }));
const num = (v, d) => h("td", { class: "num" }, fmt(v, d));
function table(el, heads, rows) {
  el.replaceChildren(h("thead", {}, h("tr", {}, heads.map(([k, n]) => h("th", { scope: "col", class: n ? "num" : "" }, t(k))))),
    h("tbody", {}, rows));
}
function duration(ms) {
  const s = Math.floor(ms / 1000), hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60);
  return hh ? `${hh} h ${mm} min` : mm ? `${mm} min ${s % 60} s` : `${s} s`;
}

// ---------------------------------------------------------------- polling and deltas
async function poll() {
  let again = true;
  try {
    const ov = await api("/api/admin/classes", { token });
    cluster = await api("/api/admin/nodes", { token });
    renderNodes();
    last = ov;
    derive(ov);
    render(ov);
    A.error = null;
    status("");
    $("#updated").textContent = t("updated", { time: clock() });
  } catch (e) {
    A.error = e.message || String(e);
    status(errorText(e), "error");
    if (e.status === 401 || e.status === 403) again = false;
  }
  if (again) setTimeout(poll, PERIOD_MS);
}
function derive(ov) {
  const now = Date.now();
  const cur = { t: now, parts: new Map(), workers: new Map(), cpu: ov.process ? ov.process.cpu_us : null };
  for (const c of ov.classes || []) for (const p of c.participants || []) cur.parts.set(`${c.id}/${p.id}`, p);
  for (const w of ov.workers || []) cur.workers.set(w.index, w);
  rates = { parts: new Map(), workers: new Map(), cpu: null };
  if (prev) {
    const dt = now - prev.t;   // ms; bytes*8/ms = kbit/s
    cur.parts.forEach((p, k) => {
      const o = prev.parts.get(k);
      if (o) rates.parts.set(k, { in: Math.max(0, p.bytes_in - o.bytes_in) * 8 / dt, out: Math.max(0, p.bytes_out - o.bytes_out) * 8 / dt });
    });
    let egress = 0;
    cur.workers.forEach((w, i) => {
      const o = prev.workers.get(i);
      if (!o) return;
      const r = {
        cpu: Math.max(0, w.cpu_us - o.cpu_us) / (dt * 10),          // µs per ms*1000 → %
        din: Math.max(0, (w.datagrams_in || 0) - (o.datagrams_in || 0)) * 1000 / dt,
        dout: Math.max(0, (w.datagrams_out || 0) - (o.datagrams_out || 0)) * 1000 / dt,
      };
      egress += Math.max(0, (w.bytes_out || 0) - (o.bytes_out || 0)) * 8 / dt / 1000;   // Mbit/s
      rates.workers.set(i, r);
      if (!hist.cpu.has(i)) hist.cpu.set(i, []);
      hist.cpu.get(i).push({ t: now, v: r.cpu });
    });
    hist.egress.push({ t: now, v: egress });
    if (cur.cpu !== null && prev.cpu !== null) rates.cpu = Math.max(0, cur.cpu - prev.cpu) / (dt * 10);
  }
  for (const arr of [hist.egress, ...hist.cpu.values()]) while (arr.length && arr[0].t < now - WINDOW_MS) arr.shift();
  prev = cur;
}

// ---------------------------------------------------------------- rendering
function render(ov) {
  table($("#workers"), [["worker"], ["port", 1], ["rooms", 1], ["participants", 1], ["cpu", 1], ["dgram_in", 1], ["dgram_out", 1], ["restarts", 1]],
    (ov.workers || []).map((w) => {
      const r = rates.workers.get(w.index) || {};
      return h("tr", {}, h("td", {}, `#${w.index}`), num(w.port), num(w.rooms), num(w.participants),
        h("td", { class: "num" }, r.cpu === undefined ? "—" : fmt(r.cpu, 1) + " %"),
        h("td", { class: "num" }, `${fmt(w.datagrams_in)} (${fmt(r.din)}/s)`), h("td", { class: "num" }, `${fmt(w.datagrams_out)} (${fmt(r.dout)}/s)`),
        h("td", { class: w.restarts ? "num warn" : "num" }, fmt(w.restarts || 0)));
    }));
  const p = ov.process;
  $("#process").textContent = p
    ? `${t("memory")} : ${fmt(p.rss_bytes / 1048576, 1)} MiB · ${t("cpu")} : ${rates.cpu === null ? "—" : fmt(rates.cpu, 1) + " %"} · ${t("uptime")} : ${duration(p.uptime_ms)}`
    : "";
  const seen = new Set(), box = $("#classes");
  if (ov.classes && ov.classes.length) { const e = $("#classes > p"); if (e) e.remove(); }
  (ov.classes || []).forEach((c, idx) => {
    seen.add(c.id);
    let sec = sections.get(c.id);
    if (!sec) {
      sec = h("section", { class: "card", "data-class": c.id },
        h("div", { class: "row" }, h("h3", { class: "grow" }),
          h("button", { type: "button", class: "danger", "data-action": "end", onclick: () => endClass(c) }, t("end"))),
        h("p", { class: "checks" }),
        h("h4", { class: "sr-only" }, t("members")), h("div", { class: "table-wrap" }, h("table", { class: "members" })),
        h("h4", { class: "sr-only" }, t("media")), h("div", { class: "table-wrap" }, h("table", { class: "media" })));
      sections.set(c.id, sec);
    }
    if (box.children[idx] !== sec) box.insertBefore(sec, box.children[idx] || null);   // server order; no needless moves (focus)
    const state = t("st_" + c.state) + (c.locked ? " · " + t("locked") : "") + (c.worker !== null && c.worker !== undefined ? ` · ${t("worker")} #${c.worker}` : "");
    $("h3", sec).textContent = `${c.title || c.code} (${c.code}) — ${state}`;
    sec.classList.toggle("ended", c.state === "ended");
    const end = $("[data-action=end]", sec);
    end.disabled = c.state === "ended";
    end.setAttribute("aria-label", `${t("end")} : ${c.title || c.code}`);
    const checks = $("p.checks", sec);
    checks.textContent = c.checks && c.checks.checked ? checksText(c.checks) : "";
    show(checks, !!(c.checks && c.checks.checked));
    const members = c.members || [];
    table($("table.members", sec), [["name"], ["role"], ["conn"], ["hand"]],
      members.length ? members.map((m) => h("tr", {}, h("td", {}, m.name), h("td", {}, t("role_" + m.role) + (m.client === "studio" ? ` (${t("studio")})` : "")),
        h("td", {}, h("span", { class: "q", "data-level": m.quality || "" }, m.quality ? t("conn_" + m.quality) : "—")),
        h("td", {}, m.hand ? "✋ " + t("yes") : t("no"))))
        : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "—")));
    const parts = c.participants || [];
    table($("table.media", sec), [["participants"], ["kind"], ["connected"], ["transport"], ["ingress", 1], ["egress", 1], ["loss", 1], ["rtt", 1], ["nacks", 1], ["plis", 1]],
      parts.length ? parts.map((p) => {
        const r = rates.parts.get(`${c.id}/${p.id}`) || {};
        return h("tr", {}, h("td", {}, `#${p.id}`), h("td", {}, p.kind), h("td", {}, t(p.connected ? "yes" : "no")),
          h("td", { class: "transport", "data-transport": p.transport || "" }, p.transport ? t("tr_" + p.transport) : "—"),
          num(r.in, 0), num(r.out, 0), num(p.loss === null || p.loss === undefined ? null : p.loss * 100, 1),
          num(p.rtt_ms, 0), num(p.nacks_in), num(p.keyframe_requests_in));
      }) : h("tr", {}, h("td", { colspan: 10, class: "empty" }, "—")));
  });
  sections.forEach((sec, id) => { if (!seen.has(id)) { sec.remove(); sections.delete(id); } });
  if (!sections.size && !$("#classes > p")) box.append(h("p", { class: "empty" }, t("no_classes")));
  drawCharts();
}
function drawCharts() {
  drawChart($("#chart-egress"), [{ label: "Mbit/s", color: COLORS[0], points: hist.egress }], 1);
  drawChart($("#chart-cpu"), [...hist.cpu.entries()].map(([i, pts], k) => ({ label: `#${i}`, color: COLORS[k % COLORS.length], points: pts })), 10);
}
// ---------------------------------------------------------------- the cluster's nodes
// Shown only on a cluster: each node's load and health; an admin drains a node (no new
// classes; its classes go on until they end) before stopping it, or reopens it.
function renderNodes() {
  const nodes = (cluster && cluster.nodes) || [];
  show($("#nodes-card"), nodes.length > 0);
  if (!nodes.length) return;
  const unseen = cluster.recordings_unseen || [];
  $("#recordings-unshared").textContent = unseen.length ? t("recordings_unshared", { nodes: unseen.join(", ") }) : "";
  show($("#recordings-unshared"), unseen.length > 0);
  const now = Date.now();
  table($("#nodes"), [["node"], ["heartbeat", 1], ["pupils_cap", 1], ["node_classes", 1], ["cpu", 1], ["node_kbps", 1], ["node_state"], [""]],
    nodes.map((n) => {
      const state = !n.alive ? "node_silent" : n.draining ? "node_draining" : "node_alive";
      const mine = n.id === cluster.this_node ? ` (${t("this_node")})` : "";
      return h("tr", { "data-node": n.id }, h("td", {}, h("a", { href: n.url }, n.id), mine),
        h("td", { class: "num" }, `${fmt((now - n.heartbeat_at) / 1000, 1)} s`),
        h("td", { class: "num" }, `${fmt(n.pupils)} / ${fmt(n.capacity)}`), num(n.classes),
        h("td", { class: "num" }, `${fmt(n.cpu_permille / 10, 1)} %`), num(n.kbps_out),
        h("td", { class: n.alive ? "" : "warn" }, t(state)),
        h("td", {}, h("button", { type: "button", "data-action": "drain", onclick: () => drainNode(n.id, !n.draining) }, t(n.draining ? "undrain" : "drain"))));
    }));
}
async function drainNode(id, draining) {
  if (draining && !confirmed(`${t("drain")} : ${id}`)) return;
  try {
    await api(`/api/admin/nodes/${encodeURIComponent(id)}/drain`, { method: "POST", token, json: { draining } });
    cluster = await api("/api/admin/nodes", { token });
    renderNodes();
  } catch (e) { A.error = e.message; status(errorText(e), "error"); }
}

async function endClass(c) {
  if (!confirmed(`${t("confirm_end")} (${c.title || c.code})`)) return;
  try { await api(`/api/classes/${encodeURIComponent(c.id)}`, { method: "DELETE", token }); } catch (e) { A.error = e.message; status(errorText(e), "error"); }
}

// ---------------------------------------------------------------- hand-drawn line charts
function niceMax(v, floor) {   // 4 grid steps of 1, 2, 2.5 or 5 × 10^k
  const step = Math.max(v, floor) / 4, p = 10 ** Math.floor(Math.log10(step));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= step) return 4 * k * p;
  return 40 * p;
}
function drawChart(cv, series, minMax) {
  const dpr = window.devicePixelRatio || 1, w = cv.clientWidth, ht = cv.clientHeight;
  if (!w || !ht) return;
  if (cv.width !== Math.round(w * dpr)) cv.width = Math.round(w * dpr);
  if (cv.height !== Math.round(ht * dpr)) cv.height = Math.round(ht * dpr);
  const c = cv.getContext("2d");
  c.setTransform(dpr, 0, 0, dpr, 0, 0);
  c.clearRect(0, 0, w, ht);
  const L = 46, R = 8, T = 10, B = 22, pw = w - L - R, ph = ht - T - B;
  const now = Date.now(), t0 = now - WINDOW_MS;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p.v > max) max = p.v;
  max = niceMax(max, minMax);
  c.font = "12px system-ui, sans-serif"; c.lineWidth = 1;
  c.fillStyle = "#333"; c.strokeStyle = "#d6d3cb"; c.textAlign = "right"; c.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const y = T + ph - (ph * i) / 4;
    c.beginPath(); c.moveTo(L, y); c.lineTo(L + pw, y); c.stroke();
    const v = (max * i) / 4;
    c.fillText(fmt(v, Number.isInteger(v) ? 0 : v < 1 ? 2 : 1), L - 6, y);
  }
  c.textAlign = "center"; c.textBaseline = "top";
  for (const [s, label] of [[120, "-2 min"], [60, "-1 min"], [0, "0"]]) c.fillText(label, L + pw - (pw * s) / 120, T + ph + 5);
  c.lineWidth = 2;
  series.forEach((s, k) => {
    c.strokeStyle = s.color; c.beginPath();
    s.points.forEach((p, i) => {
      const x = L + ((p.t - t0) / WINDOW_MS) * pw, y = T + ph - (Math.min(p.v, max) / max) * ph;
      if (i) c.lineTo(x, y); else c.moveTo(x, y);
    });
    c.stroke();
    c.fillStyle = s.color; c.textAlign = "left"; c.textBaseline = "top";
    c.fillText(`${s.label} ${s.points.length ? fmt(s.points[s.points.length - 1].v, 1) : "—"}`, L + 8 + k * 90, T + 2);
  });
}

window.addEventListener("resize", drawCharts);
if (!token) { status(t("no_token"), "error"); A.error = "no token"; }
else poll();
