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
import { Harness, sleep } from "./harness.mjs";

const [baseArg, code, name] = process.argv.slice(2);
const base = (baseArg || "").replace(/\/+$/, "");
let browser = null;
const h = new Harness("firefox.mjs", 90_000);
const result = h.result;
const log = (m) => h.log(m);
const check = (cond, msg) => h.check(cond, msg);
const waitFor = (fn, ms, what) => h.waitFor(fn, ms, what, 100);

async function run() {
  h.browser = browser = await puppeteer.launch({
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
  // Pressed once the server holds the hand: it has sent it to the teacher's socket too.
  await waitFor(() => page.evaluate(() => document.querySelector("#hand").getAttribute("aria-pressed") === "true"), 5_000, "the hand button pressed");
  result.handRaised = true;
}

await h.run(run);
