//! DelayHistogram: how long media packets stay inside a worker, from the datagram's arrival
//! to the `sendmmsg` that carries their copies out. Fixed buckets, no allocation per sample.

use std::time::Duration;

/// Width of the fine buckets, up to [`FINE_US`].
const STEP_US: u64 = 5;
/// The fine buckets cover 0..10 ms (a small class's delays).
const FINE_US: u64 = 10_000;
/// Width of the coarse buckets, from 10 ms to [`COARSE_US`] (large classes: a keyframe's
/// fan-out to hundreds of pupils takes several ms).
const COARSE_STEP_US: u64 = 100;
/// The coarse buckets end at 200 ms; slower samples go to the overflow count.
const COARSE_US: u64 = 200_000;
/// Number of buckets, fine then coarse.
const BUCKETS: usize = (FINE_US / STEP_US + (COARSE_US - FINE_US) / COARSE_STEP_US) as usize;

/// Upper bounds (µs) of the cumulative buckets exported to Prometheus (each one a bucket
/// boundary).
pub const EXPORT_BOUNDS_US: [u64; 17] =
    [50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10_000, 20_000, 30_000, 50_000, 100_000, 200_000];

/// Bucket of a delay, `None` beyond the last.
fn bucket_of(us: u64) -> Option<usize> {
    let i = if us < FINE_US { us / STEP_US } else { FINE_US / STEP_US + (us - FINE_US) / COARSE_STEP_US };
    (i < BUCKETS as u64).then_some(i as usize)
}

/// Upper bound (exclusive, µs) of bucket `i`.
fn upper_bound_us(i: usize) -> u64 {
    let fine = (FINE_US / STEP_US) as usize;
    if i < fine { (i as u64 + 1) * STEP_US } else { FINE_US + (i - fine + 1) as u64 * COARSE_STEP_US }
}

/// A histogram of forwarding delays.
#[derive(Clone)]
pub struct DelayHistogram {
    counts: Box<[u32; BUCKETS]>,
    overflow: u64,
    max_us: u64,
    total: u64,
    sum_us: u64,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram { counts: Box::new([0; BUCKETS]), overflow: 0, max_us: 0, total: 0, sum_us: 0 }
    }
}

impl std::fmt::Debug for DelayHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DelayHistogram {{ n: {}, p50: {:?}, p99: {:?} }}",
            self.total,
            self.quantile_us(0.5),
            self.quantile_us(0.99)
        )
    }
}

impl DelayHistogram {
    /// Count one packet that stayed `d`.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros() as u64;
        self.total += 1;
        self.sum_us += us;
        self.max_us = self.max_us.max(us);
        match bucket_of(us) {
            Some(i) => self.counts[i] = self.counts[i].saturating_add(1),
            None => self.overflow += 1,
        }
    }

    /// Samples so far.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Sum of all samples, microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// The `q` quantile (0..1) in microseconds (bucket upper bound), if any sample.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                return Some(upper_bound_us(i));
            }
        }
        Some(self.max_us)
    }

    /// Samples below each of [`EXPORT_BOUNDS_US`] (cumulative, Prometheus style).
    pub fn cumulative(&self) -> [u64; EXPORT_BOUNDS_US.len()] {
        EXPORT_BOUNDS_US.map(|b| {
            let full = bucket_of(b).unwrap_or(BUCKETS);
            // Overflowed samples (≥ 200 ms) are above every bound; `+Inf` counts them.
            self.counts[..full].iter().map(|&c| c as u64).sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_export() {
        let mut h = DelayHistogram::default();
        assert_eq!(h.quantile_us(0.5), None);
        for us in [20u64, 40, 60, 80, 100, 120, 140, 160, 180, 900] {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 10);
        assert_eq!(h.quantile_us(0.5), Some(105), "5th of 10 samples: 100 µs, in the 100..105 bucket");
        assert_eq!(h.quantile_us(0.99), Some(905));
        let c = h.cumulative();
        assert_eq!(c[0], 2, "≤ 50 µs"); // 20, 40
        assert_eq!(c[1], 4, "≤ 100 µs (bucket upper bounds: 100 µs lands in 100..105)");
        assert_eq!(c[6], 10, "≤ 1 ms");
        // Coarse buckets beyond 10 ms (a keyframe's fan-out to hundreds of pupils).
        h.record(Duration::from_micros(12_345));
        assert_eq!(h.quantile_us(1.0), Some(12_400), "12.345 ms in the 12.3..12.4 ms bucket");
        let c = h.cumulative();
        assert_eq!((c[11], c[12]), (10, 11), "12.3 ms is above 10 ms, below 20 ms");
        h.record(Duration::from_millis(300));
        assert_eq!(h.quantile_us(1.0), Some(300_000), "overflow reports the maximum");
        assert_eq!(h.cumulative()[16], 11, "300 ms is above the last bound");
        for (i, b) in EXPORT_BOUNDS_US.iter().enumerate().skip(1) {
            assert_eq!(upper_bound_us(bucket_of(*b).unwrap_or(BUCKETS) - 1), *b, "bound {i} is a bucket boundary");
        }
    }
}
