#!/usr/bin/env node
// The pupil page in Debian's firefox-esr (issue 17), driven over WebDriver BiDi by
// puppeteer-core: Firefox's WebRTC stack differs from Chromium's (candidates, simulcast,
// RTCP). A pupil joins the demo class with its code, plays video (≥ 15 fps) and audio from the
// studio, and raises a hand (the Rust side checks that the teacher hears it).
//
// Usage: node firefox.mjs <baseUrl> <code> <name>
// Prints ONE line of JSON on stdout ({ok, error, fps, audioPackets, handRaised}); progress on
// stderr. Exit 0 only if every check passed. Capped at 90 s; the browser is always closed.

import puppeteer from "puppeteer-core";

const [baseArg, code, name] = process.argv.slice(2);
const base = (baseArg || "").replace(/\/+$/, "");
const result = { ok: false, error: null };
let browser = null;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (m) => process.stderr.write(`[firefox.mjs] ${m}\n`);
function check(cond, msg) {
  if (!cond && result.error === null) { result.error = msg; log(`FAILED: ${msg}`); }
  return !!cond;
}
async function finish() {
  clearTimeout(watchdog);
  const b = browser; browser = null;
  if (b) await Promise.race([b.close().catch(() => {}), sleep(5000)]);
  result.ok = result.error === null;
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(result.ok ? 0 : 1);
}
const watchdog = setTimeout(() => { result.error = result.error || "overall timeout (90 s)"; finish(); }, 90_000);
async function waitFor(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout (${ms / 1000} s): ${what}`);
    await sleep(100);
  }
}

async function run() {
  browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: "/usr/bin/firefox-esr",
    headless: true,
    protocolTimeout: 30_000,
    extraPrefsFirefox: {
      // Loopback only in the test's namespace: Firefox must gather loopback candidates.
      "media.peerconnection.ice.loopback": true,
      "media.peerconnection.ice.obfuscate_host_addresses": false,
      "media.autoplay.default": 0,
      "media.autoplay.blocking_policy": 0,
      "media.navigator.permission.disabled": true,
      "media.navigator.streams.fake": true,
    },
  });
  log(`browser ${await browser.version()}`);
  const page = await browser.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    log(`[pupil console] ${m.text()}`);
    check(!/Content Security Policy/i.test(m.text()), `a CSP violation: ${m.text()}`);
  });
  page.on("pageerror", (e) => log(`[pupil exception] ${e.message}`));
  await page.goto(`${base}/c/${encodeURIComponent(code)}`, { waitUntil: "load", timeout: 15_000 });
  await page.type("#name", name);
  await page.click("#join");
  const stats = () => page.evaluate(async () => (window.ardoise && window.ardoise.stats ? await window.ardoise.stats() : { missing: true }));
  await waitFor(async () => (await stats()).framesDecoded > 0, 30_000, "the first decoded frame");
  const a = await stats();
  await sleep(5000);
  const b = await stats();
  result.fps = Math.round(((b.framesDecoded - a.framesDecoded) / 5) * 10) / 10;
  result.audioPackets = b.audioPacketsReceived - a.audioPacketsReceived;
  check(result.fps >= 15, `video plays at ${result.fps} fps`);
  check(result.audioPackets > 100, `audio arrives (${result.audioPackets} packets in 5 s)`);
  await page.click("#hand");
  await waitFor(() => page.evaluate(() => document.querySelector("#hand").getAttribute("aria-pressed") === "true"), 5_000, "the hand button pressed");
  result.handRaised = true;
  // Give the Rust side time to see the hand on the teacher's socket before the page closes.
  await sleep(1500);
}

try {
  await run();
} catch (e) {
  check(false, e.message || String(e));
}
await finish();
