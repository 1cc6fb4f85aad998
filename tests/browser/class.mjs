#!/usr/bin/env node
// End-to-end check of the Ardoise class pages (pupil, teacher console, admin dashboard).
//
// Usage: node class.mjs <baseUrl> <teacherToken> <adminToken> <artefactsDir> <studioStateUrl> [topLayerWidth]
//
// The server must already run the class `demo` (code `demo`) with a studio publishing it;
// <studioStateUrl> answers JSON whose `return_audio_packets` counts the pupil-voice RTP
// packets the studio received. Drives Debian's /usr/bin/chromium with playwright-core,
// one browser context per person (teacher, three pupils, admin):
//   1. three pupils join; each must decode ≥ 20 fps over 5 s with audio packets growing
//   2. Alice raises her hand (teacher sees it < 1 s); chat both ways
//   3. the teacher grants Alice the floor: the other pupils and the studio receive her voice;
//      revoking stops it
//   4. the teacher removes Chloé: her page says so and her token gets 401 on WHEP
//   5. the admin dashboard lists the class and Alice
//   6. screenshots of the three pages at 1024x768 and 768x1024 into <artefactsDir>
// Prints ONE line of JSON on stdout; progress, page console errors and exceptions go to stderr.
// Exit status 0 only if every check passed. Capped at 120 s; the browser is always closed.

import { chromium } from "playwright-core";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";

// The harness restarts the server when asked ("RESTART-SERVER" on stdout) and answers on stdin.
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const OVERALL_TIMEOUT_MS = 120_000;
const MIN_FPS = 20;
const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream=fps=30",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];
const SIZES = [[1024, 768], [768, 1024]];

const [baseArg, teacherToken, adminToken, artefacts, studioStateUrl, topWidthArg] = process.argv.slice(2);
const topWidth = Number(topWidthArg || 0);
if (!baseArg || !teacherToken || !adminToken || !artefacts || !studioStateUrl) {
  process.stderr.write("usage: node class.mjs <baseUrl> <teacherToken> <adminToken> <artefactsDir> <studioStateUrl>\n");
  process.exit(2);
}
const base = baseArg.replace(/\/+$/, "");

const result = {
  ok: false, error: null, pupils: [], handMs: null, chatBothWays: false,
  floorHeardByPupils: false, floorHeardByStudio: false, revokeStops: false,
  removedShown: false, removedTokenStatus: null, adminListsClass: false, browserTeachingFps: 0, backToStudio: false, reconnected: false, reconnectMs: null, dropStatus: [], workerRecovered: false, workerRecoverMs: null, recordingShown: false, screenshots: [],
};
const pages = {};   // name -> page (for screenshots)
let browser = null;
let finished = false;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`[class.mjs] ${msg}\n`);
/** Record the first failed check; returns the condition. */
function check(cond, msg) {
  if (!cond) {
    log(`FAILED: ${msg}`);
    if (result.error === null) result.error = msg;
  }
  return !!cond;
}

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (b) await Promise.race([b.close().catch(() => {}), sleep(5_000)]);
}
async function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(watchdog);
  await closeBrowser();
  const allChecks = result.pupils.length === 3 && result.handMs !== null && result.handMs < 1000 &&
    result.chatBothWays && result.floorHeardByPupils && result.floorHeardByStudio && result.revokeStops &&
    result.removedShown && result.removedTokenStatus === 401 && result.adminListsClass &&
    result.browserTeachingFps >= MIN_FPS && result.backToStudio && result.reconnected &&
    result.screenshots.length === SIZES.length * 3;
  if (result.error === null && !allChecks) result.error = "some checks did not pass";
  result.ok = result.error === null && allChecks;
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(result.ok ? 0 : 1);
}
const watchdog = setTimeout(async () => {
  if (finished) return;
  result.error = result.error || `overall timeout (${OVERALL_TIMEOUT_MS / 1000} s)`;
  await finish();
}, OVERALL_TIMEOUT_MS);

