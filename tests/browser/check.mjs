// A parent checks a tablet on /check in Chromium: the browser, the test tone (answered
// "heard"), the connection to the server's test programme until the verdict, then, when
// asked, the microphone and camera echo (Chromium's fake devices: a beeping microphone).
//
//   node check.mjs URL ECHO [ADMIN]
//
// URL: the check page (with ?code=… or not); ECHO: "echo" to run step 4, "deny" to run it
// with the microphone and camera refused (no fake permission prompt). With ADMIN (an
// admin token), the same tablet then joins the demo class as a pupil, and the server's
// first choice of layer for it is read from the admin API.
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, Harness } from "./harness.mjs";

const [url, echo, admin] = process.argv.slice(2);
const h = new Harness("check.mjs", 120_000, { check: null, verdictText: null, linkText: null });

await h.run(async () => {
  // Refusing: Chromium's prompts answer "no" (instead of the fake prompt that allows).
  const args = echo === "deny"
    ? [...CHROMIUM_ARGS.filter((a) => a !== "--use-fake-ui-for-media-stream"), "--deny-permission-prompts"]
    : CHROMIUM_ARGS;
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args });
  const page = await h.browser.newPage();
  page.on("pageerror", (e) => h.check(false, `page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") h.log(`[console] ${m.text()} ${m.location().url || ""}`); });
  await page.goto(url);
  const state = async () => (h.result.check = await page.evaluate(() => window.__check));
  await page.click("#tone");
  await page.click("#heard-yes");
  const done = await h.waitFor(async () => { const s = await state(); return s.verdict && s.reported && s; }, 90_000, "the verdict");
  h.log(`verdict ${done.verdict}: layer ${done.layer}, estimate ${done.estimateBps}, connect ${done.connectMs} ms, first picture ${done.firstFrameMs} ms`);
  h.result.verdictText = await page.textContent("#verdict");
  h.result.linkText = (await page.isVisible("#link")) ? await page.textContent("#link") : null;
  h.result.stored = await page.evaluate(() => JSON.parse(localStorage.getItem("ardoise.check")));
  if (echo === "echo" || echo === "deny") {
    await page.click("#echo");
    await h.waitFor(async () => { const s = await state(); return s.echo && s; }, 30_000, "the echo");
    h.result.echoText = await page.textContent("#echo-status");
  }
  if (admin) {
    const origin = new URL(url).origin;
    await page.goto(`${origin}/c/demo`);
    await page.fill("#name", "Lina");
    await page.click("#join");
    // The pupil's session as the server sees it, from its first choice on.
    h.result.pupil = await h.waitFor(async () => {
      const r = await fetch(`${origin}/api/admin/classes`, { headers: { Authorization: `Bearer ${admin}` } });
      const demo = (await r.json()).classes.find((c) => c.id === "demo");
      return demo && demo.participants.find((p) => p.kind === "subscriber" && p.layer);
    }, 20_000, "the pupil's session", 20);
    h.log(`pupil: first layer ${h.result.pupil.layer}, switches ${h.result.pupil.switches}`);
    await h.waitFor(() => page.evaluate(() => document.querySelector("#video").getVideoPlaybackQuality().totalVideoFrames > 0), 20_000, "the pupil's picture");
  }
});
