// What every browser script of the tests shares: Chromium's flags for a closed sandbox, one
// result object printed as ONE line of JSON on stdout, checks that keep the first failure,
// polling instead of sleeping, a watchdog, and a browser that is always closed.
//
//   const h = new Harness("accounts.mjs", 120_000);
//   h.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, … });
//   h.check(cond, "what failed");  await h.waitFor(async () => …, 5_000, "what we wait for");
//   await h.finish();             // prints h.result, exits 0 only if every check passed

/** Debian's Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** Chromium on a machine with no network but loopback: no background traffic, fake devices. */
export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream=fps=30", "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

/** Wait `ms` milliseconds (for measurement windows only; wait for things with waitFor). */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One run of a browser script. */
export class Harness {
  constructor(name, timeoutMs, fields = {}) {
    this.name = name;
    this.result = { ok: false, error: null, ...fields };
    this.browser = null;
    this.watchdog = setTimeout(() => {
      this.check(false, `overall timeout (${timeoutMs / 1000} s)`);
      this.finish();
    }, timeoutMs);
  }

  /** A progress line on stderr. */
  log(message) {
    process.stderr.write(`[${this.name}] ${message}\n`);
  }

  /** Record the first failed check; returns the condition. */
  check(cond, message) {
    if (!cond && this.result.error === null) {
      this.result.error = message;
      this.log(`FAILED: ${message}`);
    }
    return !!cond;
  }

  /** Poll `fn` every `everyMs` until it returns a truthy value, or throw after `ms`. */
  async waitFor(fn, ms, what, everyMs = 50) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timeout (${ms / 1000} s): ${what}`);
      await sleep(everyMs);
    }
  }

  /** Close the browser (at most 5 s), print the result, exit. */
  async finish() {
    clearTimeout(this.watchdog);
    const b = this.browser;
    this.browser = null;
    if (b) await Promise.race([b.close().catch(() => {}), sleep(5000)]);
    this.result.ok = this.result.error === null;
    process.stdout.write(JSON.stringify(this.result) + "\n");
    process.exit(this.result.ok ? 0 : 1);
  }

  /** Run `body`, turning an exception into a failed check, then finish. */
  async run(body) {
    try {
      await body();
    } catch (e) {
      this.check(false, (e && e.message ? e.message : String(e)).split("\n")[0]);
    }
    await this.finish();
  }
}
