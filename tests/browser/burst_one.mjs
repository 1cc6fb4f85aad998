// One pupil page in Chromium inside a class-sized burst: the test's load generator joins 29
// other pupils within each round's second, and this page clicks "Rejoindre" at its slot of
// that second. Round r starts at T0 + r × PERIOD (wall clock, ms since the epoch, agreed
// with the test: load shaping, not synchronisation); the page is opened 2.5 s before, and
// closed at the round's end. Each round gives the page's own marks (`ardoise.timing()`):
// its WHEP POST to its first frame shown.
//
//   node burst_one.mjs BASE ROUNDS T0 PERIOD_MS SLOTS_MS_JSON
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, Harness, sleep } from "./harness.mjs";

const [base, rounds, t0, period, slots] = process.argv.slice(2);
const [R, T0, PERIOD, SLOTS] = [Number(rounds), Number(t0), Number(period), JSON.parse(slots)];
const h = new Harness("burst_one.mjs", T0 - Date.now() + R * PERIOD + 60_000, { firstFrameMs: [], connectedMs: [] });
const until = (t) => sleep(Math.max(0, t - Date.now()));

await h.run(async () => {
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"] });
  for (let r = 0; r < R; r++) {
    const start = T0 + r * PERIOD;
    await until(start - 2500);
    const context = await h.browser.newContext({ viewport: { width: 480, height: 360 } });
    const page = await context.newPage();
    page.on("pageerror", (e) => h.check(false, `page error: ${e.message}`));
    await page.goto(`${base}/c/demo`);
    await page.fill("#name", `Tablette${r}`);
    h.check(Date.now() < start + SLOTS[r], `round ${r}: the page was not ready at its slot`);
    await until(start + SLOTS[r]);
    await page.click("#join", { noWaitAfter: true });
    const t = await h.waitFor(() => page.evaluate(() => { const t = window.ardoise.timing(); return t && t.firstFrame ? t : null; }), 15_000, `round ${r}: first frame`);
    h.result.firstFrameMs.push(Math.round(t.firstFrame - t.post));
    h.result.connectedMs.push(Math.round(t.connected - t.post));
    h.log(`round ${r}: slot ${SLOTS[r]} ms, first frame ${Math.round(t.firstFrame - t.post)} ms after the WHEP POST`);
    await context.close();
  }
});
