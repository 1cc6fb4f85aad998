// Ardoise — the script of /teacher (teacher.html), served from /assets/teacher.js: pages
// carry no inline script (CSP script-src 'self').
import { t, applyI18n, mountLangToggle, onLang, $, h, show, api, errorText, tokenFromHash, jwtClaims, Receiver,
         publish, ClassSocket, appendChat, playWithSound, stopTracks, keepFocus, confirmed, clock, transportOf, checksText,
         Failover, classServer } from "/assets/ardoise.js";

const LAYOUTS = ["camera", "document", "screen", "document+camera", "screen+camera", "side-by-side"];
const token = tokenFromHash("ardoise.teacher");
const claims = token ? jwtClaims(token) : null;
const classId = claims && claims.class;
// A cluster of servers: the console runs on the server that owns its class (its class
// events live there). Asked of this server, which sends the question on to the owner.
const where = classId
  ? await fetch(`/api/classes/${encodeURIComponent(classId)}/node`, { cache: "no-store" }).then((r) => (r.ok ? r.json() : null), () => null)
  : null;
// A query of its own: the same address with another fragment would not load the page.
const goTo = (origin) => location.assign(`${origin}/teacher?from=${Date.now()}#token=${encodeURIComponent(token)}`);
if (where && where.origin && where.origin !== location.origin) {
  goTo(where.origin);
  await new Promise(() => {}); // this page is leaving: nothing more runs here
}
const failover = new Failover(() => (where && where.nodes) || [], (origin) => classServer(origin, classId), goTo);
const members = new Map();   // id -> Member
let hands = [];              // ids, in order raised
let waiting = [];            // pupils in the waiting room, in order of arrival
let chat = [];               // {name, text}
let floor = null, locked = false, live = false, recording = false, info = null, sock = null, wsState = null;
let studioSeen = false, listenTouched = false;
const studios = new Map();   // id -> Member of the studio (it may share its token with this console)
const A = (window.ardoise = { error: null, members: () => [...members.values(), ...studios.values()], hands: () => [...hands], chat: () => chat.slice() });
/** Keep one entry per person: a page or the studio over a bare player entry of the same id. */
function addMember(x) {
  if (x.client === "studio") { studios.set(x.id, x); return; }
  const old = members.get(x.id);
  if (old && old.client !== "player" && x.client === "player") { old.sessions = x.sessions; old.transport = x.transport; return; }
  members.set(x.id, x);
}

mountLangToggle($("#lang-slot"));
for (const l of LAYOUTS) $("#layout").append(h("option", { value: l, "data-i18n": "l_" + l }, t("l_" + l)));
applyI18n();
onLang(() => { renderAll(); });

// ---------------------------------------------------------------- recordings
// The class's recordings: the teacher renames, publishes or unpublishes, allows the
// download, deletes. The list is read again after each change and each recording event.
let recordings = [];
A.recordings = () => recordings.slice();
async function loadRecordings() {
  if (!token || !classId) return;
  try { recordings = await api(`/api/classes/${encodeURIComponent(classId)}/recordings`, { token }); } catch (e) { return fail(e); }
  renderRecordings();
  // One still closing after its stop: read again shortly.
  if (!recording && recordings.some((r) => r.state === "recording")) setTimeout(loadRecordings, 1000);
}
async function changeRecording(rec, change) {
  const path = `/api/classes/${encodeURIComponent(classId)}/recordings/${rec.id}`;
  try {
    if (change === null) await api(path, { method: "DELETE", token });
    else await api(path, { method: "PATCH", token, json: change });
  } catch (e) { fail(e); }
  loadRecordings();
}
function renderRecordings() {
  const ul = $("#recordings");
  ul.replaceChildren();
  show($("#recs-empty"), !recordings.length);
  for (const r of recordings) {
    const bytes = r.layers.reduce((n, l) => n + l.files.reduce((m, f) => m + f.size, 0), 0);
    const when = new Date(r.started_ms).toLocaleString(document.documentElement.lang);
    const id = (what) => `rec-${r.id}-${what}`;
    const title = h("input", { id: id("title"), value: r.title, maxlength: 120, "aria-label": t("rec_title"),
      onchange: (e) => { const v = e.target.value.trim(); if (v && v !== r.title) changeRecording(r, { title: v }); } });
    const box = (what, on, key) => h("span", { class: "check" },
      h("input", { id: id(what), type: "checkbox", checked: on, "data-rec": what,
        onchange: (e) => changeRecording(r, { [key]: e.target.checked }) }),
      h("label", { for: id(what) }, t("rec_" + what)));
    const del = h("button", { type: "button", class: "danger", "data-rec": "delete", disabled: r.state === "recording",
      onclick: () => { if (confirmed(t("confirm_rec_delete", { title: r.title }))) changeRecording(r, null); } }, t("rec_delete"));
    ul.append(h("li", { "data-id": r.id },
      h("div", { class: "row" }, title, del),
      h("p", { class: "meta" }, t("rec_meta", { when, min: Math.max(1, Math.round(r.duration_s / 60)),
        mb: (bytes / 1e6).toFixed(1), state: t("rec_st_" + r.state) }),
        " · ", t("rec_until", { date: new Date(r.expires_ms).toLocaleDateString(document.documentElement.lang) })),
      h("div", { class: "row" }, box("published", r.published, "published"), box("downloadable", r.downloadable, "downloadable"))));
  }
}
onLang(renderRecordings);

