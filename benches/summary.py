#!/usr/bin/env python3
"""Side-by-side summary of benches/bench.sh's results (one JSON object per line, from
benches/scale.sh): a table per server and N, the largest N with loss under 0.5%, memory per
added pupil, and the Ardoise/Janus ratios. Usage: benches/summary.py target/bench/results.jsonl"""
import json, sys, platform, subprocess, datetime
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r):
    return "ardoise" if r["server"] == "ardoise" else f"janus {r['mode']}"
servers = sorted({key(r) for r in rows}, key=lambda k: (k != "ardoise", k))
by = {(key(r), r["pupils"]): r for r in rows}
ns = sorted({r["pupils"] for r in rows})
def ok(r):
    # Every pupil got video, none stopped, and the loss (over the run, joins included, and in
    # the steady window) under 0.5%.
    return (r["pupils_ok"] == r["pupils"] and r["pupils_video_stopped"] == 0 and r["loss"] < 0.005
            and (r["window_loss"] or 0) < 0.005)
def fmt(x, f="{:.1f}"):
    return "—" if x is None else f.format(x)
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
print(f"Date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} CPUs ({cpu}); Linux {platform.release()}.")
print()
print("| server | N | CPU µs/packet | server CPU (% of a core) | loadgen CPU | KiB/pupil | loss run / window (mean) | max | pupils ok / stopped | forwarding delay p50 / p99 | disturbed |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for s in servers:
    for n in ns:
        r = by.get((s, n))
        if not r:
            print(f"| {s} | {n} | no result | | | | | | | | |")
            continue
        delay = f"{r['forward_delay_p50_us']} / {r['forward_delay_p99_us']} µs" if r.get("forward_delay_p99_us") else "—"
        print(f"| {s} | {n} | {fmt(r['cpu_us_per_packet'], '{:.2f}')} | {fmt(r['server_cpu_pct'])} | {fmt(r['loadgen_cpu_pct'])} | {fmt(r['rss_kib_per_pupil'], '{:.0f}')} "
              f"| {100 * r['loss']:.3f}% / {100 * (r['window_loss'] or 0):.3f}% | {100 * r['max_loss']:.2f}% | {r['pupils_ok']} / {r['pupils_video_stopped']} | {delay} | {'yes' if r['disturbed'] else ''} |")
print()
largest = {s: max([n for n in ns if (s, n) in by and ok(by[(s, n)])], default=None) for s in servers}
print("Largest N with every pupil served and loss under 0.5%: " + ", ".join(f"{s} {largest[s] if largest[s] else 'none'}" for s in servers)
      + " (of N = " + ", ".join(map(str, ns)) + ").")
# Memory per pupil as the slope between the smallest and the largest N a server carried (fixed
# costs — buffers, the teacher — cancel out).
def slope(s):
    good = [n for n in ns if (s, n) in by and by[(s, n)]["rss_kib_end"]]
    if len(good) < 2:
        return None
    a, b = by[(s, good[0])], by[(s, good[-1])]
    return (b["rss_kib_end"] - a["rss_kib_end"]) / (good[-1] - good[0])
print("Memory per added pupil (RSS slope between the smallest and largest N): " + ", ".join(f"{s} {fmt(slope(s), '{:.0f}')} KiB" for s in servers) + ".")
print()
if "ardoise" in servers:
    print("| N | " + " | ".join(f"CPU/packet Ardoise ÷ {s}" for s in servers if s != "ardoise") + " | " + " | ".join(f"KiB/pupil Ardoise ÷ {s}" for s in servers if s != "ardoise") + " |")
    print("|---|" + "---|" * (2 * (len(servers) - 1)))
    for n in ns:
        a = by.get(("ardoise", n))
        cells = []
        for field in ("cpu_us_per_packet", "rss_kib_per_pupil"):
            for s in servers:
                if s == "ardoise":
                    continue
                j = by.get((s, n))
                cells.append(f"{a[field] / j[field]:.2f}" if a and j and a[field] and j[field] else "—")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print()
    for s in servers:
        if s != "ardoise" and largest.get("ardoise") and largest.get(s):
            bound = " (at least: Ardoise carried the largest N tried)" if largest["ardoise"] == ns[-1] else ""
            print(f"Largest N, Ardoise ÷ {s}: {largest['ardoise'] / largest[s]:.1f}{bound}.")
