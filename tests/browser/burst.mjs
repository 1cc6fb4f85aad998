// A burst of pupils in Chromium: N pupil pages are opened first, then their "Rejoindre" is
// clicked 1000/N ms apart (N pupils within one second, as when a teacher says "connect
// now"); each page's own marks (`ardoise.timing()`) give the time from its WHEP POST to its
// first frame shown.
//
//   node burst.mjs BASE N
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, Harness, sleep } from "./harness.mjs";

const [base, n] = process.argv.slice(2);
const N = Number(n);
const h = new Harness("burst.mjs", 150_000, { firstFrameMs: [], connectedMs: [] });

await h.run(async () => {
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"] });
  const pages = [];
  for (let i = 0; i < N; i++) {
    // A context (a window) per page: tabs behind another are not painted, and their first
    // frame would wait for it.
    const page = await (await h.browser.newContext({ viewport: { width: 480, height: 360 } })).newPage();
    page.on("pageerror", (e) => h.check(false, `page error: ${e.message}`));
    await page.goto(`${base}/c/demo`);
    await page.fill("#name", `Eleve${i}`);
    pages.push(page);
  }
  h.log(`${N} pages open`);
  const t0 = Date.now();
  const clicks = pages.map(async (page, i) => {
    await sleep(Math.max(0, t0 + (i * 1000) / N - Date.now())); // load shaping, not synchronisation
    await page.click("#join", { noWaitAfter: true });
  });
  await Promise.all(clicks);
  for (const [i, page] of pages.entries()) {
    const t = await h.waitFor(() => page.evaluate(() => { const t = window.ardoise.timing(); return t && t.firstFrame ? t : null; }), 30_000, `pupil ${i}: first frame`);
    h.result.firstFrameMs.push(Math.round(t.firstFrame - t.post));
    h.result.connectedMs.push(Math.round(t.connected - t.post));
  }
  h.log(`first frame from the WHEP POST: ${JSON.stringify(h.result.firstFrameMs)}`);
});
