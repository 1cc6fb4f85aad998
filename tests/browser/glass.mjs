// Glass to glass: pupils in Chromium read the capture time the studio burns into the picture
// (`studio.timecode`) from every frame they display, for SECONDS seconds once on 720p; one
// page per variant of the pupil page's query (e.g. "" and "&jitter=0": the jitter buffer's
// target cut to zero). Prints, per variant, the percentiles of each part of the delay.
//
//   node glass.mjs BASE SECONDS VARIANT...
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, Harness, sleep } from "./harness.mjs";

const [base, seconds, ...variants] = process.argv.slice(2);
const h = new Harness("glass.mjs", 120_000, { variants: {} });

function pct(values, p) {
  const v = values.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.floor((p / 100) * v.length))] : null;
}

await h.run(async () => {
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"] });
  const pages = [];
  for (const [i, variant] of variants.entries()) {
    const page = await (await h.browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    page.on("pageerror", (e) => h.check(false, `page error: ${e.message}`));
    await page.goto(`${base}/c/demo?timecode${variant}`);
    await page.fill("#name", `Verre${i}`);
    await page.click("#join");
    pages.push([variant, page]);
  }
  // Once every page shows 720p, measure.
  for (const [variant, page] of pages) {
    await h.waitFor(() => page.evaluate(() => document.querySelector("#video").videoHeight === 720), 30_000, `720p on "${variant}"`);
  }
  const from = await Promise.all(pages.map(([, p]) => p.evaluate(() => window.ardoise.glass().samples.length)));
  await sleep(Number(seconds) * 1000); // the measurement window
  for (const [i, [variant, page]] of pages.entries()) {
    const g = await page.evaluate(() => window.ardoise.glass());
    const s = g.samples.slice(from[i]);
    const part = (k) => ({ p50: pct(s.map((x) => x[k]), 50), p95: pct(s.map((x) => x[k]), 95) });
    // The video jitter buffer's mean delay per frame since the session began (getStats).
    const jb = (await page.evaluate(() => window.ardoise.stats())).videoJitterBufferMs;
    // The first frames, from the first picture (180p) until 720p: a pupil served from the
    // keyframe cache starts on frames up to a second old; do they leave it behind?
    const early = g.samples.slice(0, from[i]);
    const firstSecond = early.slice(0, 15).map((x) => x.g2g);
    h.result.variants[variant || "default"] = { frames: s.length, unread: g.unread, g2g: part("g2g"), toReceive: part("toReceive"), toDisplay: part("toDisplay"), decode: part("decode"), jb,
      early: { frames: early.length, firstFrames: firstSecond, g2g: { p50: pct(early.slice(15).map((x) => x.g2g), 50), p95: pct(early.slice(15).map((x) => x.g2g), 95) } } };
    h.log(`${variant || "default"}: ${JSON.stringify(h.result.variants[variant || "default"])}`);
  }
});
