// A pupil switches the replay's picture quality at a segment boundary where the new layer's
// segment starts a few frames after the old layer's ends (layers close their segments at
// their own keyframes), in Chromium: the player must play on across that hole.
//
//   node replay_switch.mjs URL FROM TO BOUNDARY
//
// URL: the replay page with #token=…; FROM, TO: layer ranks chosen in the page's quality
// menu; BOUNDARY: where FROM's segment ends (seconds), TO's next one starting after it.
import { Harness } from "./harness.mjs";
import { openReplay, replayState } from "./replay_page.mjs";

const [url, from, to, boundary] = process.argv.slice(2);
const h = new Harness("replay_switch.mjs", 90_000, { crossed: null });

await h.run(async () => {
  // The quality the pupil chose on this device last time: FROM.
  const page = await openReplay(h, url, (p) => p.addInitScript((q) => localStorage.setItem("ardoise.replay.quality", q), from));
  const state = () => replayState(h, page);
  const at = Number(boundary);
  // FROM is buffered up to the boundary (two segments: AHEAD keeps the player from a third).
  await h.waitFor(async () => { const s = await state(); return s.layer === Number(from) && s.fetched >= 2 && s.t > 0.5 && s; }, 30_000, `layer ${from} buffered up to ${at} s`);
  // The pupil picks TO, then jumps to 3 s before the boundary: the next segment is TO's.
  await page.selectOption("#quality", to);
  await page.evaluate((t) => { document.querySelector("#player").currentTime = t; }, at - 3);
  const s = await h.waitFor(async () => { const s = await state(); return s.t > at + 1.5 && !s.paused && s; }, 30_000, `playback past the boundary at ${at} s, on layer ${to}`);
  h.check(s.layer === Number(to), `the segment after the boundary is layer ${to}'s: ${s.layer}`);
  h.check(s.mediaErrors.length === 0, `segments refused: ${s.mediaErrors}`);
  h.result.crossed = { t: s.t, buffered: s.buffered, log: s.log };
});
