//! Bitrate of one stream over a sliding window, for what a simulcast layer actually costs.
//!
//! The [`BandwidthAllocator`](crate::BandwidthAllocator) compares a pupil's bandwidth
//! estimate with the bitrate of each layer of the class video. Encoders rarely sit on their
//! target (a static slide costs little, a moving camera costs more), so the room measures each
//! published layer with a [`BitrateMeter`] and passes the result on.
//!
//! The window is a ring of fixed buckets (by default 10 × 100 ms = 1 s): recording a packet
//! adds to one counter and allocates nothing. Time is an input; the meter reads no clock.

use std::time::{Duration, Instant};

/// Bytes over a sliding window, as bit/s.
///
/// The rate at `now` is the bytes of the buckets that overlap the last `window`, divided by
/// the time those buckets cover (the current bucket counts for its elapsed part), so the value
/// does not dip at each bucket boundary. Before one window has passed since the first packet,
/// the rate is over the time since that packet's bucket began, and [`BitrateMeter::measured`]
/// says it is not settled yet.
#[derive(Debug, Clone)]
pub struct BitrateMeter {
    /// Bytes per bucket; `head` is the bucket that started at `head_start`.
    buckets: Box<[u64]>,
    bucket_len: Duration,
    window: Duration,
    head: usize,
    head_start: Option<Instant>,
    /// Start of the bucket of the first packet ever recorded.
    first: Option<Instant>,
}

impl Default for BitrateMeter {
    /// A 1 s window of 10 buckets of 100 ms.
    fn default() -> Self {
        BitrateMeter::new(Duration::from_secs(1), 10)
    }
}

impl BitrateMeter {
    /// A meter over `window`, split into `buckets` buckets (the resolution of the window's
    /// edge: more buckets, smoother values).
    ///
    /// # Panics
    ///
    /// If `buckets` is zero or `window / buckets` is zero.
    pub fn new(window: Duration, buckets: usize) -> Self {
        assert!(buckets > 0, "a bitrate meter needs at least one bucket");
        let bucket_len = window / buckets as u32;
        assert!(!bucket_len.is_zero(), "bitrate meter window too short for {buckets} buckets");
        BitrateMeter {
            buckets: vec![0; buckets].into_boxed_slice(),
            bucket_len,
            window: bucket_len * buckets as u32,
            head: 0,
            head_start: None,
            first: None,
        }
    }

    /// The window the rate is measured over.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Count `bytes` sent or received at `now`. A `now` earlier than the last one counts
    /// in the current bucket.
    pub fn record(&mut self, now: Instant, bytes: usize) {
        let n = self.buckets.len();
        let Some(start) = self.head_start else {
            self.head_start = Some(now);
            self.first = Some(now);
            self.buckets[self.head] = bytes as u64;
            return;
        };
        let k = self.buckets_since(start, now);
        if k >= n as u64 {
            // Silent for longer than the window: everything is stale.
            self.buckets.iter_mut().for_each(|b| *b = 0);
        } else {
            for _ in 0..k {
                self.head = (self.head + 1) % n;
                self.buckets[self.head] = 0;
            }
        }
        if k > 0 {
            // Keep buckets aligned: the new head starts at the last bucket boundary before `now`.
            let into = now.saturating_duration_since(start).as_nanos() % self.bucket_len.as_nanos();
            self.head_start = Some(now - Duration::from_nanos(into as u64));
        }
        self.buckets[self.head] = self.buckets[self.head].saturating_add(bytes as u64);
    }

    /// Bits per second over the window ending at `now` (0 before any packet, and after a
    /// silence as long as the window).
    pub fn bitrate(&self, now: Instant) -> u64 {
        let (Some(start), Some(first)) = (self.head_start, self.first) else {
            return 0;
        };
        let n = self.buckets.len() as u64;
        let k = self.buckets_since(start, now);
        if k >= n {
            return 0;
        }
        // The bucket holding `now` is `k` buckets after the head; the window reaches back
        // `n - 1` buckets before it, so the head and the `n - 1 - k` buckets before it count.
        let keep = (n - k) as usize;
        let len = self.buckets.len();
        let bytes: u64 = (0..keep).map(|j| self.buckets[(self.head + len - j) % len]).sum();
        let now_bucket_start = start + self.bucket_len * k as u32;
        let partial = now.saturating_duration_since(now_bucket_start);
        let full = self.bucket_len * (n as u32 - 1) + partial;
        let since_first = now.saturating_duration_since(first);
        let span = full.min(since_first).max(self.bucket_len);
        (bytes as f64 * 8.0 / span.as_secs_f64()).round() as u64
    }

    /// The bitrate, once one full window has passed since the first packet; `None` while
    /// the measure is still settling (callers then use a nominal value).
    pub fn measured(&self, now: Instant) -> Option<u64> {
        let first = self.first?;
        (now.saturating_duration_since(first) >= self.window).then(|| self.bitrate(now))
    }

    /// Forget everything (the stream changed source).
    pub fn reset(&mut self) {
        self.buckets.iter_mut().for_each(|b| *b = 0);
        self.head = 0;
        self.head_start = None;
        self.first = None;
    }

