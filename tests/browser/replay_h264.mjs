// A pupil replays a class the studio published in H.264 (recorded in fragmented MP4) in
// Chromium: the player starts and plays on across the segments (each MP4 segment's times
// start at zero; the player places it at its start on the recording's timeline).
//
//   node replay_h264.mjs URL UNTIL
//
// URL: the replay page with #token=…; UNTIL: the playback position (seconds) to reach.
import { Harness } from "./harness.mjs";
import { openReplay, replayState } from "./replay_page.mjs";

const [url, until] = process.argv.slice(2);
const h = new Harness("replay_h264.mjs", 90_000, { mime: null, reached: null });

await h.run(async () => {
  const page = await openReplay(h, url);
  const state = () => replayState(h, page);
  h.result.mime = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="avc1.42e01f, opus"'));
  h.check(h.result.mime, "this Chromium plays H.264 and Opus in MP4 through Media Source");
  const s = await h.waitFor(async () => { const s = await state(); return s.error === null && s.t > Number(until) && s; }, 60_000, `playback past ${until} s`);
  h.result.reached = { t: s.t, decoded: s.decoded, buffered: s.buffered, log: s.log };
});
