// Ardoise — the script of /replay (replay.html): the class's recordings, and a player that
// fits the pupil's link. Pages carry no inline script (CSP script-src 'self').
//
// Rules of the player:
// - every layer of a recording is a list of segments on one timeline (start_s, end_s from
//   the recorder): WebM (VP8), whose files keep those times, or fragmented MP4 (H.264),
//   whose files start at zero and are placed at their start; the player fetches one
//   segment at a time with the pupil's token and appends it to a Media Source, so it
//   knows each fetch's throughput;
// - it starts on the layer a first measurement of the link carries (a slice of the top
//   layer's largest segment), then, at each segment, takes the best layer whose bitrate fits
//   in 70% of the measured throughput (an average of the last fetches);
// - the pupil may pin a layer instead (a metered link: 180p saves data), remembered on the
//   device; it applies from the next segment fetched;
// - it keeps at most AHEAD seconds buffered: a changed link shows at the next segment;
// - a segment is appended from the one that covers the buffered end (the new layer's
//   keyframe replaces what overlaps); segment times are known to a frame or two, so one that
//   would add less than half a second is passed over;
// - layers' segments end at their own keyframes, a few frames apart: a new layer's segment
//   may start a few tens of milliseconds after what is buffered. Before each segment the
//   parser is reset (SourceBuffer.abort()): otherwise the browser takes the audio's jump for
//   a discontinuity and drops the new video up to its next keyframe, 10 s later. The player
//   steps over such a hole as players do, and counts what is buffered across it: holes are
//   shorter than PASS (the rule above) plus the layers' keyframe offsets, so GAP, twice
//   PASS, covers them;
// - a fetch smaller than SAMPLE_MIN bytes says nothing of the link (a recording's first and
//   last segments may hold a frame or two): it is not measured;
// - seeking fetches the segment that covers the new position;
// - a segment the browser refuses (the media element in error) does not end the replay: a
//   new Media Source goes on from where the pupil was;
// - the recording's chapters (where the teacher switched camera, document camera, screen)
//   are listed under the player: a chapter seeks to its start.
import { t, applyI18n, mountLangToggle, onLang, $, show, api, errorText, jwtClaims } from "/assets/ardoise.js";

const KEY = "ardoise.pupil";
const AHEAD = 12;          // seconds kept buffered ahead of the playhead
const FIT = 0.7;           // share of the measured throughput a layer may use
const RECOVERIES = 3;      // new Media Sources after a refused segment, at most
const GAP = 1.0;           // seconds: a hole in what is buffered that the playhead steps over
const PASS = 0.5;          // seconds: a segment that would add less than this is passed over
const SAMPLE_MIN = 64 * 1024; // bytes: smaller fetches are not throughput samples
const LABELS = ["180p", "360p", "720p"];
const QUALITY_KEY = "ardoise.replay.quality";
const video = $("#player");
const quality = $("#quality");

mountLangToggle($("#lang-slot"));
applyI18n();

function session() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) return { token: hash.get("token") };
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch (_) { return null; }
}

/** What tests and support staff read: the player's decisions. */
const report = window.__replay = { layer: null, pinned: null, layers: [], throughputKbps: null, fetched: 0, error: null, log: [], chapters: [], mediaErrors: [] };

class Player {
  constructor(rec, token) {
    this.rec = rec;
    this.token = token;
    this.layers = rec.layers
      .map((l) => ({ rank: l.rank, mime: l.mime, files: l.files.filter((f) => f.end_s != null) }))
      .filter((l) => l.files.length)
      .sort((a, b) => a.rank - b.rank);
    for (const l of this.layers) {
      const bytes = l.files.reduce((n, f) => n + f.size, 0);
      const secs = l.files.reduce((n, f) => n + (f.end_s - f.start_s), 0) || 1;
      l.kbps = (bytes * 8) / secs / 1000;
    }
    // WebM (VP8) or MP4 (H.264), as the programme was published; every layer alike. An MP4
    // segment's times start at zero: it is placed at its start on the recording's timeline.
    this.mime = (this.layers[0] && this.layers[0].mime) || 'video/webm; codecs="vp8, opus"';
    this.relative = this.mime.startsWith("video/mp4");
    this.samples = [];       // kbit/s of the last fetches
    this.layer = null;
    this.busy = false;
    this.abort = null;
    this.stopped = false;
    this.playing = false;   // play() was called once (the pupil pauses and plays with the controls)
    this.pinned = null;     // the rank the pupil chose, or null: the link decides
  }

