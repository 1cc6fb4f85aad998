//! Where each stream of a recording starts on the recording's timeline, from the publisher's
//! RTCP sender reports.
//!
//! Rules:
//! - the timeline starts when the recording starts (the server's clock);
//! - a stream whose sender report came is placed where the report says it was captured: the
//!   first such stream ties the publisher's wall clock to the timeline at its arrival, and
//!   every later one (the voice, each layer, a layer whose keyframe came late) is placed on
//!   the publisher's clock, so the streams are in sync as they were captured, whatever their
//!   network delays;
//! - a stream without a report yet is placed at its arrival;
//! - a report that disagrees with the arrival by more than [`MAX_SKEW`] (the teacher came
//!   back from another machine, or its clock jumped) ties the clocks afresh at that arrival.

use ardoise_sfu::SenderClock;
use std::time::{Duration, SystemTime};

/// How far a stream's place by its sender report may be from its arrival.
pub const MAX_SKEW: Duration = Duration::from_secs(1);

/// Where a stream starts, and how it was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// On the recording's timeline.
    pub at: Duration,
    /// By the stream's sender report (else: at its arrival).
    pub by_report: bool,
}

/// The tie between the publisher's wall clock and the recording's timeline.
#[derive(Debug, Default)]
pub struct Timeline {
    /// The publisher's wall-clock time at the timeline's zero, once a report came.
    origin: Option<SystemTime>,
}

impl Timeline {
    /// Where a stream starts whose first packet has RTP timestamp `ts` (clock `rate` Hz), the
    /// stream's latest sender report `sender`, and arrived `arrival` into the recording.
    pub fn place(&mut self, ts: u32, rate: u32, sender: Option<SenderClock>, arrival: Duration) -> Place {
        let Some(sender) = sender else { return Place { at: arrival, by_report: false } };
        let captured = captured_at(sender, ts, rate);
        if let Some(at) = self.origin.and_then(|o| captured.duration_since(o).ok())
            && at.abs_diff(arrival) <= MAX_SKEW
        {
            return Place { at, by_report: true };
        }
        // The first report (or a clock that jumped) ties the clocks at this arrival.
        self.origin = captured.checked_sub(arrival);
        Place { at: arrival, by_report: true }
    }
}

/// The publisher's wall-clock time of RTP timestamp `ts`, by its report.
fn captured_at(sender: SenderClock, ts: u32, rate: u32) -> SystemTime {
    // A signed distance: a packet may be sampled just before its stream's latest report.
    let ticks = i64::from(ts.wrapping_sub(sender.rtp) as i32);
    let ns = ticks.unsigned_abs() * 1_000_000_000 / u64::from(rate.max(1));
    if ticks >= 0 { sender.ntp + Duration::from_nanos(ns) } else { sender.ntp - Duration::from_nanos(ns) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// A publisher whose clocks say: audio ts 48_000 and video ts 900_000 were both sampled at
    /// wall time `t`.
    fn reports(t: SystemTime) -> (SenderClock, SenderClock) {
        (SenderClock { ntp: t, rtp: 48_000 }, SenderClock { ntp: t, rtp: 900_000 })
    }

    #[test]
    fn streams_captured_together_start_together_whatever_their_arrival() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (audio, video) = reports(t);
        let mut line = Timeline::default();
        // The voice sampled at t + 100 ms arrives 120 ms into the recording.
        let a = line.place(48_000 + 4_800, 48_000, Some(audio), ms(120)).at;
        assert_eq!(a, ms(120), "the first stream ties the clocks at its arrival");
        // The 720p keyframe sampled at t + 100 ms arrives 180 ms in (a big frame, paced).
        let v = line.place(900_000 + 9_000, 90_000, Some(video), ms(180)).at;
        assert_eq!(v, ms(120), "placed where it was captured, with the voice");
        // A layer whose first keyframe was sampled at t + 2 s.
        let l = line.place(900_000 + 180_000, 90_000, Some(video), ms(2_090)).at;
        assert_eq!(l, ms(2_020));
    }

    #[test]
    fn a_packet_sampled_before_its_report_is_placed_before_it() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (audio, video) = reports(t);
        let mut line = Timeline::default();
        assert_eq!(line.place(48_000, 48_000, Some(audio), ms(500)).at, ms(500));
        assert_eq!(line.place(900_000 - 9_000, 90_000, Some(video), ms(450)).at, ms(400), "100 ms before the report");
    }

    #[test]
    fn no_report_or_a_clock_that_jumped_means_the_arrival() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (audio, _) = reports(t);
        let mut line = Timeline::default();
        assert_eq!(line.place(7, 90_000, None, ms(30)), Place { at: ms(30), by_report: false }, "no report yet");
        assert_eq!(line.place(48_000, 48_000, Some(audio), ms(40)).at, ms(40));
        // The teacher comes back 10 s later from a machine whose clock is an hour off.
        let other = SenderClock { ntp: t + Duration::from_secs(3_600), rtp: 900_000 };
        assert_eq!(line.place(900_000, 90_000, Some(other), ms(10_040)).at, ms(10_040), "tied afresh");
        let voice = SenderClock { ntp: t + Duration::from_secs(3_600), rtp: 48_000 };
        assert_eq!(
            line.place(48_000 + 960, 48_000, Some(voice), ms(10_100)).at,
            ms(10_060),
            "in sync on the new clock"
        );
    }
}
