//! DelayHistogram: how long media packets stay inside a worker, from the datagram's arrival
//! to the `sendmmsg` that carries their copies out. Fixed buckets, no allocation per sample.

use std::time::Duration;

/// Bucket width.
const STEP_US: u64 = 5;
/// Buckets (5 µs each, up to 10 ms); slower samples go to the overflow count.
const BUCKETS: usize = 2000;

/// Upper bounds (µs) of the cumulative buckets exported to Prometheus.
pub const EXPORT_BOUNDS_US: [u64; 13] = [50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10_000, 50_000];

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
        write!(f, "DelayHistogram {{ n: {}, p50: {:?}, p99: {:?} }}", self.total, self.quantile_us(0.5), self.quantile_us(0.99))
    }
}

impl DelayHistogram {
    /// Count one packet that stayed `d`.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros() as u64;
        self.total += 1;
        self.sum_us += us;
        self.max_us = self.max_us.max(us);
        match self.counts.get_mut((us / STEP_US) as usize) {
            Some(c) => *c = c.saturating_add(1),
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
                return Some((i as u64 + 1) * STEP_US);
            }
        }
        Some(self.max_us)
    }

    /// Samples below each of [`EXPORT_BOUNDS_US`] (cumulative, Prometheus style).
    pub fn cumulative(&self) -> [u64; EXPORT_BOUNDS_US.len()] {
        EXPORT_BOUNDS_US.map(|b| {
            let full = (b / STEP_US) as usize;
            let below: u64 = self.counts[..full.min(BUCKETS)].iter().map(|&c| c as u64).sum();
            // Beyond the buckets only the maximum is known: count the overflow once it is below.
            below + if full > BUCKETS && self.max_us <= b { self.overflow } else { 0 }
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
        h.record(Duration::from_millis(30));
        assert_eq!(h.quantile_us(1.0), Some(30_000), "overflow reports the maximum");
        assert_eq!(h.cumulative()[11], 10, "30 ms is above 10 ms");
    }
}
