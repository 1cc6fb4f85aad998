// What the replay scripts share (replay.mjs, replay_h264.mjs, replay_switch.mjs): Chromium
// on the replay page, and the player's state as one object.
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "./harness.mjs";

/**
 * Launch Chromium (autoplay allowed) for harness `h` and open the replay page at `url`; a
 * page error fails the run. `before(page)` runs before the page loads (say, a stored choice).
 */
export async function openReplay(h, url, before = async () => {}) {
  h.browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
  });
  const page = await h.browser.newPage();
  page.on("pageerror", (e) => h.check(false, `page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") h.log(`[console] ${m.text()}`); });
  await before(page);
  await page.goto(url);
  return page;
}

/**
 * The player's state, kept as `h.result.last` (on a failure, it says why): its position,
 * what is buffered (and where the range holding the playhead ends), frames decoded, the
 * media error, and the player's own report (`window.__replay`).
 */
export async function replayState(h, page) {
  return (h.result.last = await page.evaluate(() => {
    const v = document.querySelector("#player");
    const b = [];
    let end = v.currentTime;
    for (let i = 0; i < v.buffered.length; i++) {
      b.push(`${v.buffered.start(i).toFixed(3)}-${v.buffered.end(i).toFixed(3)}`);
      if (v.buffered.start(i) <= v.currentTime && v.currentTime <= v.buffered.end(i)) end = v.buffered.end(i);
    }
    return {
      t: v.currentTime, duration: v.duration, paused: v.paused, buffered: b.join(" "), end,
      decoded: v.getVideoPlaybackQuality().totalVideoFrames, mediaError: v.error && v.error.message, ...window.__replay,
    };
  }));
}
