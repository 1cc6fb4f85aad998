// A pupil replays a class the studio published in H.264 (recorded in fragmented MP4) in
// Chromium: the player starts and plays on across the segments (each MP4 segment's times
// start at zero; the player places it at its start on the recording's timeline).
//
//   node replay_h264.mjs URL UNTIL
//
// URL: the replay page with #token=…; UNTIL: the playback position (seconds) to reach.
import { chromium } from "playwright-core";
import { Harness, CHROMIUM, CHROMIUM_ARGS } from "./harness.mjs";

const [url, until] = process.argv.slice(2);
const h = new Harness("replay_h264.mjs", 90_000, { mime: null, reached: null });

await h.run(async () => {
  h.browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
  });
  const page = await h.browser.newPage();
  page.on("pageerror", (e) => h.check(false, `page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") h.log(`[console] ${m.text()}`); });
  await page.goto(url);
  const state = async () => (h.result.last = await page.evaluate(() => {
    const v = document.querySelector("#player");
    const b = [];
    for (let i = 0; i < v.buffered.length; i++) b.push(`${v.buffered.start(i).toFixed(2)}-${v.buffered.end(i).toFixed(2)}`);
    return { t: v.currentTime, paused: v.paused, buffered: b.join(" "), decoded: v.getVideoPlaybackQuality().totalVideoFrames, mediaError: v.error && v.error.message, ...window.__replay };
  }));
  h.result.mime = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="avc1.42e01f, opus"'));
  h.check(h.result.mime, "this Chromium plays H.264 and Opus in MP4 through Media Source");
  const s = await h.waitFor(async () => { const s = await state(); return s.error === null && s.t > Number(until) && s; }, 60_000, `playback past ${until} s`);
  h.result.reached = { t: s.t, decoded: s.decoded, buffered: s.buffered, log: s.log };
});
