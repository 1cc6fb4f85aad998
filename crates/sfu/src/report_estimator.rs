//! A bandwidth estimate for a player that sends no transport-cc feedback (many non-browser
//! WHEP players): from the loss and round-trip time its RTCP receiver reports give.
//!
//! Without per-packet feedback there is no delay-based estimate and no probing: the estimate
//! is the rate the pupil may be sent, moved by what each report says, as the loss-based half
//! of Google's congestion control does (and Galène and LiveKit for such players):
//!
//! - under [`LOSS_LOW`] loss, and the RTT within [`RTT_SLACK`] of the lowest seen, it grows by
//!   [`GROWTH`] per second: the allocator climbs a layer when the estimate reaches its need,
//!   and what the next reports say keeps it or takes it back;
//! - it never grows past the `ceiling` the room gives with each report (what the top layer
//!   needs, and a margin): a link with no loss at 1.5 Mbit/s says nothing of 6 Mbit/s, and
//!   an estimate run up that far would take seconds to come down when the link fills;
//! - over [`LOSS_HIGH`] loss it shrinks by half the loss (`× (1 − loss/2)`), as GCC does, and
//!   remembers where the loss came: for [`LOSS_MEMORY`] it grows no further than
//!   [`BELOW_LOSS`] of that (without probes, each try of a higher layer costs the pupil a
//!   burst of loss: one try per memory, not one every few seconds);
//! - the RTT over the lowest of the last [`RTT_WINDOW`] by more than [`RTT_QUEUE`] (a queue
//!   building up on the link, before any loss) shrinks it by [`QUEUE_CUT`], once per
//!   [`QUEUE_STEP`] the queue grows (a path that became longer for good is cut once, then
//!   becomes the new lowest when the window has passed);
//! - between those, it holds.
//!
//! It starts at [`START_BPS`], the middle layer's need with the studio's default layers
//! (360p at 500 kbit/s, its headroom, the audio reserve), or at a start measured before.
//! A player that sends REMB is better served by its REMB (the room feeds that instead).
//!
//! Pure: time is an input.

use std::time::{Duration, Instant};

/// Where the estimate starts: the middle layer (500 kbit/s × 1.2 + 64 kbit/s of audio) and a
/// little more.
pub const START_BPS: u64 = 700_000;
/// Loss under which the estimate grows.
pub const LOSS_LOW: f32 = 0.02;
/// Loss over which the estimate shrinks.
pub const LOSS_HIGH: f32 = 0.10;
/// Growth per second on a clean link (GCC's loss-based controller grows 8% per second; a
/// pupil without feedback has no probe to find the top layer faster).
pub const GROWTH: f64 = 0.10;
/// RTT over the lowest seen within which the link counts as clean.
pub const RTT_SLACK: Duration = Duration::from_millis(100);
/// RTT over the lowest seen from which a queue is building: shrink before the loss comes.
pub const RTT_QUEUE: Duration = Duration::from_millis(250);
/// The cut when a queue builds.
pub const QUEUE_CUT: f64 = 0.15;
/// A queue must grow this much more to be cut again.
pub const QUEUE_STEP: Duration = Duration::from_millis(50);
/// How long the estimate at which loss came caps the growth.
pub const LOSS_MEMORY: Duration = Duration::from_secs(20);
/// The share of that estimate the growth stays under meanwhile.
pub const BELOW_LOSS: f64 = 0.85;
/// The lowest RTT is the lowest of this long: a path that changed (Wi-Fi to 4G, a relay)
/// is the new normal, not a queue.
pub const RTT_WINDOW: Duration = Duration::from_secs(30);
/// The estimate never goes under this (the audio reserve and a little video).
pub const FLOOR_BPS: u64 = 80_000;
/// Nor over this.
pub const CEILING_BPS: u64 = 20_000_000;

/// The estimate of one pupil's link from its receiver reports (see the module's rules).
#[derive(Debug, Clone)]
pub struct ReportEstimator {
    estimate: u64,
    /// The lowest RTT seen, and when.
    min_rtt: Option<(Duration, Instant)>,
    last: Option<Instant>,
    /// The queue (RTT over the lowest) at the last cut for it.
    queue_cut: Option<Duration>,
    /// The estimate when loss last came, and when.
    lossy: Option<(u64, Instant)>,
}

impl ReportEstimator {
    /// An estimator starting at `start_bps`.
    pub fn new(start_bps: u64) -> Self {
        ReportEstimator {
            estimate: start_bps.clamp(FLOOR_BPS, CEILING_BPS),
            min_rtt: None,
            last: None,
            queue_cut: None,
            lossy: None,
        }
    }

    /// The estimate now, bit/s.
    pub fn estimate(&self) -> u64 {
        self.estimate
    }

