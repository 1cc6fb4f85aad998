// A pupil replays a recorded class in Chromium: it starts on the layer its link carries;
// its link is capped; it seeks to the middle and plays on from there, and the player steps
// down to 180p for what it fetches next, and plays on; then it jumps to the first chapter.
//
//   node replay.mjs URL PORT KBIT
//
// URL: the replay page with #token=…; the cap is set here with `tc` on what the server's
// PORT sends (as root, inside the test's private network namespace), at KBIT kbit/s.
import { execFileSync } from "node:child_process";
import { Harness, sleep } from "./harness.mjs";
import { openReplay, replayState } from "./replay_page.mjs";

const [url, port, capKbit] = process.argv.slice(2);
const h = new Harness("replay.mjs", 150_000, { started: null, seek: null, capped: null, layers: [], chapter: null });

/** Cap what the server at `port` sends (TCP, from its port) to `kbit` kbit/s on lo. */
function cap(kbit) {
  const tc = (...args) => execFileSync("tc", args, { stdio: "pipe" });
  tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10");
  tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit");
  tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", `${kbit}kbit`, "ceil", `${kbit}kbit`, "burst", "8k");
  // A queue of 100 packets (150 KB, 2.4 s at 500 kbit/s: a home router's). A 64 KB queue
  // made loopback's TCP lose whole windows and crawl at 60-120 kbit/s, so the 180p segment
  // took 12-22 s to come here, longer on a slower machine.
  tc("qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "pfifo", "limit", "100");
  tc("filter", "add", "dev", "lo", "protocol", "ip", "parent", "1:", "prio", "1", "u32",
     "match", "ip", "protocol", "6", "0xff", "match", "ip", "sport", port, "0xffff", "flowid", "1:20");
}

await h.run(async () => {
  const page = await openReplay(h, url);
  const state = () => replayState(h, page);
  // Starts, on the layer a first measurement of the open link carries.
  const s0 = await h.waitFor(async () => { const s = await state(); return s.t > 1 && s; }, 20_000, "playback starts");
  h.result.started = { layer: s0.layer, throughputKbps: s0.throughputKbps, duration: s0.duration };
  h.log(`started: ${JSON.stringify(h.result.started)}`);
  // The link is capped, then the pupil seeks to the middle: it plays on from there, and the
  // segments after it come on 180p (what is buffered already plays as it is).
  cap(Number(capKbit));
  const capped = Date.now();
  const mid = s0.duration / 2;
  await page.evaluate((m) => { document.querySelector("#player").currentTime = m; }, mid);
  const s1 = await h.waitFor(async () => { const s = await state(); return s.t > mid + 1.5 && !s.paused && s; }, 20_000, "playback after the seek");
  h.result.seek = { to: mid, at: s1.t };
  const s2 = await h.waitFor(async () => { const s = await state(); return s.layer === 0 && s; }, 60_000, "180p under the cap");
  h.result.capped = { afterMs: Date.now() - capped, throughputKbps: s2.throughputKbps, at: s2.t };
  // It plays on, past what was buffered in 720p, on what it fetched in 180p.
  const past = s2.end + 2;
  await h.waitFor(async () => { const s = await state(); return s.t > past && s; }, 40_000, `playback past ${past.toFixed(1)} s, on 180p`);
  h.result.capped.playedPast = past;
  h.result.layers = (await state()).layers;
  // The pupil jumps to the first chapter (the teacher showed the document camera): it
  // plays from there.
  const chapter = await page.$("#chapters button");
  h.check(chapter !== null, "the recording's chapters are listed");
  const at = Number(await chapter.getAttribute("data-at"));
  h.result.chapter = { at, label: await chapter.textContent() };
  await chapter.click();
  const s3 = await h.waitFor(async () => { const s = await state(); return s.t > at + 1 && s.t < at + 8 && !s.paused && s; }, 20_000, `playback from the chapter at ${at} s`);
  h.result.chapter.playing = s3.t;
  h.check((await state()).error === null, `player error: ${(await state()).error}`);
  await sleep(0);
});