function status(text, kind) { const s = $("#status"); s.textContent = text; s.dataset.kind = kind || ""; show(s, !!text); }
function fail(e) { A.error = (e && e.message) || String(e); status(errorText(e), "error"); }

// ---------------------------------------------------------------- class info
async function init() {
  if (!token || !classId) { status(t("no_token"), "error"); A.error = "no token"; disable(true); return; }
  try { info = await api(`/api/classes/${encodeURIComponent(classId)}`, { token }); } catch (e) { return fail(e); }
  showCode();
  renderAll();
  sock = new ClassSocket(info.id, token, onEvent, (st, i) => {
    wsState = st;
    failover.socket(st);
    if (st === "reconnecting") status(t("st_ws_down", { s: (i.delay / 1000).toFixed(1) }), "error");
    else if (st === "open") status("");
  });
}
/** The pupil link, QR code and join code of the class (the code changes when rotated). */
function showCode() {
  const link = `${location.origin}/c/${encodeURIComponent(info.code)}`;
  $("#pupil-link").value = link;
  $("#qr").src = `/api/classes/${encodeURIComponent(info.code)}/qr.svg`;
  $("#qr").dataset.link = link;
  show($("#qr"), true);
  $("#join-code").textContent = info.code;
  $("#code-expiry").textContent = info.code_expires_at ? t("code_until", { at: clock(info.code_expires_at * 1000) }) : "";
}
function disable(on) { for (const b of document.querySelectorAll("main button, main select")) if (!b.closest("#new-form")) b.disabled = on; }
function renderClass() {
  if (!info) return;
  $("#class-title").textContent = info.title || info.code;
  $("#class-state").textContent = t("st_" + info.state) + (locked ? " · " + t("locked") : "");
  $("#qr").alt = t("qr_alt", { link: $("#qr").dataset.link || "" });
  $("#lock").setAttribute("aria-pressed", String(locked));
  $("#lock").textContent = t(locked ? "unlock" : "lock");
  $("#record").setAttribute("aria-pressed", String(recording));
  $("#record").textContent = t(recording ? "record_stop" : "record_start");
  show($("#rec-badge"), recording);
  // The studio's path too: a school network that drops UDP shows here ("tcp", "relay").
  const studio = [...studios.values()][0];
  const st = studio && studio.transport;
  $("#live-state").textContent = t(live ? "class_live" : "class_not_live") + (live && st ? ` (${t("studio")} : ${t("tr_" + st)})` : "");
  $("#live-state").dataset.transport = (live && st) || "";
}
$("#copy").addEventListener("click", async () => {
  const input = $("#pupil-link");
  try { await navigator.clipboard.writeText(input.value); } catch (_) { input.select(); document.execCommand("copy"); }
  $("#copy").textContent = t("copied");
  setTimeout(() => { $("#copy").textContent = t("copy"); }, 1500);
});

