// Ardoise — the script of / (pupil.html), served from /assets/pupil.js: pages
// carry no inline script (CSP script-src 'self').
import { t, applyI18n, mountLangToggle, onLang, $, show, api, errorText, jwtClaims, Receiver, publish,
         inboundByTransceiver, LinkMeter, ClassSocket, appendChat, playWithSound, stopTracks, transportOf, TimecodeReader,
         Failover, classServer } from "/assets/ardoise.js";

const KEY = "ardoise.pupil";
const video = $("#video"), pipVideo = $("#pip-video"), floorAudio = $("#floor-audio");
const pathCode = (/^\/c\/([^/]+)/.exec(location.pathname) || [])[1];
const code = pathCode ? decodeURIComponent(pathCode) : null;

let sess = null;        // {token, class, code, name}
let you = null;         // own member id
let sock = null, rx = null, meterTimer = 0, slots = [];
let floor = null, live = false, hand = false, removed = false, ended = false;
let level = null, sentLevel = null, everConnected = false;
let transport = null;    // "udp", "tcp" or "relay" once connected
let pub = null;         // floor publishing: {camera, gen, stream?, p?, connected}
let pubGen = 0;
let mediaState = ["connecting"], wsState = null, wsLost = false, welcomed = false;
let rxStarted = false, inWaitingRoom = false;
let weakAudioOnly = false; // the server stopped the picture: the connection is too weak
const meter = new LinkMeter();
const api_ = { error: null };

mountLangToggle($("#lang-slot"));
applyI18n();
onLang(() => { renderStatus(); renderHand(); renderFloor(); renderConn(); });

