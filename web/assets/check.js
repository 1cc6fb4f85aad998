// Ardoise — the script of /check (check.html): a parent or a pupil tests a tablet the
// evening before the class, with no login, through the same pipeline as a real class.
//
// Rules of the check:
// - the steps go in order: the browser's support; a test tone (the tap also unlocks the
//   sound of the test stream on tablets); a WHEP session to the server's test programme
//   (the studio's test pattern in three simulcast layers and a tone, relayed by the SFU)
//   for about SECS seconds after its first picture (less once the top layer has held for
//   TOP_HELD_SECS, more, up to MAX_SECS, while the server's estimate still climbs); then, if the user asks, the microphone and
//   camera: a level meter and a 5-second echo through the server in a private class;
// - what is measured: the connection time (WHEP POST → ICE and DTLS up), the first picture,
//   the transport (udp, tcp, relay), RTT and loss (getStats), and the server's side of the
//   session: its bandwidth estimate and the layer its allocator chose;
// - the verdict: no connection, or no picture while the server sends video → "blocked";
//   the server sends no video (the link cannot carry even 180p) → "audio_only"; the top
//   layer at the end with under LOSS_OK loss → "ready"; any other layer → "reduced";
// - the verdict is kept on the device (localStorage `ardoise.check`): the pupil page starts
//   from it; it is sent once to the server, counted anonymously for the join link's class;
// - a join link (`?code=`) that is wrong or expired is said so, and the test runs anyway;
// - the echo is published only into the check's own class: nobody else can hear it; a
//   refused permission gets a plain sentence, never an error trace.
import {
  t, applyI18n, mountLangToggle, onLang, $, h, show, api, errorText, negotiate, hangup, rtcConfig, transportOf,
  publish, stopTracks,
} from "/assets/ardoise.js";

const SECS = 15;              // seconds measured after the first picture (about)
const TOP_HELD_SECS = 5;      // the top layer held this long ends the measure early…
const MIN_SECS = 8;           // …but not before this
const MAX_SECS = 20;          // an estimate still climbing is followed up to this
const CONNECT_SECS = 10;      // no connection by then: the network blocks it
const PICTURE_SECS = 20;      // connected, no picture by then: the video is blocked
const LOSS_OK = 0.05;         // loss under which the top layer is "ready"
const ECHO_SECS = 5;
const STORE = "ardoise.check";

const code = (new URLSearchParams(location.search).get("code") || "").trim() || null;
const video = $("#video");
// What the page found, for support staff and tests (`window.__check`).
const report = {
  support: null, heard: null, link: null, programme: null, phase: "idle", connectMs: null, firstFrameMs: null,
  transport: null, rttMs: null, loss: null, estimateBps: null, layer: null, layers: [], frames: 0,
  verdict: null, reported: false, echo: null, error: null,
};
window.__check = report;

mountLangToggle($("#lang-slot"));
applyI18n();
onLang(() => render());
if (code) $("#back").href = `/c/${encodeURIComponent(code)}`;

// ---------------------------------------------------------------- 1. the browser
function support() {
  const rtc = typeof RTCPeerConnection === "function";
  let codecs = [];
  try { codecs = rtc ? RTCRtpReceiver.getCapabilities("video").codecs.map((c) => c.mimeType.toLowerCase()) : []; } catch (_) { /* none */ }
  return {
    webrtc: rtc,
    vp8: codecs.includes("video/vp8"),
    h264: codecs.includes("video/h264"),
    audio: !!(window.AudioContext || window.webkitAudioContext),
    mse: !!(window.MediaSource || window.ManagedMediaSource),
  };
}
report.support = support();
const usable = report.support.webrtc && (report.support.vp8 || report.support.h264) && report.support.audio;

function renderSupport() {
  const list = $("#support");
  list.replaceChildren(...Object.entries(report.support).map(([k, ok]) =>
    h("li", { "data-ok": String(ok) }, `${ok ? "✓" : "✗"} ${t(`check_${k === "webrtc" ? "webrtc" : k}`)}`)));
}