// ---------------------------------------------------------------- class events
function onEvent(m) {
  switch (m.type) {
    case "welcome":
      members.clear(); studios.clear();
      for (const x of m.members || []) addMember(x);
      hands = [...members.values()].filter((x) => x.hand && x.role === "pupil").map((x) => x.id);
      info = m.class || info; locked = !!m.locked; live = !!m.live; recording = !!m.recording; if (info.code) showCode();
      if (m.layout) $("#layout").value = m.layout;
      chat = []; $("#chat-log").replaceChildren();
      for (const c of m.chat || []) addChat(c);
      setFloor(m.floor || null);
      break;
    case "waiting_room": waiting = m.pupils || []; break;
    case "joined": addMember(m.member); if (m.member.hand && !hands.includes(m.member.id)) hands.push(m.member.id); break;
    case "left": case "removed": members.delete(m.id); studios.delete(m.id); hands = hands.filter((x) => x !== m.id); break;
    case "hand": {
      const x = members.get(m.id); if (x) x.hand = !!m.raised;
      hands = hands.filter((id) => id !== m.id);
      if (m.raised) hands.push(m.id);
      break;
    }
    case "quality": { const x = members.get(m.id); if (x) x.quality = m.level; break; }
    case "chat": addChat(m); return;
    case "floor": setFloor(m.floor || null); break;
    case "layout": $("#layout").value = m.layout; return;
    case "locked": locked = !!m.locked; break;
    case "reconnect": if (pub && pub.again) pub.again(); return;
    case "recording":
      recording = !!m.on;
      if (m.reason) status(t(m.reason === "disk_full" ? "rec_disk_full" : "rec_write_error"), "error");
      loadRecordings();
      break;
    case "code": if (info) { info.code = m.code; info.code_expires_at = m.expires_at; showCode(); status(t("code_changed"), ""); } break;
    case "live": live = !!m.live; break;
    case "class_ended": if (info) info.state = "ended"; stopFloor(); sock.close(); disable(true); break;
    case "moved": sock.close(); goTo(location.origin); return;
    case "error": if (m.code === "unauthorized") { fail(new Error(m.message)); disable(true); } else status(t("error", { msg: m.message }), "error"); return;
    default: return;
  }
  renderAll();
}
function addChat(c) { chat.push({ name: c.name, text: c.text }); if (chat.length > 200) chat.shift(); appendChat($("#chat-log"), c); }
function send(msg) { if (!sock || !sock.send(msg)) { status(t("chat_offline"), "error"); return false; } return true; }

// ---------------------------------------------------------------- pupils and hands
function renderAll() { renderClass(); renderPupils(); renderFloor(); }
const qTag = (x) => h("span", { class: "q", "data-level": x.quality || "" }, x.quality ? t("conn_" + x.quality) : t("q_unknown"));
function act(action, label, disabled) { return h("button", { type: "button", class: action === "remove" ? "danger" : "secondary", "data-action": action, disabled }, t(label)); }
function renderPupils() {
  if (!studioSeen && studios.size) {
    studioSeen = true;
    if (!listenTouched) { $("#floor-listen").checked = false; applyListen(); }
  }
  const pupils = [...members.values()].filter((x) => x.role === "pupil").sort((a, b) => a.name.localeCompare(b.name));
  $("#pupil-count").textContent = String(pupils.length);
  keepFocus(() => {
    $("#pupils").replaceChildren(...pupils.map((x) => {
      const has = !!(floor && floor.pupil === x.id);
      return h("li", { "data-id": x.id },
        h("span", { class: "who" }, x.name), qTag(x),
        x.client === "player" && h("span", { class: "tag player", title: t("player_hint") }, t("player")),
        x.transport && h("span", { class: "tag transport", "data-transport": x.transport }, t("tr_" + x.transport)),
        x.hand && h("span", { class: "tag hand" }, "✋ " + t("hand_up")),
        has && h("span", { class: "tag live" }, t("has_floor") + (floor.muted ? " · " + t("muted") : "")),
        h("span", { class: "acts" },
          act("grant", "grant", has && !floor.camera), act("grant-camera", "grant-camera", has && floor.camera),
          act("revoke", "revoke", !has), act("mute", has && floor.muted ? "unmute_pupil" : "mute", !has), act("remove", "remove")));
    }));
    if (!pupils.length) $("#pupils").append(h("li", { class: "empty" }, t("no_pupils")));
    $("#hands").replaceChildren(...hands.filter((id) => members.has(id)).map((id) => h("li", { "data-id": id },
      h("span", { class: "who" }, "✋ " + members.get(id).name),
      h("span", { class: "acts" }, act("grant", "grant"), act("lower", "lower")))));
    if (!$("#hands").children.length) $("#hands").append(h("li", { class: "empty" }, t("no_hands")));
    show($("#waiting-wrap"), waiting.length > 0);
    $("#waiting-count").textContent = String(waiting.length);
    $("#waiting").replaceChildren(...waiting.map((x) => h("li", { "data-id": x.id },
      h("span", { class: "who" }, x.name), h("span", { class: "acts" }, act("admit", "admit"), act("refuse", "refuse")))));
  });
}
function onAction(ev) {
  const b = ev.target.closest("button[data-action]");
  const li = b && b.closest("li[data-id]");
  if (!li) return;
  const pupil = li.dataset.id, x = members.get(pupil), name = x ? x.name : pupil;
  switch (b.dataset.action) {
    case "grant": send({ type: "grant_floor", pupil, camera: false }); break;
    case "grant-camera": send({ type: "grant_floor", pupil, camera: true }); break;
    case "revoke": send({ type: "revoke_floor", pupil }); break;
    case "mute": send({ type: "mute", pupil, muted: !(floor && floor.muted) }); break;
    case "lower": send({ type: "lower_hand", pupil }); break;
    case "remove": if (confirmed(t("confirm_remove", { name }))) send({ type: "remove", pupil }); break;
    case "admit": send({ type: "admit", pupil }); break;
    case "refuse": send({ type: "remove", pupil }); break;
  }
}
$("#waiting").addEventListener("click", onAction);
$("#pupils").addEventListener("click", onAction);
$("#hands").addEventListener("click", onAction);
$("#record").addEventListener("click", async () => {
  const action = recording ? "stop" : "start";
  try { await api(`/api/classes/${encodeURIComponent(classId)}/recording/${action}`, { method: "POST", token }); } catch (e) { fail(e); }
});
$("#lock").addEventListener("click", () => send({ type: "lock", locked: !locked, close_players: !locked && $("#lock-players").checked }));
$("#rotate-code").addEventListener("click", () => { if (confirmed(t("confirm_rotate"))) send({ type: "rotate_code" }); });
$("#layout").addEventListener("change", () => send({ type: "set_layout", layout: $("#layout").value }));
$("#end").addEventListener("click", async () => {
  if (!confirmed(t("confirm_end"))) return;
  if (sock && sock.send({ type: "end_class" })) return;
  try { await api(`/api/classes/${encodeURIComponent(classId)}`, { method: "DELETE", token }); } catch (e) { fail(e); }
});
$("#chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("#chat-text").value.trim();
  if (text && send({ type: "chat", text: text.slice(0, 500) })) $("#chat-text").value = "";
});

