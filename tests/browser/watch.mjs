#!/usr/bin/env node
// Headless-Chromium check of the Ardoise WHEP player page (/watch).
//
// Usage: node watch.mjs <page-url> <screenshot.png> [seconds=6]
//
// Opens the page in Debian's /usr/bin/chromium (driven by playwright-core),
// waits up to 15 s for the first decoded video frame, then samples
// window.ardoise.stats().framesDecoded over <seconds> to compute the
// received frame rate, takes a screenshot and prints ONE line of JSON:
//   {"ok":bool,"fps":number,"framesDecoded":number,
//    "audioPacketsReceived":number,"error":string|null}
// Exit status 0 only if fps >= 20 and audio packets were received.
// Page console errors and uncaught exceptions go to stderr. The whole run
// is capped at 40 s; the browser is always closed.

import { chromium } from "playwright-core";

const FIRST_FRAME_TIMEOUT_MS = 15_000;
const OVERALL_TIMEOUT_MS = 40_000;
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

const [url, shotPath, secondsArg] = process.argv.slice(2);
if (!url || !shotPath) {
  process.stderr.write("usage: node watch.mjs <page-url> <screenshot.png> [seconds=6]\n");
  process.exit(2);
}
const seconds = secondsArg === undefined ? 6 : Number(secondsArg);
if (!Number.isFinite(seconds) || seconds <= 0) {
  process.stderr.write(`invalid seconds: ${secondsArg}\n`);
  process.exit(2);
}

const result = { ok: false, fps: 0, framesDecoded: 0, audioPacketsReceived: 0, error: null };
let browser = null;
let page = null;
let finished = false;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(result.ok ? 0 : 1);
}

const watchdog = setTimeout(async () => {
  if (finished) return;
  result.ok = false;
  result.error = result.error || `overall timeout (${OVERALL_TIMEOUT_MS / 1000} s)`;
  if (page) await page.screenshot({ path: shotPath, timeout: 3_000 }).catch(() => {});
  await finish();
}, OVERALL_TIMEOUT_MS);

async function stats() {
  return page.evaluate(async () => {
    const a = window.ardoise;
    if (!a) return { missing: true };
    return { ...(await a.stats()), pageError: a.error ?? null };
  });
}

function record(s) {
  result.framesDecoded = s.framesDecoded ?? result.framesDecoded;
  result.audioPacketsReceived = s.audioPacketsReceived ?? result.audioPacketsReceived;
}

async function run() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: 20_000,
  });
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error") process.stderr.write(`[page console] ${msg.text()}\n`);
  });
  page.on("pageerror", (err) => {
    process.stderr.write(`[page exception] ${err.message}\n`);
  });

  try {
    const resp = await page.goto(url, { waitUntil: "load", timeout: 15_000 });
    if (resp && !resp.ok()) throw new Error(`page load: HTTP ${resp.status()}`);

    // Wait for the first decoded frame, bailing out early on a page error.
    const deadline = Date.now() + FIRST_FRAME_TIMEOUT_MS;
    let s;
    for (;;) {
      s = await stats();
      if (s.missing) throw new Error("window.ardoise is not defined");
      record(s);
      if (s.pageError) throw new Error(s.pageError);
      if (s.framesDecoded > 0) break;
      if (Date.now() > deadline) {
        throw new Error(`no video frame decoded within ${FIRST_FRAME_TIMEOUT_MS / 1000} s ` +
                        `(connection state: ${s.state})`);
      }
      await sleep(250);
    }

    // Sample the decoded frame count over the requested window.
    const t0 = Date.now();
    const f0 = s.framesDecoded;
    await sleep(seconds * 1000);
    s = await stats();
    record(s);
    const elapsed = (Date.now() - t0) / 1000;
    // fps over the nominal window, as specified; elapsed is only reported on failure.
    result.fps = Math.round(((s.framesDecoded - f0) / seconds) * 100) / 100;
    if (s.pageError) result.error = s.pageError;
    else if (result.fps < MIN_FPS) result.error = `fps ${result.fps} < ${MIN_FPS} (over ${elapsed.toFixed(1)} s)`;
    else if (!(result.audioPacketsReceived > 0)) result.error = "no audio packets received";
    result.ok = result.error === null;
  } finally {
    if (page) {
      await page.screenshot({ path: shotPath, timeout: 5_000 }).catch((e) => {
        process.stderr.write(`screenshot failed: ${e.message}\n`);
      });
    }
  }
}

try {
  await run();
} catch (e) {
  result.ok = false;
  result.error = e && e.message ? e.message.split("\n")[0] : String(e);
}
await finish();