  /** The pupil's choice: a layer's rank, or null for the link's (from the next segment). */
  pin(rank) {
    this.pinned = this.layers.some((l) => l.rank === rank) ? rank : null;
    report.pinned = this.pinned;
  }

  async start() {
    if (!window.MediaSource || !MediaSource.isTypeSupported(this.mime)) {
      throw new Error(t("replay_unsupported"));
    }
    await this.open();
    await this.probe();
    video.addEventListener("seeking", () => this.onSeek());
    this.timer = setInterval(() => this.tick(), 250);
    this.tick();
  }

  /** A Media Source for the recording's segments, attached to the video element. */
  async open() {
    this.ms = new MediaSource();
    video.src = URL.createObjectURL(this.ms);
    await new Promise((r) => this.ms.addEventListener("sourceopen", r, { once: true }));
    this.sb = this.ms.addSourceBuffer(this.mime);
    this.sb.mode = "segments";
    this.ms.duration = Math.max(...this.layers.map((l) => l.files[l.files.length - 1].end_s));
  }

  /**
   * The browser refused a segment: the media element is in error, and stays so. As players
   * do on a media error, a new Media Source takes over from where the pupil was (at most
   * RECOVERIES times; the refusals are kept in `__replay.mediaErrors`).
   */
  async recover() {
    report.mediaErrors.push((video.error && video.error.message) || "append");
    if (report.mediaErrors.length > RECOVERIES) {
      report.error = "the browser refused a segment";
      return;
    }
    const at = video.currentTime;
    await this.open();
    video.currentTime = at;
    if (this.playing) video.play().catch(() => {});
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.abort) this.abort.abort();
  }

  /** A first measurement: a slice of the top layer's largest segment (the first one may
   *  hold a frame or two: too small to measure a link). */
  async probe() {
    const top = this.layers[this.layers.length - 1];
    const f = top.files.reduce((a, b) => (b.size > a.size ? b : a));
    const bytes = Math.min(f.size, 192 * 1024);
    const t0 = performance.now();
    const res = await fetch(f.url, { headers: { Authorization: `Bearer ${this.token}`, Range: `bytes=0-${bytes - 1}` }, cache: "no-store" });
    const got = (await res.arrayBuffer()).byteLength;
    this.sample(got, performance.now() - t0);
  }

  sample(bytes, ms) {
    this.samples.push((bytes * 8) / Math.max(ms, 1));  // bit/ms = kbit/s
    if (this.samples.length > 3) this.samples.shift();
    report.throughputKbps = Math.round(this.throughput());
  }

  throughput() {
    // The harmonic mean: a slow fetch weighs as it should.
    return this.samples.length / this.samples.reduce((n, k) => n + 1 / Math.max(k, 1), 0);
  }

  choose() {
    const budget = this.throughput() * FIT;
    let best = this.layers[0];
    for (const l of this.layers) if (l.kbps <= budget) best = l;
    if (this.pinned !== null) best = this.layers.find((l) => l.rank === this.pinned);
    if (this.layer !== best.rank) {
      this.layer = best.rank;
      report.layer = best.rank;
      report.layers.push({ at: Math.round(video.currentTime * 10) / 10, rank: best.rank, throughputKbps: Math.round(this.throughput()) });
      status();
    }
    return best;
  }

  /** Where what is buffered from `at` on ends, across holes smaller than GAP (a range
   *  starting just after the playhead counts: a recording's first frame comes a fraction of
   *  a second in, and a switch of layer may leave a hole of a few frames). */
  bufferedEnd(at) {
    const b = this.sb.buffered;
    let end = at;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= end + GAP && b.end(i) > end) end = b.end(i);
    }
    return end;
  }

  /** The playhead at a hole smaller than GAP (a switch of layer): step over it. */
  stepOverGap() {
    const b = video.buffered, at = video.currentTime;
    for (let i = 0; i < b.length; i++) {
      const inside = b.start(i) <= at && at < b.end(i);
      if (inside && b.end(i) - at > 0.1) return; // plays on
      if (b.start(i) > at && b.start(i) - at < GAP && video.readyState < HTMLMediaElement.HAVE_FUTURE_DATA) {
        this.note(`stepped over a hole ${at.toFixed(3)} → ${b.start(i).toFixed(3)}`);
        video.currentTime = b.start(i) + 0.001;
        return;
      }
    }
  }

  async tick() {
    if (this.stopped) return;
    if (this.playing && !video.seeking) this.stepOverGap();
    if (this.busy || this.sb.updating) return;
    const end = this.bufferedEnd(video.currentTime);
    if (end - video.currentTime >= AHEAD || end >= this.ms.duration - 0.05) {
      if (end >= this.ms.duration - 0.05 && this.ms.readyState === "open" && !this.sb.updating) {
        try { this.ms.endOfStream(); } catch (_) { /* ended already */ }
      }
      return;
    }
    const layer = this.choose();
    // The segment that goes on from the buffered end (segment times are known to a frame or
    // two: one that would add less than half a second is passed over).
    const f = layer.files.find((x) => x.start_s <= end + PASS && x.end_s > end + PASS)
      || layer.files.find((x) => x.start_s > end);
    if (!f) return;
    this.busy = true;
    this.abort = new AbortController();
    try {
      const t0 = performance.now();
      const res = await fetch(f.url, { headers: { Authorization: `Bearer ${this.token}` }, signal: this.abort.signal, cache: "no-store" });
      if (!res.ok) throw new Error(`${res.status}`);
      const data = await this.read(res, layer, f, end, t0);
      if (!data) return; // abandoned: the next tick takes a lower layer
      if (data.byteLength >= SAMPLE_MIN) this.sample(data.byteLength, performance.now() - t0);
      this.note(`${f.name} ${Math.round(performance.now() - t0)} ms`);
      await this.append(data, f);
      report.fetched += 1;
      if (!this.playing) {
        // Start where the picture starts.
        if (this.sb.buffered.length && video.currentTime < this.sb.buffered.start(0)) video.currentTime = this.sb.buffered.start(0);
        this.playing = true;
        video.play().catch(() => {});
      }
    } catch (e) {
      // A seek aborts the fetch; a network error is retried at the next tick.
      if (e.name !== "AbortError") this.note(`${f.name}: ${e.message || e}`);
      if (e.message === "append" || video.error) await this.recover();
    } finally {
      this.busy = false;
      this.abort = null;
    }
  }

  /**
   * Read a segment's body, counting. A fetch that cannot end, at its rate so far, before the
   * buffer runs out is abandoned when a lower layer exists: its rate becomes the only
   * sample (the link changed), and null is returned.
   */
  async read(res, layer, f, end, t0) {
    const reader = res.body.getReader();
    const chunks = [];
    let got = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.byteLength;
      const ms = performance.now() - t0;
      const kbps = (got * 8) / Math.max(ms, 1);
      const left = ((f.size - got) * 8) / Math.max(kbps, 1) / 1000; // seconds to finish
      const ahead = end - video.currentTime;
      // (Never a layer the pupil pinned: the next fetch would be the same.)
      if (ms > 1000 && this.pinned === null && layer.rank > this.layers[0].rank && left > ahead) {
        this.abort.abort();
        // The link changed: what came before says nothing of it now.
        this.samples = [];
        this.sample(got, ms);
        this.note(`abandoned ${f.name} at ${Math.round(kbps)} kbit/s`);
        return null;
      }
    }
    const data = new Uint8Array(got);
    let at = 0;
    for (const c of chunks) { data.set(c, at); at += c.byteLength; }
    return data.buffer;
  }

  /** A line of the player's log (tests and support staff read `__replay.log`). */
  note(what) {
    report.log.push(`${video.currentTime.toFixed(1)} ${what}`);
    if (report.log.length > 50) report.log.shift();
  }

  append(data, f) {
    // Each segment starts with a keyframe and its own headers: a fresh parser for each, so
    // that the next layer's segment is not taken for a discontinuity (see the rules above).
    // (An ended Media Source, after a seek back, reopens when timestampOffset is set.)
    if (this.ms.readyState === "ended") this.sb.timestampOffset = this.sb.timestampOffset;
    if (this.ms.readyState === "open") this.sb.abort();
    if (this.relative) this.sb.timestampOffset = f.start_s;
    return new Promise((resolve, reject) => {
      this.sb.addEventListener("updateend", resolve, { once: true });
      this.sb.addEventListener("error", () => reject(new Error("append")), { once: true });
      this.sb.appendBuffer(data);
    });
  }

  onSeek() {
    if (this.abort) this.abort.abort();
  }
}