// ---------------------------------------------------------------- join
function load() { try { return JSON.parse(sessionStorage.getItem(KEY)); } catch (_) { return null; } }
function startup() {
  // Sent here by another server of the cluster (its own died, or the class moved): the
  // session comes in the fragment, which no server sees.
  const carried = /(?:^#|&)session=([^&]+)/.exec(location.hash);
  if (carried) {
    try { sessionStorage.setItem(KEY, decodeURIComponent(carried[1])); } catch (_) { /* ignored */ }
    history.replaceState(null, "", location.pathname + location.search);
  }
  const saved = load();
  if (saved && saved.token && (!code || saved.code === code || saved.class === code)) return enter(saved);
  show($("#join-view"), true);
  if (code) { $("#code").value = code; show($("#code-field"), false); titleOf(code); }
  // Sent here with the name already typed on another server's page: it is filled in, and
  // the pupil confirms (a link cannot join anyone under a name of its choosing).
  const named = /(?:^#|&)name=([^&]+)/.exec(location.hash);
  if (code && named) {
    $("#name").value = decodeURIComponent(named[1]).slice(0, 64);
    history.replaceState(null, "", location.pathname + location.search);
    $("#join").focus();
    return;
  }
  if (code) $("#check-link").href = `/check?code=${encodeURIComponent(code)}`;
  (code ? $("#name") : $("#code")).focus();
}
async function titleOf(c) {
  try {
    const info = await api(`/api/classes/${encodeURIComponent(c)}`);
    $("#class-title").textContent = info.title || info.code;
    show($("#rec-notice"), !!info.recording);
    if (info.state === "ended") showEnded();
  } catch (_) { /* shown on join */ }
}
$("#join-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = $("#join-error");
  const name = $("#name").value.trim(), c = $("#code").value.trim();
  const fail = (msg) => { err.textContent = msg; show(err, true); };
  if (!c) return fail(t("code_invalid"));
  if (name.length < 1 || [...name].length > 32) return fail(t("name_invalid"));
  show(err, false);
  $("#join").disabled = true;
  // A cluster of servers: a code typed on another server's page joins on the class's own
  // (the page goes there, and joins with the name given).
  const owner = await classServer(location.origin, c);
  if (owner && owner !== location.origin) {
    location.assign(`${owner}/c/${encodeURIComponent(c)}#name=${encodeURIComponent(name)}`);
    return;
  }
  try {
    const r = await api(`/api/classes/${encodeURIComponent(c)}/join`, { method: "POST", json: { name } });
    const s = { token: r.token, class: r.class, code: c, name, waiting_room: !!r.waiting_room, nodes: r.nodes || [] };
    sessionStorage.setItem(KEY, JSON.stringify(s));
    enter(s);
  } catch (e) {
    fail(errorText(e));
  } finally { $("#join").disabled = false; }
});

function enter(s) {
  sess = s;
  you = (jwtClaims(s.token) || {}).sub || null;
  show($("#join-view"), false);
  show($("#class-view"), true);
  titleOf(s.class);
  sock = new ClassSocket(s.class, s.token, onEvent, (st, info) => {
    if (st !== "open" && welcomed) wsLost = true;
    wsState = st === "open" ? null : [st, info]; renderStatus();
    failover.socket(st);
  });
  rx = new Receiver({
    url: whepUrl, token: s.token, kinds: () => slots.map((x) => x[0]), onTrack, onState: onMediaState,
    videoCodecs: () => videoCodecs,
  });
  setSlots();
  // With a waiting room, the picture starts once the teacher lets the pupil in (welcome).
  if (!s.waiting_room) { rx.start(); rxStarted = true; }
  meterTimer = setInterval(tickQuality, 2000);
}

// ---------------------------------------------------------------- class media (WHEP)
// A tablet that decodes H.264 in hardware but not VP8 asks for H.264 first: a class whose
// studio publishes H.264 (`studio.codec = "h264"`) then plays without draining its battery;
// a VP8 class still plays (VP8 stays in the offer). Tests: `?codec=h264` offers H.264 only,
// `?codec=h264-first` puts it first.
let videoCodecs = null;
(async () => {
  const forced = new URLSearchParams(location.search).get("codec");
  if (forced === "h264" || forced === "h264-first") { videoCodecs = { mimes: ["video/H264"], only: forced === "h264" }; return; }
  if (!navigator.mediaCapabilities || !navigator.mediaCapabilities.decodingInfo) return;
  const info = (contentType) => navigator.mediaCapabilities
    .decodingInfo({ type: "webrtc", video: { contentType, width: 1280, height: 720, bitrate: 1500000, framerate: 30 } })
    .catch(() => null);
  const [vp8, h264] = await Promise.all([info("video/VP8"), info("video/H264;profile-level-id=42e01f")]);
  if (vp8 && h264 && h264.supported && h264.powerEfficient && !vp8.powerEfficient) videoCodecs = { mimes: ["video/H264"], only: false };
})();
const quality = () => $("#quality").value;
function setSlots() {
  slots = quality() === "audio"
    ? [["audio", "classAudio"], ["audio", "floorAudio"]]
    : [["audio", "classAudio"], ["video", "classVideo"], ["audio", "floorAudio"], ["video", "floorVideo"]];
}
// The server adapts the picture to the link; the pupil's choice caps it.
// The pre-class check's measure (/check, kept on the device for CHECK_DAYS): the server's
// estimator, and so the first layer, start from what the link carried then, instead of
// climbing from 180p. (A week: a tablet checked at home may join from elsewhere; the
// server takes at most 3 Mbit/s of it, and its first estimate takes a worse link down.)
const CHECK_DAYS = 7;
function checkedKbps() {
  try {
    const c = JSON.parse(localStorage.getItem("ardoise.check"));
    if (c && c.estimateBps > 0 && Date.now() - c.at < CHECK_DAYS * 86400000) return Math.round(c.estimateBps / 1000);
  } catch (_) { /* none */ }
  return null;
}
function whepUrl() {
  const start = checkedKbps();
  return `/whep/${encodeURIComponent(sess.class)}?feed=class&quality=${encodeURIComponent(quality())}${start ? `&start_kbps=${start}` : ""}`;
}
let classStream = null, floorVideoTrack = null, pipStream = null;
// Test mode (`?timecode`): read the studio's burnt-in capture time from each frame
// (glass-to-glass delay); `?jitter=MS`: set the receivers' jitter-buffer target.
const testParams = new URLSearchParams(location.search);
const timecode = testParams.has("timecode");
const jitterTarget = testParams.has("jitter") ? Number(testParams.get("jitter")) : null;
let glass = null;
function onTrack(i, track) {
  const role = slots[i] && slots[i][1];
  if (role === "classAudio" || role === "classVideo") {
    if (!classStream || !classStream.active) { classStream = new MediaStream(); video.srcObject = classStream; }
    for (const old of classStream.getTracks()) if (old.kind === track.kind) classStream.removeTrack(old);
    classStream.addTrack(track);
    if (track.kind === "video" && timecode && !glass) glass = new TimecodeReader(video);
    if (track.kind === "video" && jitterTarget !== null && rx) {
      // (Test mode: the jitter buffer's target, ms, on every receiver of the class.)
      for (const t of rx.tx) if ("jitterBufferTarget" in t.receiver) t.receiver.jitterBufferTarget = jitterTarget;
    }
    if (track.kind === "video" && video.requestVideoFrameCallback && rx && rx.timing) {
      const timing = rx.timing;
      video.requestVideoFrameCallback(() => { timing.firstFrame = timing.firstFrame || performance.now(); });
    }
    playWithSound(video, () => show($("#unmute"), true));
  } else if (role === "floorAudio") {
    floorAudio.srcObject = new MediaStream([track]);
    floorAudio.muted = isMine();
    floorAudio.play().catch(() => show($("#unmute"), true));
  } else if (role === "floorVideo") {
    floorVideoTrack = track;
  }
  renderFloor();
}
function onMediaState(st, info) {
  if (st === "connected") everConnected = true;
  if (st === "fatal") {
    if (info.status === 410 || info.status === 404) return showEnded();
    if (info.status === 401 && !removed) return expired();
    api_.error = info.message;
  }
  mediaState = [st, info];
  renderStatus();
}
function renderStatus() {
  const el = $("#status");
  const [st, info] = mediaState;
  let text = st === "retrying" ? t("st_retry", { s: Math.round(info.delay / 1000) })
    : st === "fatal" ? errorText(info) : t("st_" + st) || "";
  if (wsState && wsState[0] === "reconnecting") text += " · " + t("st_ws_down", { s: (wsState[1].delay / 1000).toFixed(1) });
  el.textContent = st === "stopped" ? "" : text;
  el.dataset.kind = st === "connected" && !wsState ? "ok" : st === "fatal" ? "error" : "";
  show(el, st !== "stopped");
  const audioOnly = quality() === "audio" || weakAudioOnly;
  show($("#overlay"), !live || audioOnly || inWaitingRoom);
  $("#overlay").textContent = inWaitingRoom ? t("waiting_admit") : !live ? t("waiting_teacher") : weakAudioOnly && quality() !== "audio" ? t("audio_only_weak") : t("audio_only_on");
}
$("#quality").addEventListener("change", () => {
  try { localStorage.setItem("ardoise.quality", quality()); } catch (_) { /* ignore */ }
  classStream = null; floorVideoTrack = null;
  setSlots();
  if (rx && rxStarted) rx.restart();
  renderStatus();
});
try { const q = localStorage.getItem("ardoise.quality"); if (["auto", "saver", "audio"].includes(q)) $("#quality").value = q; } catch (_) { /* ignore */ }

$("#unmute").addEventListener("click", () => {
  video.muted = false; video.play().catch(() => {});
  floorAudio.muted = isMine(); floorAudio.play().catch(() => {});
  show($("#unmute"), false);
});
$("#fullscreen").addEventListener("click", () => {
  const st = $("#stage");
  if (document.fullscreenElement || document.webkitFullscreenElement) return (document.exitFullscreen || document.webkitExitFullscreen).call(document);
  if (st.requestFullscreen) st.requestFullscreen().catch(() => {});
  else if (st.webkitRequestFullscreen) st.webkitRequestFullscreen();
  else if (video.webkitEnterFullscreen) video.webkitEnterFullscreen();
});

// ---------------------------------------------------------------- quality indicator
async function tickQuality() {
  if (!rx || !rx.pc) return;
  if (!everConnected) return;
  try {
    level = (await meter.measure(rx.pc, live)).level;
    transport = await transportOf(rx.pc);
  } catch (_) { return; }
  renderConn();
  if (level !== sentLevel && sock && sock.send({ type: "quality", level })) sentLevel = level;
}
function renderConn() {
  const c = $("#conn");
  show(c, !!level);
  if (!level) return;
  // UDP is the normal path; over ICE-TCP or a relay the page says it runs on a fallback.
  const text = t("conn_" + level) + (transport && transport !== "udp" ? " · " + t("fallback", { t: t("tr_" + transport) }) : "");
  if (c.dataset.level === level && c.textContent === text) return;   // no needless re-announcement
  c.dataset.level = level;
  c.dataset.transport = transport || "";
  c.textContent = text;
  c.setAttribute("aria-label", t("conn_label") + " : " + text);
}

// ---------------------------------------------------------------- servers of a cluster
// The class lives on one server of the cluster. When it moves (`moved`), the page loads
// again through its server, which sends it to the new one; when the page's own server
// stops answering, it asks the others where the class lives now and goes there.
function goTo(origin) {
  if (!sess) return;
  const carried = encodeURIComponent(JSON.stringify(sess));
  leave();
  // A query of its own: the same address with another fragment would not load the page.
  location.assign(`${origin}/c/${encodeURIComponent(sess.code)}?from=${Date.now()}#session=${carried}`);
}
const failover = new Failover(() => (sess && sess.nodes) || [], (origin) => classServer(origin, sess.class), goTo);

// ---------------------------------------------------------------- class events
function onEvent(m) {
  switch (m.type) {
    case "waiting":
      inWaitingRoom = true;
      if (m.title) $("#class-title").textContent = m.title;
      renderStatus();
      break;
    case "welcome":
      inWaitingRoom = false;
      // Back after losing the socket (server restarted, network changed): the media
      // session is most likely gone too; start a fresh one now instead of waiting for ICE.
      if (!rxStarted && rx) { rx.start(); rxStarted = true; }
      else if (wsLost && rx) rx.restart();
      wsLost = false; welcomed = true;
      you = m.you.id; hand = !!m.you.hand; live = !!m.live; sentLevel = null;
      show($("#rec-badge"), !!m.recording);
      $("#chat-log").replaceChildren();
      for (const c of m.chat || []) appendChat($("#chat-log"), c);
      if (m.class && m.class.title) $("#class-title").textContent = m.class.title;
      setFloor(m.floor || null); renderHand(); renderStatus();
      break;
    case "hand": if (m.id === you) { hand = !!m.raised; renderHand(); } break;
    case "chat": appendChat($("#chat-log"), m); break;
    case "floor": setFloor(m.floor || null); break;
    case "mute": if (floor && m.pupil === floor.pupil) setFloor({ ...floor, muted: !!m.muted }); break;
    case "video": weakAudioOnly = !!m.audio_only; renderStatus(); break;
    case "live": live = !!m.live; if (live && rx && mediaState[0] === "retrying") rx.restart(); renderStatus(); break;
    case "removed": if (m.id === you) showRemoved(); break;
    case "class_ended": showEnded(); break;
    case "moved": goTo(location.origin); break;
    case "reconnect": if (rx) rx.restart(); if (pub && isMine()) startPublish(pub.camera); break;
    case "recording": show($("#rec-badge"), !!m.on); break;
    case "error":
      if (m.code === "unauthorized" && !removed && !ended) expired();
      else console.warn("ardoise:", m.code, m.message);
      break;
  }
}
function renderHand() {
  const b = $("#hand");
  b.setAttribute("aria-pressed", String(hand));
  b.textContent = t(hand ? "hand_lower" : "hand_raise");
}
// The button shows the hand as the server holds it (its `hand` event, sent to the class
// and to the teacher at once): pressed means the teacher sees it, and a hand the server
// refuses (no teacher in the class yet) never shows raised.
$("#hand").addEventListener("click", () => {
  if (sock) sock.send({ type: hand ? "lower_hand" : "raise_hand" });
});
$("#chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("#chat-text"), text = input.value.trim();
  if (!text) return;
  if (sock && sock.send({ type: "chat", text: text.slice(0, 500), private: $("#chat-private").checked })) input.value = "";
  else appendChat($("#chat-log"), { name: "Ardoise", role: "teacher", text: t("chat_offline") });
});

