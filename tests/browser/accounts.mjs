#!/usr/bin/env node
// Accounts in Debian's Chromium (issue 13).
//
// Usage: node accounts.mjs <baseUrl> <adminEmail> <adminPassword>
//   1. the admin logs in and creates a teacher;
//   2. the teacher logs in, creates and schedules a class with the waiting room on, and
//      starts it from this PC (the console teaches from the fake browser camera);
//   3. a pupil joins with the code and waits (no picture);
//   4. the teacher admits them from the console and the pupil sees the class;
//   5. the teacher's attendance shows the pupil, and the CSV has their join time.
// Prints ONE line of JSON on stdout; progress on stderr. Exit 0 only if every check passed.
// Capped at 120 s; the browser is always closed.

import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, Harness, sleep } from "./harness.mjs";

const [baseArg, adminEmail, adminPassword] = process.argv.slice(2);
const base = (baseArg || "").replace(/\/+$/, "");
let browser = null;
const h = new Harness("accounts.mjs", 120_000);
const result = h.result;
const log = (m) => h.log(m);
const check = (cond, msg) => h.check(cond, msg);
const waitFor = (fn, ms, what) => h.waitFor(fn, ms, what);
async function newContext(name) {
  const ctx = await browser.newContext({ viewport: { width: 1024, height: 768 }, permissions: ["camera", "microphone"] });
  ctx.on("page", (page) => {
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      log(`[${name} console] ${m.text()}`);
      check(!/Content Security Policy/i.test(m.text()), `a CSP violation on the ${name} page: ${m.text()}`);
    });
    page.on("pageerror", (e) => log(`[${name} exception] ${e.message}`));
    page.on("dialog", (d) => d.accept().catch(() => {}));
  });
  return ctx;
}
async function logIn(ctx, email, password, landing) {
  const page = await ctx.newPage();
  await page.goto(`${base}/login`, { waitUntil: "load" });
  await page.fill("#email", email);
  await page.fill("#password", password);
  await page.click("#login");
  await page.waitForURL(`${base}${landing}`, { timeout: 10_000 });
  return page;
}
const stats = (page) => page.evaluate(async () => (window.ardoise && window.ardoise.stats ? await window.ardoise.stats() : { missing: true }));

async function run() {
  // 1. The admin creates a teacher.
  const adminCtx = await newContext("admin");
  const admin = await logIn(adminCtx, adminEmail, adminPassword, "/admin/schools");
  await admin.waitForSelector("#t-school option", { state: "attached", timeout: 10_000 });
  await admin.fill("#t-email", "claire@ecole.fr");
  await admin.fill("#t-password", "un mot de passe solide");
  await admin.click("#add-teacher");
  await admin.waitForSelector("#teachers li:has-text('claire@ecole.fr')", { timeout: 10_000 });
  result.teacherCreated = true;

  // 2. The teacher logs in, creates and schedules a class with the waiting room on.
  const teacherCtx = await newContext("teacher");
  const my = await logIn(teacherCtx, "claire@ecole.fr", "un mot de passe solide", "/my");
  await my.fill("#title", "CM2 — histoire");
  await my.check("#p-waiting_room");
  await my.selectOption("#slot-day", "1");
  await my.fill("#slot-time", "09:30");
  await my.fill("#slot-minutes", "55");
  await my.click("#slot-add");
  await my.click("#save");
  const item = await my.waitForSelector("#classes li.class-item", { timeout: 10_000 });
  const classId = await item.getAttribute("data-id");
  const code = (await my.textContent("#classes li.class-item code")).trim();
  const schedule = await item.textContent();
  check(/09:30/.test(schedule) && /55 min/.test(schedule), `the timetable shows (${schedule})`);
  result.classCreated = { classId, code };
  // "Start from this PC": the console opens with a token made from the login.
  await my.click(`#classes li[data-id="${classId}"] [data-action="start"]`);
  await my.waitForURL(`${base}/teacher`, { timeout: 10_000 });
  const teacher = my;
  await teacher.waitForSelector("#publish-camera:not([disabled])", { timeout: 10_000 });
  await teacher.click("#publish-camera");

  // 3. A pupil joins with the code and waits: no picture.
  const pupilCtx = await newContext("pupil");
  const pupil = await pupilCtx.newPage();
  await pupil.goto(`${base}/c/${encodeURIComponent(code)}`, { waitUntil: "load" });
  await pupil.fill("#name", "Inès");
  await pupil.click("#join");
  await teacher.waitForSelector("#waiting li:has-text('Inès')", { timeout: 10_000 });
  const overlay = await pupil.textContent("#overlay");
  check(/attente|waiting/i.test(overlay), `the pupil's page says it waits (${overlay})`);
  await sleep(1500);
  const before = await stats(pupil);
  check(!(before.framesDecoded > 0), "a waiting pupil sees no picture");
  result.waited = true;

  // 4. The teacher admits the pupil, who sees the class.
  await teacher.click("#waiting li:has-text('Inès') [data-action='admit']");
  await waitFor(async () => (await stats(pupil)).framesDecoded > 10, 30_000, "the admitted pupil's picture");
  await teacher.waitForSelector("#pupils li:has-text('Inès')", { timeout: 10_000 });
  result.admittedAndPlaying = true;

  // 5. Attendance shows the pupil; the CSV has the join time.
  const my2 = await teacherCtx.newPage();
  await my2.goto(`${base}/my`, { waitUntil: "load" });
  await my2.waitForSelector(`#classes li[data-id="${classId}"] [data-action="attendance"]`, { timeout: 10_000 });
  let rows = "";
  await waitFor(async () => {
    await my2.click(`#classes li[data-id="${classId}"] [data-action="attendance"]`);
    rows = await my2.textContent("#att-table");
    return rows.includes("Inès");
  }, 15_000, "the pupil in the attendance table");
  const csv = await my2.evaluate(async (href) => (await fetch(href)).text(), await my2.getAttribute("#csv", "href"));
  const line = csv.split("\n").find((l) => l.includes(",Inès,")) || "";
  check(/,Inès,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,/.test(line), `the CSV has the join time (${line})`);
  result.csvLine = line;
}

await h.run(async () => {
  h.browser = browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 20_000 });
  await run();
});
