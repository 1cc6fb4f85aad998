#!/usr/bin/env node
// A pupil in Chromium sent to an edge of its class (issue 15, the cascade).
//
// Usage: node cascade.mjs <originBase> <code> <signalFile>
//   opens `${originBase}/c/${code}` on the class's server, which is full: the page's WHEP
//   offer is sent (307, across origins) to an edge, which must answer it (CORS, the pass in
//   place of the token) and play. The page stays on the class's server. It then writes
//   `${signalFile}.ready` (the edge's origin), waits for `${signalFile}.floor` (a pupil on
//   the class's server was given the floor and speaks), hears that voice, writes
//   `${signalFile}.heard`, and waits for `${signalFile}` (the time the
//   test killed that edge, ms since the epoch): the player must come back by itself through
//   the class's server, on another edge, and play again. Prints ONE line of JSON on stdout
//   (edge, first_frame_ms, floor_audio_packets, back_ms, back_edge).

import { chromium } from "playwright-core";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { CHROMIUM, CHROMIUM_ARGS, Harness } from "./harness.mjs";

const [originArg, code, signal] = process.argv.slice(2);
const originBase = (originArg || "").replace(/\/+$/, "");
const h = new Harness("cascade.mjs", 120_000);
const result = h.result;

await h.run(async () => {
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"] });
  const page = await (await h.browser.newContext()).newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    h.log(`[console] ${m.text()}`);
    h.check(!/Content Security Policy|CORS/i.test(m.text()), `refused by the browser: ${m.text()}`);
  });
  page.on("pageerror", (e) => h.log(`[exception] ${e.message}`));
  const frames = () => page.evaluate(async () => (await window.ardoise.stats()).framesDecoded || 0).catch(() => 0);
  const edge = () => page.evaluate(() => { const s = window.ardoise.session(); return s ? new URL(s).origin : null; }).catch(() => null);
  await page.goto(`${originBase}/c/${code}`, { waitUntil: "load", timeout: 15_000 });
  await page.fill("#name", "Élise");
  const t0 = Date.now();
  await page.click("#join");
  await h.waitFor(async () => (await frames()) > 0, 20_000, "the first decoded frame");
  result.first_frame_ms = Date.now() - t0;
  result.edge = await edge();
  h.check(result.edge && result.edge !== originBase, `the picture comes from an edge, not ${result.edge}`);
  h.check(new URL(page.url()).origin === originBase, "the page stays on the class's server");
  writeFileSync(`${signal}.ready`, result.edge || "");
  // A pupil on the class's server gets the floor and speaks: this pupil, on the edge, hears
  // it.
  await h.waitFor(async () => existsSync(`${signal}.floor`), 60_000, "the test gives a pupil the floor");
  const floorAudio = () => page.evaluate(async () => (await window.ardoise.stats()).floorAudioPacketsReceived || 0).catch(() => 0);
  result.floor_audio_packets = await h.waitFor(async () => { const n = await floorAudio(); return n > 25 && n; }, 20_000, "the floor's voice on the edge");
  writeFileSync(`${signal}.heard`, String(result.floor_audio_packets));
  await h.waitFor(async () => existsSync(signal), 60_000, "the test kills the edge");
  const killed = Number(readFileSync(signal, "utf8"));
  // A new session counts its frames from 0.
  await h.waitFor(async () => {
    const now = await edge();
    return now && now !== result.edge && (await frames()) > 0 && now;
  }, 45_000, "the picture again, from another edge", 100);
  result.back_ms = Date.now() - killed;
  result.back_edge = await edge();
  h.log(`back on ${result.back_edge} ${result.back_ms} ms after the signal`);
});