let player = null;

/** The layer the pupil pinned on this device, or null (automatic). */
function pinnedRank() {
  const v = localStorage.getItem(QUALITY_KEY);
  return v === null || v === "auto" ? null : Number(v);
}
quality.value = localStorage.getItem(QUALITY_KEY) || "auto";
quality.addEventListener("change", () => {
  localStorage.setItem(QUALITY_KEY, quality.value);
  if (player) player.pin(pinnedRank());
});

function status() {
  const st = $("#status");
  st.textContent = report.layer === null ? "" : t("replay_layer", { q: LABELS[report.layer] || report.layer });
}
onLang(status);

/** "m:ss" (or "h:mm:ss") of `s` seconds. */
function clock(s) {
  const t = Math.floor(s), h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = String(t % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** The recording's chapters under the player: each seeks to its start. */
let chapterLabels = [];
onLang(() => { for (const f of chapterLabels) f(); });
function showChapters(rec) {
  const ol = $("#chapters");
  ol.replaceChildren();
  chapterLabels = [];
  report.chapters = rec.chapters || [];
  show($("#chapters-box"), report.chapters.length > 0);
  for (const c of report.chapters) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.dataset.at = String(c.at_s);
    const label = () => { b.textContent = t("replay_chapter", { at: clock(c.at_s), what: t("l_" + c.layout) }); };
    label();
    chapterLabels.push(label);
    b.addEventListener("click", () => { video.currentTime = c.at_s; if (video.paused) video.play().catch(() => {}); });
    const li = document.createElement("li");
    li.append(b);
    ol.append(li);
  }
}

async function play(rec, token, item) {
  if (player) player.stop();
  for (const li of document.querySelectorAll("#recordings button")) li.setAttribute("aria-pressed", "false");
  item.setAttribute("aria-pressed", "true");
  report.layer = null; report.layers = []; report.fetched = 0; report.error = null; report.log = []; report.mediaErrors = [];
  player = new Player(rec, token);
  player.pin(pinnedRank());
  showChapters(rec);
  try {
    await player.start();
  } catch (e) {
    report.error = String(e.message || e);
    $("#status").textContent = errorText(e);
  }
}

async function main() {
  const s = session();
  const claims = s && s.token ? jwtClaims(s.token) : null;
  if (!claims || !claims.class) { show($("#no-session"), true); return; }
  show($("#replay-view"), true);
  let list;
  try {
    list = await api(`/api/classes/${encodeURIComponent(claims.class)}/recordings`, { token: s.token });
  } catch (e) {
    $("#status").textContent = errorText(e);
    return;
  }
  show($("#empty"), !list.length);
  const ul = $("#recordings");
  for (const rec of list) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary";
    b.setAttribute("aria-pressed", "false");
    const when = new Date(rec.started_ms).toLocaleString(document.documentElement.lang);
    b.textContent = `${rec.title} — ${when} (${t("replay_minutes", { m: Math.max(1, Math.round(rec.duration_s / 60)) })})`;
    b.dataset.id = rec.id;
    b.addEventListener("click", () => play(rec, s.token, b));
    li.append(b);
    if (rec.downloadable && rec.layers.length) {
      // Offline viewing: the smallest layer as one file, through a link that expires.
      const mb = Math.max(1, Math.round(rec.layers[0].files.reduce((n, f) => n + f.size, 0) / 1e6));
      const d = document.createElement("button");
      d.type = "button";
      d.className = "secondary";
      d.textContent = t("replay_download", { mb });
      d.addEventListener("click", async () => {
        try {
          const link = await api(`/api/classes/${encodeURIComponent(claims.class)}/recordings/${rec.id}/download`, { method: "POST", token: s.token });
          const a = document.createElement("a");
          a.href = link.url;
          a.download = "";
          document.body.append(a);
          a.click();
          a.remove();
        } catch (e) { $("#status").textContent = errorText(e); }
      });
      li.append(" ", d);
    }
    ul.append(li);
  }
  const wanted = new URLSearchParams(location.search).get("rec");
  const first = list.find((r) => r.id === wanted) || list[0];
  if (first) play(first, s.token, ul.querySelector(`button[data-id="${first.id}"]`));
}
main();
