#!/usr/bin/env node
// A pupil in Chromium on a cluster of servers (issue 15).
//
// Usage: node cluster.mjs <wrongBase> <code> <signalFile> [<teacherToken> <adminToken>]
//   opens the admin dashboard (every node listed, the recordings directory said not shared;
//   drain a node, then reopen it), the teacher
//   console and a pupil page that types the code on `${wrongBase}/`: both
//   must end on the class's server. It then opens `${wrongBase}/c/${code}` on a server that does not own the class: the page must be
//   sent to the owner, join, and play. It then writes `${signalFile}.ready` (the owner's
//   origin) and waits for `${signalFile}` (the time the test killed that owner, ms since the
//   epoch; the test killed it, or moved the class away from it): the page must come back by
//   itself through another server and play again. Prints
//   ONE line of JSON on stdout (landed, first_frame_ms, back_ms, back_origin).

import { chromium } from "playwright-core";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { CHROMIUM, CHROMIUM_ARGS, Harness } from "./harness.mjs";

const [wrongArg, code, signal, teacherToken, adminToken] = process.argv.slice(2);
const wrong = (wrongArg || "").replace(/\/+$/, "");
const h = new Harness("cluster.mjs", 120_000);
const result = h.result;

await h.run(async () => {
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"] });
  const ctx = await h.browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    h.log(`[console] ${m.text()}`);
    h.check(!/Content Security Policy/i.test(m.text()), `a CSP violation: ${m.text()}`);
  });
  page.on("pageerror", (e) => h.log(`[exception] ${e.message}`));
  if (teacherToken) {
  // The admin dashboard lists the nodes; an admin drains one and reopens it.
  const admin = await ctx.newPage();
  admin.on("dialog", (d) => d.accept().catch(() => {}));
  await admin.goto(`${wrong}/admin#token=${encodeURIComponent(adminToken)}`, { waitUntil: "load", timeout: 15_000 });
  result.nodes_listed = await h.waitFor(async () => { const n = await admin.locator("#nodes tr[data-node]").count(); return n >= 3 && n; }, 10_000, "the nodes on the dashboard");
  // Each node of the test has a recordings directory of its own: the dashboard says whose
  // recordings the node cannot see.
  result.recordings_unshared = await h.waitFor(async () => {
    const warning = admin.locator("#recordings-unshared");
    return (await warning.isVisible()) && (await warning.textContent());
  }, 10_000, "the warning that the recordings directory is not shared");
  const row = admin.locator("#nodes tr[data-node]").first();
  const id = await row.getAttribute("data-node");
  const draining = async () => (await admin.evaluate((id) => (window.ardoise.nodes().nodes || []).find((n) => n.id === id), id)).draining;
  await row.locator("[data-action=drain]").click();
  await h.waitFor(draining, 10_000, "the node drains");
  await admin.locator(`#nodes tr[data-node="${id}"] [data-action=drain]`).click();
  await h.waitFor(async () => !(await draining()), 10_000, "the node reopens");
  result.drained_and_reopened = id;
  await admin.close();
  // The teacher console and a typed code, opened on the wrong server.
  const console_ = await ctx.newPage();
  await console_.goto(`${wrong}/teacher#token=${encodeURIComponent(teacherToken)}`, { waitUntil: "load", timeout: 15_000 });
  result.console_origin = await h.waitFor(async () => {
    const o = new URL(console_.url()).origin;
    return o !== wrong && o;
  }, 15_000, "the console moves to the class's server");
  const typed = await ctx.newPage();
  await typed.goto(`${wrong}/`, { waitUntil: "load", timeout: 15_000 });
  await typed.fill("#code", code);
  await typed.fill("#name", "Basile");
  await typed.click("#join");
  // On the class's server the name is filled in; the pupil confirms.
  await h.waitFor(async () => new URL(typed.url()).origin !== wrong && (await typed.inputValue("#name").catch(() => "")) === "Basile", 15_000, "the name carried to the class's server");
  await typed.click("#join");
  await h.waitFor(async () => new URL(typed.url()).origin !== wrong
    && (await typed.evaluate(async () => (window.ardoise && window.ardoise.stats ? (await window.ardoise.stats()).framesDecoded || 0 : 0)).catch(() => 0)) > 0,
  20_000, "a typed code joins on the class's server and plays");
  result.typed_origin = new URL(typed.url()).origin;
  await typed.close();
  }
  const frames = () => page.evaluate(async () => (window.ardoise && window.ardoise.stats ? (await window.ardoise.stats()).framesDecoded || 0 : 0)).catch(() => 0);
  await page.goto(`${wrong}/c/${code}`, { waitUntil: "load", timeout: 15_000 });
  result.landed = new URL(page.url()).origin;
  h.log(`asked ${wrong}, landed on ${result.landed}`);
  h.check(result.landed !== wrong, "the page was sent to the class's server");
  if (teacherToken) h.check(result.console_origin === result.landed && result.typed_origin === result.landed, "the console and the typed code are on the class's server too");
  await page.fill("#name", "Élise");
  const t0 = Date.now();
  await page.click("#join");
  await h.waitFor(async () => (await frames()) > 0, 20_000, "the first decoded frame");
  result.first_frame_ms = Date.now() - t0;
  writeFileSync(`${signal}.ready`, result.landed);
  await h.waitFor(async () => existsSync(signal), 60_000, "the test kills the class's server");
  const killed = Number(readFileSync(signal, "utf8"));
  let said = 0;
  await h.waitFor(async () => {
    const origin = new URL(page.url()).origin;
    const f = await frames();
    if (Date.now() - said > 3000) {
      said = Date.now();
      const shown = await page.evaluate(() => document.querySelector("#conn") ? document.querySelector("#conn").textContent : document.title).catch((e) => String(e));
      h.log(`${Date.now() - killed} ms after the signal: on ${origin}, ${f} frames, the page says: ${shown}`);
    }
    return origin !== result.landed && f > 0;
  }, 45_000, "the picture again, through another server", 100);
  result.back_ms = Date.now() - killed;
  result.back_origin = new URL(page.url()).origin;
  h.log(`back on ${result.back_origin} ${result.back_ms} ms after the signal`);
});