// ---------------------------------------------------------------- floor pupil playback (WHEP feed=floor)
let floorRx = null;
function setFloor(f) {
  floor = f;
  if (f && !floorRx) {
    floorRx = new Receiver({
      url: () => `/whep/${encodeURIComponent(classId)}?feed=floor`, token, kinds: () => ["audio", "video"],
      onTrack: (i, track) => {
        const el = i === 0 ? $("#floor-audio") : $("#floor-video");
        el.srcObject = new MediaStream([track]);
        if (i === 0) { if ($("#floor-listen").checked) playWithSound(el, () => show($("#floor-unmute"), true)); }
        else el.play().catch(() => {});
      },
      onState: (st, e) => { if (st === "fatal") A.error = e.message; },
    });
    floorRx.start();
  } else if (!f) stopFloor();
}
function stopFloor() { if (floorRx) floorRx.stop(); floorRx = null; $("#floor-audio").srcObject = null; $("#floor-video").srcObject = null; }
function renderFloor() {
  $("#floor-name").textContent = floor ? `${floor.name}${floor.muted ? " (" + t("muted") + ")" : ""}` : t("floor_none");
  show($("#floor-stage"), !!(floor && floor.camera));
}
function applyListen() {
  const a = $("#floor-audio");
  if ($("#floor-listen").checked) playWithSound(a, () => show($("#floor-unmute"), true)); else a.muted = true;
}
$("#floor-listen").addEventListener("change", () => { listenTouched = true; applyListen(); });
$("#floor-unmute").addEventListener("click", () => { show($("#floor-unmute"), false); $("#floor-listen").checked = true; applyListen(); });