// ---------------------------------------------------------------- 2. the sound
let check = null; // {token, class, link, programme, at}: the check's token, once asked for
async function checkToken() {
  // A token lives ttl_secs: an echo asked for later gets a fresh one.
  if (!check || Date.now() - check.at > (check.ttl_secs - 10) * 1000) {
    check = { ...(await api("/api/check", { method: "POST", json: code ? { code } : {} })), at: Date.now() };
  }
  return check;
}

$("#tone").addEventListener("click", () => {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (Ctx) {
    const ctx = new Ctx();
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    const t0 = ctx.currentTime;
    osc.frequency.value = 440;
    gain.gain.setValueAtTime(0.0001, t0);
    gain.gain.exponentialRampToValueAtTime(0.3, t0 + 0.05);
    gain.gain.setValueAtTime(0.3, t0 + 0.9);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 1);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t0);
    osc.stop(t0 + 1.05);
    osc.onended = () => ctx.close();
  }
  show($("#heard-row"), true);
  // The same tap lets the test stream play with its sound.
  video.muted = false;
  video.play().catch(() => {});
  if (usable && report.phase === "idle") connection();
});
for (const [id, heard] of [["#heard-yes", true], ["#heard-no", false]]) {
  $(id).addEventListener("click", () => { report.heard = heard; render(); });
}

// ---------------------------------------------------------------- 3. the connection
async function connection() {
  report.phase = "starting";
  render();
  let c;
  try { c = await checkToken(); } catch (e) { report.phase = "done"; report.error = errorText(e); render(); return; }
  report.link = c.link;
  report.programme = c.programme;
  if (!c.programme) { report.phase = "done"; render(); return; }
  const pc = new RTCPeerConnection(await rtcConfig(c.token));
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addTransceiver("video", { direction: "recvonly" });
  const stream = new MediaStream();
  video.srcObject = stream;
  pc.ontrack = (ev) => stream.addTrack(ev.track);
  const timing = { start: performance.now() };
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected" && !timing.connected) {
      timing.connected = performance.now();
      report.connectMs = Math.round(timing.connected - (timing.post || timing.start));
      render();
    }
  });
  const firstFrame = () => {
    if (timing.firstFrame) return;
    timing.firstFrame = performance.now();
    report.firstFrameMs = Math.round(timing.firstFrame - (timing.post || timing.start));
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(firstFrame);
  else video.addEventListener("loadeddata", firstFrame, { once: true });
  let session = null;
  report.phase = "measuring";
  try {
    session = await negotiate(pc, `/whep/${encodeURIComponent(c.class)}?quality=auto`, c.token, timing);
  } catch (e) {
    report.error = errorText(e);
  }
  const id = session ? session.split("/").pop() : null;
  const began = performance.now();
  let prev = null, topSince = null;
  const estimates = [];
  // The server's estimate grew by a tenth over the last three seconds.
  const climbing = () => estimates.length > 3 && estimates[estimates.length - 1] > 1.1 * estimates[estimates.length - 4];
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = performance.now();
    await measure(pc, id, c.token, prev).then((p) => { prev = p; }).catch(() => {});
    estimates.push(report.estimateBps || 0);
    if (report.layer !== "high") topSince = null;
    else if (topSince === null) topSince = now;
    render();
    if (!timing.connected && now - began > CONNECT_SECS * 1000) break;
    if (timing.connected && !timing.firstFrame && report.layer !== "audio" && now - timing.connected > PICTURE_SECS * 1000) break;
    if (timing.connected && !timing.firstFrame && report.layer === "audio" && now - timing.connected > SECS * 1000) break;
    if (timing.firstFrame) {
      const since = now - timing.firstFrame, top = report.layer === "high" && topSince !== null ? now - topSince : 0;
      if (since > MIN_SECS * 1000 && top > TOP_HELD_SECS * 1000) break;
      // Still climbing (the estimator ramps up; the layer follows): a few more seconds.
      if (since > SECS * 1000 && (report.layer === "high" || !climbing())) break;
      if (since > MAX_SECS * 1000) break;
    }
    if (now - began > (CONNECT_SECS + PICTURE_SECS + SECS) * 1000) break;
  }
  report.verdict = verdict(!!timing.connected, !!timing.firstFrame);
  report.phase = "done";
  // (DELETE first: a closed connection is gone from the server before the request lands.)
  hangup(session, c.token);
  pc.close();
  try { localStorage.setItem(STORE, JSON.stringify({ verdict: report.verdict, layer: report.layer, estimateBps: report.estimateBps, at: Date.now() })); } catch (_) { /* private mode */ }
  try {
    await api("/api/check/verdict", { method: "POST", token: c.token, json: code ? { verdict: report.verdict, code } : { verdict: report.verdict } });
    report.reported = true;
  } catch (_) { /* counted or not, the verdict stands on the device */ }
  render();
}

