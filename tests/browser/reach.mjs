#!/usr/bin/env node
// Reachability checks of the Ardoise pages in Debian's Chromium (issue 12).
//
// Usage:
//   node reach.mjs transport <baseUrl> <teacherToken> <adminToken> <expected: udp|tcp|relay>
//     one pupil joins `${base}/c/demo${PUPIL_QUERY}`; ≥ 20 fps with audio over 5 s; the pupil
//     page, the teacher console (pupil and studio) and the admin dashboard show <expected>.
//   node reach.mjs first-picture <baseUrl> <runs>
//     <runs> fresh pupils, one after the other: time from the click on "join" to the first
//     decoded frame.
//   node reach.mjs secure <baseUrl> <teacherToken>
//     on an https origin that is not localhost: a secure context; the teacher console teaches
//     from the (fake) browser camera and a pupil sees it; a pupil given the floor is heard.
// Extra Chromium flags come from CHROMIUM_EXTRA (space-separated; e.g. the SPKI list of a
// self-signed certificate). Prints ONE line of JSON on stdout; progress on stderr. Exit 0 only
// if every check passed. Capped at 90 s; the browser is always closed.

import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, Harness, sleep } from "./harness.mjs";

const ARGS = [...CHROMIUM_ARGS, ...(process.env.CHROMIUM_EXTRA || "").split(" ").filter(Boolean)];
const [mode, baseArg, ...rest] = process.argv.slice(2);
const base = (baseArg || "").replace(/\/+$/, "");
let browser = null;
const h = new Harness("reach.mjs", 90_000);
const result = Object.assign(h.result, { mode });
const log = (m) => h.log(m);
const check = (cond, msg) => h.check(cond, msg);
const waitFor = (fn, ms, what) => h.waitFor(fn, ms, what);
async function newPage(name) {
  const ctx = await browser.newContext({ viewport: { width: 1024, height: 768 }, permissions: ["camera", "microphone"] });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    log(`[${name} console] ${m.text()}`);
    check(!/Content Security Policy/i.test(m.text()), `a CSP violation on the ${name} page: ${m.text()}`);
  });
  page.on("pageerror", (e) => log(`[${name} exception] ${e.message}`));
  page.on("dialog", (d) => d.accept().catch(() => {}));
  return page;
}
const stats = (page) => page.evaluate(async () => (window.ardoise && window.ardoise.stats ? await window.ardoise.stats() : { missing: true }));
async function joinPupil(name, query = "") {
  const page = await newPage(name);
  await page.goto(`${base}/c/demo${query}`, { waitUntil: "load", timeout: 15_000 });
  await page.fill("#name", name);
  const t0 = Date.now();
  await page.click("#join");
  return { page, t0 };
}
async function fpsOver(page, ms) {
  const a = await stats(page);
  await sleep(ms);
  const b = await stats(page);
  return { fps: ((b.framesDecoded - a.framesDecoded) * 1000) / ms, audio: b.audioPacketsReceived - a.audioPacketsReceived, last: b };
}

async function transport(teacherToken, adminToken, expected) {
  const { page: pupil } = await joinPupil("Tcp", process.env.PUPIL_QUERY || "");
  await waitFor(async () => (await stats(pupil)).framesDecoded > 0, 20_000, "the first decoded frame");
  // A pupil starts on the layer its first bandwidth estimate carries (over TCP, or just
  // after the studio came back, the 15 fps 180p one) and steps up as the estimate grows:
  // 5 s windows, at most three, until one plays at the class's rate.
  const windows = [];
  let m;
  for (let i = 0; i < 3; i++) {
    m = await fpsOver(pupil, 5000);
    windows.push(`${Math.round(m.fps * 10) / 10} fps at ${m.last.frameWidth}px`);
    if (m.fps >= 20) break;
  }
  result.fps = Math.round(m.fps * 10) / 10;
  result.fpsWindows = windows;
  result.audioPackets = m.audio;
  log(`pupil: ${windows.join(", ")}; ${m.audio} audio packets in the last window`);
  check(m.fps >= 20, `the pupil decoded ${windows.join(", ")}`);
  check(m.audio > 100, `the pupil received ${m.audio} audio packets in 5 s`);
  result.pupilTransport = await waitFor(async () => (await stats(pupil)).transport, 10_000, "the pupil page's transport");
  result.pupilShows = await pupil.evaluate(() => document.querySelector("#conn").textContent);
  check(result.pupilTransport === expected, `the pupil page runs over ${result.pupilTransport}`);
  if (expected !== "udp") check(/secours|fallback/.test(result.pupilShows), `the pupil page does not say it runs on a fallback: ${result.pupilShows}`);
  const teacher = await newPage("teacher");
  await teacher.goto(`${base}/teacher#token=${encodeURIComponent(teacherToken)}`, { waitUntil: "load" });
  result.consolePupil = await waitFor(() => teacher.evaluate(() => {
    const el = document.querySelector("#pupils li .tag.transport");
    return el ? el.dataset.transport : null;
  }), 10_000, "the console's transport tag of the pupil");
  result.consoleStudio = await waitFor(() => teacher.evaluate(() => document.querySelector("#live-state").dataset.transport || null),
    10_000, "the console's transport of the studio");
  check(result.consolePupil === expected, `the console shows the pupil over ${result.consolePupil}`);
  const studioExpected = process.env.STUDIO_EXPECTED || expected;
  check(result.consoleStudio === studioExpected, `the console shows the studio over ${result.consoleStudio}`);
  const admin = await newPage("admin");
  await admin.goto(`${base}/admin#token=${encodeURIComponent(adminToken)}`, { waitUntil: "load" });
  result.admin = await waitFor(() => admin.evaluate(() => {
    const cells = [...document.querySelectorAll("td.transport")].map((c) => c.dataset.transport).filter(Boolean);
    return cells.length >= 2 ? cells : null;
  }), 10_000, "the admin dashboard's transport column");
  check(result.admin.includes(expected), `the admin dashboard shows ${JSON.stringify(result.admin)}`);
  check(result.admin.includes(studioExpected), `the admin dashboard shows ${JSON.stringify(result.admin)} (studio)`);
}