// ---------------------------------------------------------------- floor (WHIP)
const isMine = () => !!(floor && you && floor.pupil === you);
function setFloor(f) {
  floor = f;
  const mine = isMine();
  floorAudio.muted = mine || floorAudio.muted && !$("#unmute").hidden;
  if (mine && (!pub || pub.camera !== !!f.camera)) startPublish(!!f.camera);
  else if (!mine && pub) stopPublish();
  if (pub && pub.stream) for (const tr of pub.stream.getAudioTracks()) tr.enabled = !f.muted;
  renderFloor();
}
async function startPublish(camera, attempt = 0) {
  stopPublish();
  const gen = ++pubGen;
  pub = { camera, gen, connected: false };
  renderFloor();
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: camera ? { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } } : false,
    });
    if (gen !== pubGen) return stopTracks(stream);
    pub.stream = stream;
    renderFloor();
    if (floor && floor.muted) for (const tr of stream.getAudioTracks()) tr.enabled = false;
    const p = await publish(`/whip/${encodeURIComponent(sess.class)}`, sess.token, (pc) => {
      for (const tr of stream.getAudioTracks()) pc.addTransceiver(tr, { direction: "sendonly", streams: [stream] });
      for (const tr of stream.getVideoTracks()) pc.addTransceiver(tr, { direction: "sendonly", streams: [stream] });
    });
    if (gen !== pubGen) { p.stop(); return stopTracks(stream); }
    pub.p = p;
    const onState = () => {
      if (gen !== pubGen) return;
      const s = p.pc.connectionState;
      pub.connected = s === "connected";
      if (s === "failed" && isMine()) { stopPublish(); setTimeout(() => { if (isMine() && !pub) startPublish(camera); }, 1000); }
      renderFloor();
    };
    p.pc.onconnectionstatechange = onState;
    onState();
  } catch (e) {
    if (gen !== pubGen) return;
    console.error("ardoise: floor publish:", e);
    stopPublish();
    if (e && (e.name === "NotAllowedError" || e.name === "NotFoundError")) { api_.error = e.message; $("#floor-info").textContent = t("mic_denied"); return; }
    if (attempt < 3 && isMine()) setTimeout(() => { if (isMine() && !pub) startPublish(camera, attempt + 1); }, 1000 * 2 ** attempt);
  }
}
function stopPublish() {
  pubGen++;
  if (!pub) return;
  if (pub.p) pub.p.stop();
  stopTracks(pub.stream);
  pub = null;
  renderFloor();
}
function renderFloor() {
  const mine = isMine();
  const liveNow = !!(mine && pub && pub.connected);
  show($("#live-banner"), liveNow);
  $("#live-banner").dataset.muted = String(!!(floor && floor.muted));
  $("#live-text").textContent = t(floor && floor.muted ? "live_muted" : "live_you");
  const info = $("#floor-info");
  if (mine && !liveNow) info.textContent = t("live_starting");
  else if (floor && !mine) info.textContent = t("floor_other", { name: floor.name });
  else if (!info.textContent.startsWith(t("mic_denied")) || !mine) info.textContent = "";
  // the small picture: own camera while live with camera, else the floor pupil's camera
  let want = null;
  if (mine) want = pub && pub.camera && pub.stream ? pub.stream : null;
  else if (floor && floor.camera && floorVideoTrack && quality() !== "audio") {
    if (!pipStream || pipStream.getTracks()[0] !== floorVideoTrack) pipStream = new MediaStream([floorVideoTrack]);
    want = pipStream;
  }
  if (pipVideo.srcObject !== want) pipVideo.srcObject = want;
  show($("#pip"), !!want);
  $("#pip-name").textContent = floor ? t("floor_camera", { name: floor.name }) : "";
  if (want) pipVideo.play().catch(() => {});
}