    /// Whole buckets between the head's start and `now` (0 when `now` is earlier).
    fn buckets_since(&self, start: Instant, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(start);
        (elapsed.as_nanos() / self.bucket_len.as_nanos()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// 1,200 bytes every `every_ms` from `from_ms` (included) to `to_ms` (excluded).
    fn feed(m: &mut BitrateMeter, t0: Instant, from_ms: u64, to_ms: u64, every_ms: u64) {
        let mut t = from_ms;
        while t < to_ms {
            m.record(ms(t0, t), 1200);
            t += every_ms;
        }
    }

    fn assert_near(got: u64, want: u64, tolerance: f64) {
        let err = (got as f64 - want as f64).abs() / want as f64;
        assert!(err <= tolerance, "got {got} bit/s, want {want} ± {:.0}%", tolerance * 100.0);
    }

    #[test]
    fn constant_rate_is_measured_at_any_instant() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        // 1,200 B every 10 ms = 960 kbit/s.
        feed(&mut m, t0, 0, 5000, 10);
        for at in [4990, 4995, 4999] {
            // After the last packet, before the next one would be due.
            assert_near(m.bitrate(ms(t0, at)), 960_000, 0.02);
        }
        assert_near(m.measured(ms(t0, 4995)).unwrap(), 960_000, 0.02);
        // Sampled every 7 ms while feeding: never off by more than one packet per window.
        let mut m = BitrateMeter::default();
        for t in (0..3000).step_by(10) {
            m.record(ms(t0, t), 1200);
            if t >= 1000 {
                assert_near(m.bitrate(ms(t0, t)), 960_000, 0.02);
            }
        }
    }

    #[test]
    fn settling_before_one_window() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        assert_eq!(m.bitrate(t0), 0);
        assert_eq!(m.measured(t0), None);
        feed(&mut m, t0, 0, 500, 10);
        // Half a window in: a fair rate already, but not yet "measured".
        assert_near(m.bitrate(ms(t0, 500)), 960_000, 0.03);
        assert_eq!(m.measured(ms(t0, 500)), None);
        feed(&mut m, t0, 500, 1000, 10);
        assert!(m.measured(ms(t0, 1000)).is_some());
        // A single packet does not read as an absurd rate: at least one bucket is the span.
        let mut one = BitrateMeter::default();
        one.record(t0, 1200);
        assert_eq!(one.bitrate(t0), 96_000);
    }

    #[test]
    fn rate_follows_a_step_within_one_window() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        feed(&mut m, t0, 0, 3000, 10); // 960 kbit/s
        feed(&mut m, t0, 3000, 3500, 40); // 240 kbit/s
        assert_near(m.bitrate(ms(t0, 3499)), 600_000, 0.05); // half old, half new
        feed(&mut m, t0, 3500, 4000, 40);
        assert_near(m.bitrate(ms(t0, 3999)), 240_000, 0.05);
        feed(&mut m, t0, 4000, 6000, 40);
        assert_near(m.bitrate(ms(t0, 5999)), 240_000, 0.05);
    }

    #[test]
    fn silence_reads_zero_and_old_bytes_do_not_come_back() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        feed(&mut m, t0, 0, 2000, 10);
        assert_eq!(m.bitrate(ms(t0, 3000)), 0);
        assert_eq!(m.bitrate(ms(t0, 60_000)), 0);
        // Resume after a long gap: only the new packets count.
        feed(&mut m, t0, 10_000, 11_000, 20);
        assert_near(m.bitrate(ms(t0, 10_999)), 480_000, 0.03);
        // A gap shorter than the window: the old bucket is still partly in it.
        let mut m = BitrateMeter::default();
        feed(&mut m, t0, 0, 1000, 10);
        // (Bucket resolution: the 100 ms at the window's far edge are approximated.)
        assert_near(m.bitrate(ms(t0, 1500)), 480_000, 0.15);
        m.record(ms(t0, 1500), 1200);
        assert!(m.bitrate(ms(t0, 1500)) > 400_000);
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        feed(&mut m, t0, 1000, 2000, 10);
        m.record(ms(t0, 500), 1200);
        let r = m.bitrate(ms(t0, 1999));
        assert_near(r, 969_600, 0.03);
        let _ = m.bitrate(t0);
    }

    #[test]
    fn configurable_window_and_reset() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::new(Duration::from_secs(2), 20);
        assert_eq!(m.window(), Duration::from_secs(2));
        feed(&mut m, t0, 0, 4000, 10);
        feed(&mut m, t0, 4000, 5000, 40);
        // 2 s window: one second at 960k and one at 240k.
        assert_near(m.bitrate(ms(t0, 4999)), 600_000, 0.03);
        assert_eq!(m.measured(ms(t0, 1000)), None);
        m.reset();
        assert_eq!(m.bitrate(ms(t0, 5000)), 0);
        assert_eq!(m.measured(ms(t0, 9000)), None);
    }

    #[test]
    #[should_panic]
    fn zero_buckets_is_refused() {
        let _ = BitrateMeter::new(Duration::from_secs(1), 0);
    }
}