/** One second's measures: the page's stats, and the server's view of the session. */
async function measure(pc, id, token, prev) {
  const rep = await pc.getStats();
  let recv = 0, lost = 0, frames = 0, rtt = null;
  rep.forEach((r) => {
    if (r.type === "inbound-rtp") {
      recv += r.packetsReceived || 0;
      lost += Math.max(0, r.packetsLost || 0);
      if ((r.kind || r.mediaType) === "video") frames = r.framesDecoded || 0;
    } else if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded" && r.currentRoundTripTime !== undefined) {
      rtt = r.currentRoundTripTime;
    }
  });
  report.frames = frames;
  if (rtt !== null) report.rttMs = Math.round(rtt * 1000);
  report.transport = (await transportOf(pc)) || report.transport;
  if (prev) {
    const dr = recv - prev.recv, dl = lost - prev.lost;
    // Loss over the whole measure, smoothed: a single lost packet is no verdict.
    const l = dr + dl > 0 ? Math.max(0, dl) / (dr + dl) : 0;
    report.loss = report.loss === null ? l : 0.7 * report.loss + 0.3 * l;
  }
  if (id) {
    try {
      const s = await api(`/api/check/session/${encodeURIComponent(id)}`, { token });
      if (s.estimate_bps) report.estimateBps = s.estimate_bps;
      if (s.layer && s.layer !== report.layer) {
        report.layer = s.layer;
        report.layers.push({ at: Math.round(performance.now()), layer: s.layer });
      }
      if (s.transport) report.transport = s.transport;
    } catch (_) { /* the session is gone: the loop ends on its own */ }
  }
  return { recv, lost };
}

function verdict(connected, picture) {
  if (!connected) return "blocked";
  if (report.layer === "audio") return "audio_only";
  if (!picture) return "blocked";
  if (report.layer === "high" && (report.loss || 0) < LOSS_OK) return "ready";
  return "reduced";
}

