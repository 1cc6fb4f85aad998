#!/usr/bin/env python3
"""Forwarding-delay quantiles between two readings of Ardoise's Prometheus histogram.

Each file holds "le count" lines (`ardoise_forward_delay_seconds_bucket`, summed over the
workers), read at the start and at the end of a window. Prints "p50_us p99_us" ("nan" when
nothing was recorded); a quantile in the +Inf bucket reads as the top finite bound.
Usage: benches/delay_quantiles.py HIST0 HIST1
"""
import sys


def buckets(path):
    d = {}
    for line in open(path):
        k, v = line.split()
        d[float('inf') if k == '+Inf' else float(k)] = float(v)
    return d


def quantile(cum, q):
    """Linear interpolation inside the bucket; None without data."""
    total = cum[-1][1] if cum else 0
    if total <= 0:
        return None
    prev_b, prev_c = 0.0, 0.0
    for b, c in cum:
        if c >= q * total:
            if b == float('inf'):
                return prev_b
            return prev_b + (b - prev_b) * ((q * total - prev_c) / max(c - prev_c, 1e-9))
        prev_b, prev_c = b, c
    return prev_b


if __name__ == "__main__":
    h0, h1 = buckets(sys.argv[1]), buckets(sys.argv[2])
    cum = sorted((k, h1[k] - h0.get(k, 0)) for k in h1)
    out = [quantile(cum, q) for q in (0.5, 0.99)]
    print(" ".join("nan" if v is None else f"{v * 1e6:.0f}" for v in out))