// ---------------------------------------------------------------- leaving
function leave(revoked) {   // revoked: the server already closed our sessions; no DELETE with a dead token
  if (sock) sock.close();
  if (rx) { if (revoked) rx.session = null; rx.stop(); }
  if (revoked && pub && pub.p) { pub.p.pc.close(); pub.p = null; }
  stopPublish();
  clearInterval(meterTimer);
  sock = rx = null; level = null;
  video.srcObject = null; floorAudio.srcObject = null; pipVideo.srcObject = null; floorVideoTrack = null;
  try { sessionStorage.removeItem(KEY); } catch (_) { /* ignore */ }
  show($("#class-view"), false); show($("#conn"), false);
}
function expired() { leave(true); show($("#join-view"), true); $("#join-error").textContent = t("e401"); show($("#join-error"), true); }
function showRemoved() { removed = true; leave(true); show($("#notices"), true); show($("#removed-msg"), true); show($("#again"), true); }
function showEnded() { ended = true; leave(); show($("#notices"), true); show($("#join-view"), false); show($("#ended-msg"), true); }
$("#leave").addEventListener("click", () => { leave(); location.href = code ? `/c/${encodeURIComponent(code)}` : "/"; });
window.addEventListener("pagehide", (ev) => { if (!ev.persisted) { if (rx) rx.stop(); stopPublish(); } });