// ---------------------------------------------------------------- 4. microphone and camera
async function echo() {
  const status = $("#echo-status");
  const say = (text, kind) => { status.textContent = text; status.dataset.kind = kind || ""; show(status, true); };
  $("#echo").disabled = true;
  let media = null, out = null, pc = null, session = null, token = null, meter = 0, ctx = null;
  try {
    try {
      media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 180 } });
    } catch (e) {
      if (e && (e.name === "NotFoundError" || e.name === "OverconstrainedError" || e.name === "NotReadableError")) {
        media = await navigator.mediaDevices.getUserMedia({ audio: true });
      } else throw e;
    }
    // The level meter: what the microphone hears, before the network.
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (Ctx) {
      ctx = new Ctx();
      const an = ctx.createAnalyser();
      an.fftSize = 512;
      ctx.createMediaStreamSource(media).connect(an);
      const buf = new Float32Array(an.fftSize);
      show($("#level"), true);
      meter = setInterval(() => {
        an.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const v of buf) sum += v * v;
        $("#level").value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
      }, 100);
    }
    const c = await checkToken();
    const e = await api("/api/check/echo", { method: "POST", token: c.token });
    token = e.token;
    out = await publish(`/whip/${encodeURIComponent(e.class)}`, token, (p) => {
      for (const tr of media.getTracks()) p.addTransceiver(tr, { direction: "sendonly", streams: [media] });
    });
    pc = new RTCPeerConnection(await rtcConfig(token));
    pc.addTransceiver("audio", { direction: "recvonly" });
    const withVideo = media.getVideoTracks().length > 0;
    if (withVideo) pc.addTransceiver("video", { direction: "recvonly" });
    const back = new MediaStream();
    $("#echo-video").srcObject = back;
    show($("#echo-stage"), true);
    pc.ontrack = (ev) => { back.addTrack(ev.track); $("#echo-video").play().catch(() => {}); };
    session = await negotiate(pc, `/whep/${encodeURIComponent(e.class)}?feed=floor`, token);
    say(t("check_echo_running"));
    await new Promise((r) => setTimeout(r, ECHO_SECS * 1000));
    let audioPackets = 0, energy = 0, videoFrames = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      if ((r.kind || r.mediaType) === "audio") { audioPackets += r.packetsReceived || 0; energy += r.totalAudioEnergy || 0; }
      else videoFrames += r.framesDecoded || 0;
    });
    const ok = audioPackets > 0 && energy > 0;
    report.echo = { ok, audioPackets, energy, videoFrames };
    say(t(ok ? "check_echo_ok" : "check_echo_silent"), ok ? "ok" : "warn");
  } catch (e) {
    const name = e && e.name;
    const text = name === "NotAllowedError" || name === "SecurityError" ? t("check_denied")
      : name === "NotFoundError" ? t("check_no_device") : errorText(e);
    report.echo = { ok: false, error: name || String(e) };
    say(text, "error");
  } finally {
    clearInterval(meter);
    if (ctx) ctx.close().catch(() => {});
    hangup(session, token);
    if (pc) pc.close();
    if (out) out.stop();
    stopTracks(media);
    $("#echo").disabled = false;
  }
}
$("#echo").addEventListener("click", echo);

// ---------------------------------------------------------------- the page
function render() {
  renderSupport();
  if (report.link) {
    const l = $("#link");
    l.textContent = report.link.valid ? t("check_link_ok", { title: report.link.title }) : t("check_link_bad");
    l.dataset.kind = report.link.valid ? "ok" : "warn";
    show(l, true);
  }
  if (report.heard !== null) {
    $("#sound").textContent = t(report.heard ? "check_heard" : "check_not_heard");
    $("#sound").dataset.kind = report.heard ? "ok" : "warn";
    show($("#sound"), true);
  }
  const p = $("#progress");
  if (!usable) p.textContent = t("check_old_browser");
  else if (report.programme === false) p.textContent = t("check_no_programme");
  else if (report.error && report.phase === "done") p.textContent = report.error;
  else if (report.phase === "measuring") p.textContent = t("check_running", { s: SECS });
  else if (report.phase === "done") p.textContent = "";
  show($("#measures"), report.phase !== "idle" && report.programme !== false);
  const ms = (v) => (v === null ? "—" : `${v} ms`);
  $("#m-connect").textContent = ms(report.connectMs);
  $("#m-transport").textContent = report.transport ? t(`check_t_${report.transport}`) : "—";
  $("#m-rtt").textContent = ms(report.rttMs);
  $("#m-loss").textContent = report.loss === null ? "—" : `${(report.loss * 100).toFixed(1)} %`;
  $("#m-estimate").textContent = report.estimateBps ? `${Math.round(report.estimateBps / 1000)} kbit/s` : "—";
  $("#m-layer").textContent = report.layer ? t(`check_l_${report.layer}`) : "—";
  const v = $("#verdict");
  if (!usable) { v.textContent = t("check_old_browser"); v.dataset.verdict = "blocked"; }
  else if (report.verdict) {
    v.replaceChildren(h("strong", {}, t(`check_v_${report.verdict}`)), h("br"), t(`check_v_${report.verdict}_help`));
    v.dataset.verdict = report.verdict;
  } else v.textContent = t("check_pending");
}
render();