async function firstPicture(runs) {
  result.ms = [];
  result.steps = [];
  for (let i = 0; i < runs; i++) {
    const { page, t0 } = await joinPupil(`P${i}`);
    await waitFor(async () => (await stats(page)).framesDecoded > 0, 15_000, `pupil ${i}: first frame`);
    result.ms.push(Date.now() - t0);
    // Where the time went, from the page's own marks (ms from the WHEP POST).
    const t = await waitFor(() => page.evaluate(() => { const t = window.ardoise.timing(); return t && t.firstFrame ? t : null; }), 5_000, `pupil ${i}: its timing`);
    const from = (k) => Math.round(t[k] - t.post);
    result.steps.push({ setup: Math.round(t.post - t.start), answer: from("answer"), connected: from("connected"), firstFrame: from("firstFrame") });
    await page.context().close();
  }
  log(`steps from the WHEP POST: ${JSON.stringify(result.steps)}`);
  const sorted = [...result.ms].sort((a, b) => a - b);
  result.p50 = sorted[Math.floor((sorted.length - 1) / 2)];
  result.max = sorted[sorted.length - 1];
  log(`first picture: ${JSON.stringify(result.ms)} ms`);
}

async function secure(teacherToken) {
  const teacher = await newPage("teacher");
  await teacher.goto(`${base}/teacher#token=${encodeURIComponent(teacherToken)}`, { waitUntil: "load" });
  result.secureContext = await teacher.evaluate(() => window.isSecureContext);
  check(result.secureContext, "the console is not a secure context");
  const { page: alice } = await joinPupil("Alice");
  const { page: bruno } = await joinPupil("Bruno");
  await waitFor(async () => (await stats(bruno)).framesDecoded > 0, 20_000, "Bruno's first frame (the studio)");
  // The console teaches from the browser camera: the fake camera is 1280 px wide, the studio's
  // top layer in this test is narrower.
  await teacher.click("#publish-camera");
  const width = Number(process.env.BROWSER_WIDTH || 1280);
  await waitFor(async () => (await stats(bruno)).frameWidth === width, 25_000, `Bruno plays the browser camera (${width} px)`);
  // Chrome's encoder ramps up on a loaded box: 3 s windows until it reaches 20 fps (≤ 15 s).
  let best = 0;
  for (let i = 0; i < 5 && best < 20; i++) best = Math.max(best, (await fpsOver(bruno, 3000)).fps);
  result.browserTeachingFps = Math.round(best * 10) / 10;
  check(best >= 20, `the browser camera plays at ${best} fps`);
  await teacher.click("#publish-stop");
  // The floor: Alice speaks (her fake microphone), Bruno hears her.
  const aliceId = await waitFor(() => alice.evaluate(() => window.ardoise.you()), 10_000, "Alice's id");
  await teacher.waitForSelector(`#pupils li[data-id="${aliceId}"] [data-action="grant"]`, { timeout: 10_000 });
  await teacher.click(`#pupils li[data-id="${aliceId}"] [data-action="grant"]`);
  await waitFor(async () => (await stats(alice)).live, 15_000, "Alice on air");
  const f0 = (await stats(bruno)).floorAudioPacketsReceived;
  await waitFor(async () => (await stats(bruno)).floorAudioPacketsReceived > f0 + 50, 10_000, "Bruno hears Alice");
  result.floorHeard = true;
}

await h.run(async () => {
  h.browser = browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 20_000 });
  if (mode === "transport") await transport(rest[0], rest[1], rest[2]);
  else if (mode === "first-picture") await firstPicture(Number(rest[0] || 5));
  else if (mode === "secure") await secure(rest[0]);
  else throw new Error(`unknown mode ${mode}`);
});