// ---------------------------------------------------------------- test hooks
window.ardoise = api_;
api_.token = () => (sess ? sess.token : null);
api_.you = () => you;
/** Test mode: the glass-to-glass samples read so far (see TimecodeReader). */
api_.glass = () => (glass ? { samples: glass.samples.slice(), unread: glass.unread } : null);
/** The class picture's session URL (on the class's server, or on one of its edges). */
api_.session = () => (rx ? rx.session : null);
/** The class picture's latest session: when each step happened (see Receiver.timing). */
api_.timing = () => (rx && rx.timing ? { ...rx.timing } : null);
api_.stats = async () => {
  const out = { framesDecoded: 0, frameWidth: 0, audioPacketsReceived: 0, floorAudioPacketsReceived: 0,
    audioSamples: 0, audioConcealed: 0, audioCodec: "",
    state: rx && rx.pc ? rx.pc.connectionState : "closed", live: !$("#live-banner").hidden,
    removed, ended, hand, quality: level || "offline", audioOnlyWeak: weakAudioOnly, transport };
  if (!rx || !rx.pc) return out;
  const per = await inboundByTransceiver(rx.pc, rx.tx);
  per.forEach((r, i) => {
    if (!r || !slots[i]) return;
    const role = slots[i][1];
    if (role === "classVideo") {
      out.framesDecoded = r.framesDecoded || 0; out.frameWidth = r.frameWidth || 0; out.videoCodecId = r.codecId || "";
      if (r.jitterBufferEmittedCount) out.videoJitterBufferMs = Math.round((1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount);
    }
    else if (role === "classAudio") {
      out.audioPacketsReceived = r.packetsReceived || 0;
      out.audioSamples = r.totalSamplesReceived || 0;
      out.audioConcealed = r.concealedSamples || 0;
      out.audioCodecId = r.codecId || "";
    }
    else if (role === "floorAudio") out.floorAudioPacketsReceived = r.packetsReceived || 0;
  });
  if (out.audioCodecId) {
    const rep = await rx.pc.getStats();
    const c = rep.get(out.audioCodecId);
    out.audioCodec = c ? c.mimeType : "";
  }
  if (out.videoCodecId) {
    const c = (await rx.pc.getStats()).get(out.videoCodecId);
    out.videoCodec = c ? c.mimeType : "";
  }
  delete out.audioCodecId;
  delete out.videoCodecId;
  return out;
};
startup();