// ---------------------------------------------------------------- publish from the browser (WHIP, simulcast)
let pub = null;   // {p, mic, video, source, videoSender}
const SIMULCAST = [
  { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: "h", maxBitrate: 1500000 },
];
if (!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia)) show($("#publish-screen"), false);
async function publishFrom(source) {
  const md = navigator.mediaDevices;
  let video, mic = pub ? pub.mic : null;
  try {
    if (source === "screen") {
      video = (await md.getDisplayMedia({ video: { frameRate: { ideal: 30 } }, audio: false })).getVideoTracks()[0];
      if ("contentHint" in video) video.contentHint = "detail";
      if (!mic) mic = (await md.getUserMedia({ audio: true })).getAudioTracks()[0];
    } else {
      const s = await md.getUserMedia({ audio: !mic, video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } });
      video = s.getVideoTracks()[0];
      if (!mic) mic = s.getAudioTracks()[0];
    }
  } catch (e) { return fail(e); }
  video.addEventListener("ended", () => { if (pub && pub.video === video && source === "screen") publishFrom("camera"); });
  $("#preview").srcObject = new MediaStream([video]);
  show($("#preview-stage"), true);
  if (pub) {   // switch camera <-> screen without renegotiating
    const old = pub.video;
    await pub.videoSender.replaceTrack(video);
    pub.video = video; pub.source = source; old.stop();
    return renderPublish();
  }
  try {
    pub = { mic, video, source, transport: null };
    await whipSession(pub);
  } catch (e) { pub = null; stopTracks(new MediaStream([video, mic].filter(Boolean))); show($("#preview-stage"), false); return fail(e); }
  renderPublish();
}
/**
 * A WHIP session for `cur`'s tracks. ICE tries UDP first, then ICE-TCP and the relay; when the
 * connection fails, or stays disconnected 3 s (UDP died mid-class), a new session replaces it
 * with the same tracks, and the status says which path it found.
 */
async function whipSession(cur) {
  let vt;
  const p = await publish(`/whip/${encodeURIComponent(classId)}`, token, (pc) => {
    pc.addTransceiver(cur.mic, { direction: "sendonly" });
    vt = pc.addTransceiver(cur.video, { direction: "sendonly", sendEncodings: SIMULCAST });
  });
  cur.p = p; cur.videoSender = vt.sender;
  let lost = 0;
  const again = async () => {
    if (pub !== cur || cur.p !== p) return;
    p.stop();
    try { await whipSession(cur); } catch (e) { fail(e); setTimeout(again, 2000); }
    renderPublish();
  };
  cur.again = again;
  p.pc.onconnectionstatechange = async () => {
    const st = p.pc.connectionState;
    clearTimeout(lost);
    if (st === "failed") again();
    else if (st === "disconnected") lost = setTimeout(again, 3000);
    else if (st === "connected") { try { cur.transport = await transportOf(p.pc); } catch (_) { /* unknown */ } }
    renderPublish();
  };
}
function stopPublish() {
  if (!pub) return;
  if (pub.p) pub.p.stop();
  pub.video.stop(); pub.mic.stop(); pub = null;
  $("#preview").srcObject = null; show($("#preview-stage"), false);
  renderPublish();
}
function renderPublish() {
  $("#publish-stop").disabled = !pub;
  const st = pub && pub.p ? pub.p.pc.connectionState : "";
  const fallback = pub && st === "connected" && pub.transport && pub.transport !== "udp" ? " · " + t("fallback", { t: t("tr_" + pub.transport) }) : "";
  $("#publish-status").textContent = pub ? t("publishing", { src: t(pub.source === "screen" ? "l_screen" : "l_camera") }) + (st !== "connected" ? " " + t("st_connecting") : "") + fallback : t("not_publishing");
}
$("#publish-camera").addEventListener("click", () => publishFrom("camera"));
$("#publish-screen").addEventListener("click", () => publishFrom("screen"));
$("#publish-stop").addEventListener("click", stopPublish);
window.addEventListener("pagehide", (ev) => { if (!ev.persisted) { stopPublish(); stopFloor(); } });
onLang(renderPublish);

// ---------------------------------------------------------------- new class
$("#new-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const title = $("#new-title").value.trim();
  try {
    const c = await api("/api/classes", { method: "POST", token, json: title ? { title } : {} });
    const link = `${location.origin}/teacher#token=${encodeURIComponent(c.teacher_token)}`;
    $("#new-link").href = link; $("#new-link").textContent = `${c.title || c.code} — /teacher#token=…`;
    show($("#new-result"), true);
  } catch (e) { fail(e); }
});

init();
loadRecordings();
// How many pupils' tablets were checked with the class's link (anonymous counts).
async function loadChecks() {
  if (!token || !classId) return;
  try {
    const c = await api(`/api/classes/${encodeURIComponent(classId)}/checks`, { token });
    $("#checks").textContent = checksText(c);
    show($("#checks"), c.checked > 0);
  } catch (_) { /* counts are a nicety: the console goes on */ }
}
loadChecks();
setInterval(loadChecks, 60000);