/** Poll `fn` until it returns truthy; throws `what` on timeout. */
async function waitFor(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timeout (${timeoutMs / 1000} s): ${what}`);
    await sleep(100);
  }
}

async function newPage(name, viewport = { width: 1024, height: 768 }) {
  const ctx = await browser.newContext({ viewport, permissions: ["camera", "microphone"] });
  const page = await ctx.newPage();
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    process.stderr.write(`[${name} console] ${msg.text()}\n`);
    check(!/Content Security Policy/i.test(msg.text()), `a CSP violation on the ${name} page: ${msg.text()}`);
  });
  page.on("pageerror", (err) => process.stderr.write(`[${name} exception] ${err.message}\n`));
  page.on("dialog", (d) => d.accept().catch(() => {}));
  pages[name] = page;
  return page;
}
async function goto(page, url) {
  const resp = await page.goto(url, { waitUntil: "load", timeout: 15_000 });
  if (resp && !resp.ok()) throw new Error(`${url.split("#")[0]}: HTTP ${resp.status()}`);
}
async function stats(page) {
  return page.evaluate(async () => {
    const a = window.ardoise;
    if (!a || !a.stats) return { missing: true };
    return { ...(await a.stats()), pageError: a.error ?? null };
  });
}
async function studioReturnPackets() {
  const r = await fetch(studioStateUrl, { signal: AbortSignal.timeout(3_000) });
  if (!r.ok) throw new Error(`studio state: HTTP ${r.status}`);
  const j = await r.json();
  return Number(j.return_audio_packets);
}
const rowButton = (id, action) => `#pupils li[data-id="${id}"] [data-action="${action}"]`;

async function run() {
  await mkdir(artefacts, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 20_000 });

  // 1. teacher console and three pupils
  log("step 1: teacher console, three pupils join");
  const teacher = await newPage("teacher");
  await goto(teacher, `${base}/teacher#token=${encodeURIComponent(teacherToken)}`);
  const names = ["Alice", "Bruno", "Chloé"];
  const pupils = await Promise.all(names.map(async (name) => {
    const page = await newPage(name);
    await goto(page, `${base}/c/demo`);
    await page.fill("#name", name);
    await page.click("#join");
    return { name, page };
  }));
  const [alice, bruno, chloe] = pupils.map((p) => p.page);
  await Promise.all(pupils.map((p) => waitFor(async () => {
    const s = await stats(p.page);
    if (s.missing) throw new Error(`${p.name}: window.ardoise.stats is missing`);
    return s.framesDecoded > 0;
  }, 25_000, `${p.name}: first decoded video frame`)));
  // Adaptive pupils start on a low layer and climb as the estimate grows: measure once
  // each plays the studio's top layer (its width given as the 6th argument).
  if (topWidth > 0) {
    await Promise.all(pupils.map((p) => waitFor(async () => (await stats(p.page)).frameWidth >= topWidth,
      20_000, `${p.name}: the top layer (${topWidth} px wide)`)));
  }
  const s0 = await Promise.all(pupils.map((p) => stats(p.page)));
  await sleep(5_000);
  const s1 = await Promise.all(pupils.map((p) => stats(p.page)));
  pupils.forEach((p, i) => {
    const fps = Math.round(((s1[i].framesDecoded - s0[i].framesDecoded) / 5) * 100) / 100;
    result.pupils.push({ name: p.name, fps, audioPackets: s1[i].audioPacketsReceived, audioCodec: s1[i].audioCodec });
    // The voice is decoded, not only received: samples out of the jitter buffer, few of them
    // concealment (the SFU wraps Opus in RED for browsers, which must unwrap it).
    const samples = s1[i].audioSamples - s0[i].audioSamples;
    const concealed = samples > 0 ? (s1[i].audioConcealed - s0[i].audioConcealed) / samples : 1;
    log(`  ${p.name}: ${fps} fps, audio packets ${s0[i].audioPacketsReceived} -> ${s1[i].audioPacketsReceived} ` +
      `(${s1[i].audioCodec}), ${samples} samples decoded, ${(concealed * 100).toFixed(1)}% concealed, quality ${s1[i].quality}`);
    check(fps >= MIN_FPS, `${p.name}: ${fps} fps < ${MIN_FPS}`);
    check(s1[i].audioPacketsReceived > s0[i].audioPacketsReceived, `${p.name}: audio packets do not grow`);
    check(samples >= 48_000 * 4, `${p.name}: only ${samples} audio samples decoded in 5 s`);
    check(concealed < 0.05, `${p.name}: ${(concealed * 100).toFixed(1)}% of the audio concealed`);
  });

  // 2. hand and chat
  log("step 2: raised hand and chat");
  const [aliceId, , chloeId] = await Promise.all(pupils.map((p) => p.page.evaluate(() => window.ardoise.you())));
  await Promise.all(pupils.map(async (p) => {
    const id = await p.page.evaluate(() => window.ardoise.you());
    await teacher.waitForSelector(`#pupils li[data-id="${id}"]`, { timeout: 10_000 });
  }));
  const seen = teacher.waitForSelector(`#hands li[data-id="${aliceId}"]`, { timeout: 5_000 });
  seen.catch(() => {});   // awaited below; never an unhandled rejection
  const t0 = Date.now();
  await alice.click("#hand");
  await seen;
  result.handMs = Date.now() - t0;
  log(`  hand seen by the teacher after ${result.handMs} ms`);
  check(result.handMs < 1000, `hand took ${result.handMs} ms to reach the teacher`);
  const question = "Bonjour, j'ai une question";
  const reply = "Oui Alice, je t'écoute";
  await alice.fill("#chat-text", question);
  await alice.click("#chat-send");
  await teacher.waitForFunction((txt) => window.ardoise.chat().some((m) => m.text === txt && m.name === "Alice"),
    question, { timeout: 5_000 });
  await teacher.fill("#chat-text", reply);
  await teacher.click("#chat-send");
  await alice.waitForFunction((txt) => document.querySelector("#chat-log").textContent.includes(txt), reply, { timeout: 5_000 });
  result.chatBothWays = true;

  // 3. floor: grant, heard by the others and the studio, revoke
  log("step 3: grant the floor to Alice");
  await teacher.click(rowButton(aliceId, "grant"));
  await waitFor(async () => (await stats(alice)).live, 15_000, "Alice's live banner");
  const f0 = await Promise.all([stats(bruno), stats(chloe), studioReturnPackets()]);
  await sleep(4_000);
  const f1 = await Promise.all([stats(bruno), stats(chloe), studioReturnPackets()]);
  log(`  floor audio: Bruno ${f0[0].floorAudioPacketsReceived} -> ${f1[0].floorAudioPacketsReceived}, ` +
      `Chloé ${f0[1].floorAudioPacketsReceived} -> ${f1[1].floorAudioPacketsReceived}, studio ${f0[2]} -> ${f1[2]}`);
  result.floorHeardByPupils = check(f1[0].floorAudioPacketsReceived > f0[0].floorAudioPacketsReceived &&
    f1[1].floorAudioPacketsReceived > f0[1].floorAudioPacketsReceived, "the other pupils do not receive the floor voice");
  result.floorHeardByStudio = check(Number.isFinite(f0[2]) && f1[2] > f0[2], "the studio does not receive the floor voice");
  log("  revoke");
  await teacher.click(rowButton(aliceId, "revoke"));
  await waitFor(async () => !(await stats(alice)).live, 10_000, "Alice's live banner to go away");
  await sleep(1_500);
  const r0 = (await stats(bruno)).floorAudioPacketsReceived;
  await sleep(2_000);
  const r1 = (await stats(bruno)).floorAudioPacketsReceived;
  log(`  after revoke, Bruno's floor audio packets ${r0} -> ${r1}`);
  result.revokeStops = check(r1 - r0 <= 5, `floor audio still flows after revoke (+${r1 - r0} in 2 s)`);

  // 4. remove Chloé
  log("step 4: remove Chloé");
  const chloeToken = await chloe.evaluate(() => window.ardoise.token());
  await teacher.evaluate(() => { window.ardoiseAutoConfirm = true; });
  await teacher.click(rowButton(chloeId, "remove"));
  await chloe.waitForSelector("#removed-msg", { state: "visible", timeout: 10_000 });
  result.removedShown = true;
  const resp = await fetch(`${base}/whep/demo`, {
    method: "POST", body: "v=0\r\n", signal: AbortSignal.timeout(5_000),
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${chloeToken}` },
  });
  result.removedTokenStatus = resp.status;
  check(resp.status === 401, `removed pupil's token got HTTP ${resp.status} on WHEP, expected 401`);

  // 5. admin dashboard
  log("step 5: admin dashboard");
  const admin = await newPage("admin");
  await goto(admin, `${base}/admin#token=${encodeURIComponent(adminToken)}`);
  await admin.waitForFunction(() => [...document.querySelectorAll("[data-class]")].some((el) =>
    (el.dataset.class === "demo" || el.textContent.includes("(demo)")) && el.textContent.includes("Alice")),
    null, { timeout: 15_000 });
  result.adminListsClass = true;

  // 7. teach from the browser alone: the console publishes its (fake) camera over WHIP with
  // simulcast; Alice's picture switches to it, then back to the studio when it stops.
  log("step 7: the teacher publishes from the browser");
  const w0 = (await stats(alice)).frameWidth;
  await teacher.click("#publish-camera");
  await waitFor(async () => { const s = await stats(alice); return s.frameWidth > 0 && s.frameWidth !== w0; },
    20_000, `Alice's picture to switch to the browser camera (studio width ${w0})`);
  result.studioWidth = w0;
  // Chrome's encoder ramps up (bandwidth estimate, CPU adaptation on a loaded 2-core box):
  // measure 3 s windows until one reaches the rate, for at most 15 s.
  const rampStart = Date.now();
  let b1 = await stats(alice);
  for (;;) {
    const b0 = b1;
    await sleep(3_000);
    b1 = await stats(alice);
    result.browserWidth = b1.frameWidth;
    result.browserTeachingFps = Math.round(((b1.framesDecoded - b0.framesDecoded) / 3) * 100) / 100;
    log(`  browser camera ${b1.frameWidth} px wide at ${result.browserTeachingFps} fps (studio: ${w0} px)`);
    if (result.browserTeachingFps >= MIN_FPS || Date.now() - rampStart > 15_000) break;
  }
  check(result.browserTeachingFps >= MIN_FPS, `browser teaching: ${result.browserTeachingFps} fps < ${MIN_FPS}`);
  await teacher.click("#publish-stop");
  await waitFor(async () => (await stats(alice)).frameWidth === w0, 20_000, "Alice's picture back to the studio");
  result.backToStudio = true;

  // 8. network drop: the server goes away and comes back; Bruno's page says what it is doing
  // and plays again by itself (fresh WHEP session, socket reconnected).
  log("step 8: the server drops and comes back");
  const before = (await stats(bruno)).framesDecoded;
  process.stdout.write("RESTART-SERVER\n");
  const seenStatus = new Set();
  const watchStatus = (async () => {
    for (let i = 0; i < 60 && !result.reconnected; i++) {
      const text = await bruno.$eval("#status", (el) => el.textContent.trim()).catch((e) => {
        log(`  status unreadable: ${e.message.split("\n")[0]}`);
        return "";
      });
      if (text) seenStatus.add(text);
      await sleep(250);
    }
  })();
  const answer = await stdinLines.next();
  check(!answer.done && answer.value.trim() === "restarted", "the harness did not restart the server");
  const tRestart = Date.now();
  // A fresh session counts decoded frames from zero again.
  let frameBase = before;
  await waitFor(async () => {
    const n = (await stats(bruno)).framesDecoded;
    if (n < frameBase) frameBase = n;
    return n > frameBase + 30;
  }, 30_000, "Bruno's video after the server came back");
  result.reconnectMs = Date.now() - tRestart;
  result.reconnected = true;
  await watchStatus;
  result.dropStatus = [...seenStatus];
  log(`  Bruno plays again ${result.reconnectMs} ms after the restart; status shown: ${JSON.stringify(result.dropStatus)}`);

  // 9. a media worker fails (a panic outside str0m): the server replaces it and tells the
  // class to reconnect; the studio republishes and Bruno's page plays again by itself.
  log("step 9: the class's media worker panics");
  const beforePanic = (await stats(bruno)).framesDecoded;
  process.stdout.write("PANIC-WORKER\n");
  const panicked = await stdinLines.next();
  check(!panicked.done && panicked.value.trim() === "panicked", "the harness did not make the worker panic");
  const tPanic = Date.now();
  // Frames must come from a new session: its counter starts again from zero.
  let panicBase = beforePanic, fresh = false;
  await waitFor(async () => {
    const n = (await stats(bruno)).framesDecoded;
    if (n < panicBase) { panicBase = n; fresh = true; }
    return fresh && n > panicBase + 30;
  }, 30_000, "Bruno's video on a new session after the worker was replaced");
  result.workerRecoverMs = Date.now() - tPanic;
  result.workerRecovered = true;
  log(`  Bruno plays again ${result.workerRecoverMs} ms after the worker panic`);

  // 10. the teacher records from the console: every pupil page shows it, then stops.
  log("step 10: the teacher records; the pupils' pages show it");
  const recHidden = (p) => p.$eval("#rec-badge", (el) => el.hidden);
  check(await recHidden(alice), "no recording indicator before the teacher records");
  await teacher.click("#record");
  await waitFor(async () => !(await recHidden(alice)) && !(await recHidden(bruno)), 5_000, "the pupils see the recording indicator");
  await waitFor(async () => (await teacher.getAttribute("#record", "aria-pressed")) === "true", 5_000, "the console shows the recording");
  await sleep(2_000);   // a short recording
  await teacher.click("#record");
  await waitFor(async () => (await recHidden(alice)) && (await recHidden(bruno)), 15_000, "the indicator goes away when it stops");
  // The console lists it; the teacher renames it, hides it from the pupils, then deletes it.
  const recs = () => teacher.evaluate(() => window.ardoise.recordings());
  const listed = await waitFor(async () => { const r = await recs(); return r.length === 1 && r[0].state === "ready" && r[0]; }, 10_000, "the console lists the recording");
  await teacher.fill(`#rec-${listed.id}-title`, "Les fractions");
  await teacher.press(`#rec-${listed.id}-title`, "Enter");
  await teacher.click(`#rec-${listed.id}-published`);
  await waitFor(async () => { const r = (await recs())[0]; return r && r.title === "Les fractions" && r.published === false; }, 5_000, "renamed and hidden from the pupils");
  const pupilSees = await alice.evaluate(async (cls) => {
    const s = JSON.parse(sessionStorage.getItem("ardoise.pupil") || "null");
    const res = await fetch(`/api/classes/${cls}/recordings`, { headers: { Authorization: `Bearer ${s && s.token}` } });
    return res.ok ? (await res.json()).length : `HTTP ${res.status}`;
  }, listed.class);
  check(pupilSees === 0, `a hidden recording is not listed to the pupils (${pupilSees})`);
  await teacher.click(`li[data-id="${listed.id}"] button[data-rec="delete"]`);
  await waitFor(async () => (await recs()).length === 0, 5_000, "deleted from the console");
  result.recordingShown = true;
  await sleep(2_500);   // a second poll, so rates and charts have data for the screenshots
}

async function screenshots() {
  log("step 6: screenshots");
  for (const [label, name] of [["pupil", "Alice"], ["teacher", "teacher"], ["admin", "admin"]]) {
    const page = pages[name];
    if (!page || page.isClosed()) continue;
    for (const [w, h] of SIZES) {
      const file = path.join(artefacts, `${label}-${w}x${h}.png`);
      try {
        await page.setViewportSize({ width: w, height: h });
        await sleep(400);
        await page.screenshot({ path: file, timeout: 5_000 });
        result.screenshots.push(file);
      } catch (e) {
        log(`screenshot ${file} failed: ${e.message.split("\n")[0]}`);
      }
    }
  }
}

try {
  await run();
} catch (e) {
  check(false, e && e.message ? e.message.split("\n")[0] : String(e));
}
if (!finished) await screenshots().catch((e) => log(`screenshots: ${e.message}`));
await finish();