    /// A receiver report at `now`: the fraction lost since the previous one (0..1) and the
    /// round-trip time it gives, if any; `ceiling`: what the estimate need not pass (the top
    /// layer's need and a margin). Returns the new estimate.
    pub fn on_report(&mut self, now: Instant, loss: f32, rtt: Option<Duration>, ceiling: u64) -> u64 {
        // Growth counts the time since the last report, at most two seconds (a late report
        // must not make a jump).
        let secs = self.last.map_or(1.0, |t| now.saturating_duration_since(t).as_secs_f64().min(2.0));
        self.last = Some(now);
        if let Some(r) = rtt
            && self.min_rtt.is_none_or(|(m, at)| r <= m || now.saturating_duration_since(at) > RTT_WINDOW)
        {
            self.min_rtt = Some((r, now));
        }
        let queue = match (rtt, self.min_rtt) {
            (Some(r), Some((m, _))) => r.saturating_sub(m),
            _ => Duration::ZERO,
        };
        self.lossy = self.lossy.filter(|(_, at)| now.saturating_duration_since(*at) < LOSS_MEMORY);
        let e = self.estimate as f64;
        let next = if loss > LOSS_HIGH {
            self.lossy = Some((self.estimate, now));
            e * (1.0 - f64::from(loss) / 2.0)
        } else if queue > RTT_QUEUE && self.queue_cut.is_none_or(|q| queue >= q + QUEUE_STEP) {
            self.queue_cut = Some(queue);
            e * (1.0 - QUEUE_CUT)
        } else if loss < LOSS_LOW && queue <= RTT_SLACK {
            self.queue_cut = None;
            let limit = self.lossy.map_or(f64::MAX, |(at, _)| at as f64 * BELOW_LOSS).min(ceiling as f64);
            (e * (1.0 + GROWTH).powf(secs)).min(limit.max(e))
        } else {
            e
        };
        self.estimate = (next.round() as u64).clamp(FLOOR_BPS, CEILING_BPS);
        self.estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_clean_link_grows_and_a_lossy_one_shrinks() {
        let t0 = Instant::now();
        let mut e = ReportEstimator::new(START_BPS);
        let mut t = t0;
        for _ in 0..10 {
            t += ms(1000);
            e.on_report(t, 0.0, Some(ms(20)), u64::MAX);
        }
        // 10% a second for 10 s: 2.6×.
        assert!((1_750_000..=1_900_000).contains(&e.estimate()), "{}", e.estimate());
        let before = e.estimate();
        t += ms(1000);
        e.on_report(t, 0.3, Some(ms(20)), u64::MAX);
        assert_eq!(e.estimate(), (before as f64 * 0.85).round() as u64, "30% loss: × 0.85");
        // Moderate loss holds.
        let held = e.estimate();
        t += ms(1000);
        e.on_report(t, 0.05, Some(ms(20)), u64::MAX);
        assert_eq!(e.estimate(), held);
    }

    #[test]
    fn a_queue_building_shrinks_before_any_loss() {
        let t0 = Instant::now();
        let mut e = ReportEstimator::new(1_000_000);
        e.on_report(t0 + ms(1000), 0.0, Some(ms(20)), u64::MAX);
        let grown = e.estimate();
        assert_eq!(grown, 1_100_000);
        // 150 ms over the lowest RTT: no growth, no cut.
        e.on_report(t0 + ms(2000), 0.0, Some(ms(170)), u64::MAX);
        assert_eq!(e.estimate(), grown);
        // 400 ms over: cut.
        e.on_report(t0 + ms(3000), 0.0, Some(ms(420)), u64::MAX);
        assert_eq!(e.estimate(), (grown as f64 * 0.85).round() as u64);
    }

    #[test]
    fn a_lasting_longer_path_becomes_the_new_lowest_rtt() {
        let t0 = Instant::now();
        let mut e = ReportEstimator::new(1_000_000);
        e.on_report(t0, 0.0, Some(ms(20)), u64::MAX);
        // The pupil's path changes for good: 320 ms. Cut while it looks like a queue…
        let mut t = t0;
        for _ in 0..31 {
            t += ms(1000);
            e.on_report(t, 0.0, Some(ms(320)), u64::MAX);
        }
        let low = e.estimate();
        // …then, the window past, it is the path: the estimate grows again.
        for _ in 0..5 {
            t += ms(1000);
            e.on_report(t, 0.0, Some(ms(320)), u64::MAX);
        }
        assert!(e.estimate() > low, "{} after {low}", e.estimate());
        assert!(low > FLOOR_BPS, "not cut to the floor: {low}");
    }

    #[test]
    fn bounds_and_late_reports() {
        let t0 = Instant::now();
        let mut e = ReportEstimator::new(10);
        assert_eq!(e.estimate(), FLOOR_BPS);
        for i in 1..20 {
            e.on_report(t0 + ms(i * 1000), 1.0, None, u64::MAX);
        }
        assert_eq!(e.estimate(), FLOOR_BPS, "never under the floor");
        let mut f = ReportEstimator::new(1_000_000);
        f.on_report(t0, 0.0, None, u64::MAX);
        f.on_report(t0 + ms(60_000), 0.0, None, u64::MAX);
        assert_eq!(f.estimate(), 1_331_000, "a report a minute late grows as two seconds do");
    }

    #[test]
    fn growth_stops_at_the_ceiling_and_under_the_last_loss_for_a_while() {
        let t0 = Instant::now();
        let mut e = ReportEstimator::new(1_000_000);
        for i in 1..=30 {
            e.on_report(t0 + ms(i * 1000), 0.0, None, 2_000_000);
        }
        assert_eq!(e.estimate(), 2_000_000, "no further than the ceiling");
        // Loss at 2 Mbit/s: cut, then growth stops under 1.7 Mbit/s for LOSS_MEMORY.
        e.on_report(t0 + ms(31_000), 0.4, None, 2_000_000);
        assert_eq!(e.estimate(), 1_600_000);
        for i in 32..=50 {
            e.on_report(t0 + ms(i * 1000), 0.0, None, 2_000_000);
        }
        assert_eq!(e.estimate(), 1_700_000, "under the loss's estimate");
        for i in 51..=55 {
            e.on_report(t0 + ms(i * 1000), 0.0, None, 2_000_000);
        }
        assert_eq!(e.estimate(), 2_000_000, "the memory is over: it tries again");
    }
}
