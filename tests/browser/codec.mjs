// A tablet's codec: a pupil page in Chromium whose offer orders its video codecs by the
// page's `?codec=` (h264: H.264 only, as a browser restricted through setCodecPreferences;
// h264-first: H.264 preferred), joins the demo class and plays it; prints the codec the
// picture came in and the frames decoded.
//
//   node codec.mjs BASE CODEC
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, Harness } from "./harness.mjs";

const [base, codec] = process.argv.slice(2);
const h = new Harness("codec.mjs", 60_000, { videoCodec: null, framesDecoded: 0 });

await h.run(async () => {
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"] });
  const page = await h.browser.newPage();
  page.on("pageerror", (e) => h.check(false, `page error: ${e.message}`));
  await page.goto(`${base}/c/demo?codec=${codec}`);
  await page.fill("#name", "Tablette");
  await page.click("#join");
  const s = await h.waitFor(async () => {
    const st = await page.evaluate(() => window.ardoise.stats());
    return st.framesDecoded > 60 && st.videoCodec && st;
  }, 30_000, "60 frames decoded");
  Object.assign(h.result, { videoCodec: s.videoCodec, framesDecoded: s.framesDecoded, frameWidth: s.frameWidth });
  h.log(`${codec}: ${s.videoCodec}, ${s.framesDecoded} frames, ${s.frameWidth} px wide`);
});
