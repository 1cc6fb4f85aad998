// Real Chromium pupils for the relay-cost bench (benches/browser_pupils.sh), not a test: one
// page holds N pupils of the class, each with its own join, token and RTCPeerConnection,
// adaptive as the pupil page asks (`feed=class&quality=auto`). The server therefore sees
// Chromium's own transport-cc feedback, receiver reports, NACKs and keyframe requests.
// No track is attached to an element: the bench measures the server, not the rendering.
//
//   node pupils_load.mjs BASE N SECS
//
// Prints "ready" on stderr once every pupil receives video. After SECS more seconds it prints
// one JSON line on stdout with each pupil's totals from getStats().
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, Harness, sleep } from "./harness.mjs";

const [base, n, secs] = process.argv.slice(2);
const N = Number(n);
const h = new Harness("pupils_load.mjs", (Number(secs) + 180) * 1000, { pupils: [] });

await h.run(async () => {
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const page = await (await h.browser.newContext()).newPage();
  page.on("pageerror", (e) => h.check(false, `page error: ${e.message}`));
  await page.goto(`${base}/`);
  await page.evaluate(async (count) => {
    window.pupils = [];
    for (let i = 0; i < count; i++) {
      const joined = await fetch("/api/classes/demo/join", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: `Eleve ${i}` }),
      });
      if (!joined.ok) throw new Error(`pupil ${i}: join: HTTP ${joined.status}`);
      const { token } = await joined.json();
      const pc = new RTCPeerConnection();
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      const res = await fetch("/whep/demo?feed=class&quality=auto", {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
        body: pc.localDescription.sdp,
      });
      if (res.status !== 201) throw new Error(`pupil ${i}: WHEP: HTTP ${res.status} ${await res.text()}`);
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
      window.pupils.push(pc);
    }
    // Each pupil's inbound totals, audio and video.
    window.totals = () =>
      Promise.all(
        window.pupils.map(async (pc) => {
          const t = { audioPackets: 0, videoPackets: 0, videoLost: 0, nacks: 0, plis: 0, framesDecoded: 0, width: 0 };
          for (const s of (await pc.getStats()).values()) {
            if (s.type !== "inbound-rtp") continue;
            if (s.kind === "audio") t.audioPackets += s.packetsReceived || 0;
            if (s.kind !== "video") continue;
            t.videoPackets += s.packetsReceived || 0;
            t.videoLost += s.packetsLost || 0;
            t.nacks += s.nackCount || 0;
            t.plis += s.pliCount || 0;
            t.framesDecoded += s.framesDecoded || 0;
            t.width = s.frameWidth || t.width;
          }
          return t;
        }),
      );
  }, N);
  h.log(`${N} pupils joined`);
  await h.waitFor(
    () => page.evaluate(async () => (await window.totals()).every((t) => t.videoPackets > 0 && t.audioPackets > 0)),
    60_000,
    "every pupil receives audio and video",
    500,
  );
  h.log("ready");
  const before = await page.evaluate(() => window.totals());
  await sleep(Number(secs) * 1000); // the measurement window, timed by the bench
  const after = await page.evaluate(() => window.totals());
  h.result.pupils = after.map((a, i) => {
    const d = {};
    for (const k of Object.keys(a)) d[k] = k === "width" ? a[k] : a[k] - before[i][k];
    return d;
  });
});
