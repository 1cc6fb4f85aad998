//! The forwarding decision: drop or send, and with which sequence number and timestamp.
//!
//! A [`Forwarder`] belongs to one subscription (one outgoing stream of one subscriber). It is
//! a pure state machine: given an incoming packet's source, sequence number, timestamp and
//! whether it starts a keyframe, it answers [`Decision::Drop`] or [`Decision::Send`] with the
//! rewritten values. When the source changes (the teacher reconnects with new SSRCs, or the
//! subscriber moves to another simulcast layer) it rebases, so that the subscriber sees one
//! continuous stream: sequence numbers go on from the last one sent, and the timestamp
//! advances by the wall-clock time elapsed since the last packet.

use std::time::Instant;

/// Identifies one incoming RTP stream: the publishing participant and the stream's SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// Publishing participant id.
    pub publisher: u64,
    /// SSRC of the incoming stream (one simulcast layer).
    pub ssrc: u32,
}

/// What the forwarder needs to know of one incoming packet.
#[derive(Debug, Clone, Copy)]
pub struct PacketIn {
    /// Where it comes from.
    pub source: SourceKey,
    /// Extended (rollover-free) sequence number.
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// Whether this packet is the first packet of a keyframe (always true for audio).
    pub keyframe_start: bool,
    /// Arrival time.
    pub now: Instant,
}

/// Why a packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Video from a new source: waiting for a keyframe before switching.
    WaitingForKeyframe,
    /// Older than the point where the forwarder switched to this source.
    BeforeSwitch,
    /// From a source other than the current one while no switch is wanted.
    NotSelected,
}

/// The forwarding decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Do not send.
    Drop(DropReason),
    /// Send with these values.
    Send {
        /// Extended outgoing sequence number.
        seq: u64,
        /// Outgoing RTP timestamp.
        ts: u32,
        /// True for the first packet after a (re)base: the subscriber's decoder starts here.
        switched: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    source: SourceKey,
    /// First incoming sequence number forwarded from this source.
    first_seq: u64,
    /// out = in + seq_delta (wrapping in u64).
    seq_delta: u64,
    /// out = in + ts_delta (wrapping in u32).
    ts_delta: u32,
}

/// Per-subscription sequence-number and timestamp rewriter. Pure: no clock, no I/O.
#[derive(Debug, Clone)]
pub struct Forwarder {
    clock_rate: u32,
    needs_keyframe: bool,
    mapping: Option<Mapping>,
    /// Highest outgoing sequence number sent so far.
    last_seq: Option<u64>,
    /// Timestamp and time of the newest packet sent (highest outgoing seq).
    last_ts: u32,
    last_at: Option<Instant>,
    first_seq: u64,
}

impl Forwarder {
    /// A forwarder for a stream with this RTP clock rate. `needs_keyframe` is true for video:
    /// a new source is only taken at a keyframe. `first_seq` is the first outgoing sequence
    /// number (below 65 536, so that the SRTP rollover counter starts at 0).
    pub fn new(clock_rate: u32, needs_keyframe: bool, first_seq: u16) -> Self {
        Forwarder {
            clock_rate,
            needs_keyframe,
            mapping: None,
            last_seq: None,
            last_ts: 0,
            last_at: None,
            first_seq: first_seq as u64,
        }
    }

    /// The source currently forwarded, if any.
    pub fn source(&self) -> Option<SourceKey> {
        self.mapping.map(|m| m.source)
    }

    /// Highest outgoing sequence number sent so far.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Forget the current source (the publisher left, the pupil steps down): the next
    /// keyframe of the chosen source rebases.
    pub fn release(&mut self) {
        self.mapping = None;
    }

    /// Decide for one packet. `switch_allowed` says whether the caller wants this packet's
    /// source to replace the current one (the layer selector's choice).
    pub fn decide(&mut self, p: &PacketIn, switch_allowed: bool) -> Decision {
        match self.mapping {
            Some(m) if m.source == p.source => {
                if p.seq < m.first_seq {
                    return Decision::Drop(DropReason::BeforeSwitch);
                }
                let seq = p.seq.wrapping_add(m.seq_delta);
                let ts = p.ts.wrapping_add(m.ts_delta);
                if self.last_seq.is_none_or(|l| seq > l) {
                    self.last_seq = Some(seq);
                    self.last_ts = ts;
                    self.last_at = Some(p.now);
                }
                Decision::Send { seq, ts, switched: false }
            }
            // Not the chosen source: whether another is forwarded or none is (after a release,
            // only the chosen one may start the picture again).
            _ if !switch_allowed => Decision::Drop(DropReason::NotSelected),
            _ => {
                if self.needs_keyframe && !p.keyframe_start {
                    return Decision::Drop(DropReason::WaitingForKeyframe);
                }
                let (seq, ts) = match (self.last_seq, self.last_at) {
                    (Some(last_seq), Some(last_at)) => {
                        let elapsed = p.now.saturating_duration_since(last_at);
                        let ticks = (elapsed.as_micros() as u64 * self.clock_rate as u64 / 1_000_000).max(1) as u32;
                        (last_seq + 1, self.last_ts.wrapping_add(ticks))
                    }
                    _ => (self.first_seq, p.ts),
                };
                self.mapping = Some(Mapping {
                    source: p.source,
                    first_seq: p.seq,
                    seq_delta: seq.wrapping_sub(p.seq),
                    ts_delta: ts.wrapping_sub(p.ts),
                });
                self.last_seq = Some(seq);
                self.last_ts = ts;
                self.last_at = Some(p.now);
                Decision::Send { seq, ts, switched: true }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pkt(publisher: u64, ssrc: u32, seq: u64, ts: u32, key: bool, now: Instant) -> PacketIn {
        PacketIn { source: SourceKey { publisher, ssrc }, seq, ts, keyframe_start: key, now }
    }

    fn sent(d: Decision) -> (u64, u32) {
        match d {
            Decision::Send { seq, ts, .. } => (seq, ts),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    #[test]
    fn video_waits_for_keyframe_then_passes_through() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, true, 100);
        assert_eq!(f.decide(&pkt(1, 10, 5000, 1000, false, t0), true), Decision::Drop(DropReason::WaitingForKeyframe));
        assert_eq!(sent(f.decide(&pkt(1, 10, 5001, 4000, true, t0), true)), (100, 4000));
        assert_eq!(sent(f.decide(&pkt(1, 10, 5002, 4000, false, t0), true)), (101, 4000));
        // Reordered retransmission maps to the same place.
        assert_eq!(sent(f.decide(&pkt(1, 10, 5001, 4000, true, t0), true)), (100, 4000));
        assert_eq!(f.last_seq(), Some(101));
        // Before the switch point: dropped.
        assert_eq!(f.decide(&pkt(1, 10, 5000, 1000, false, t0), true), Decision::Drop(DropReason::BeforeSwitch));
    }

    #[test]
    fn publisher_restart_keeps_seq_and_ts_continuous() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, true, 0);
        for i in 0..10u64 {
            f.decide(&pkt(1, 10, 40_000 + i, 3000 * i as u32, i == 0, t0 + Duration::from_millis(33 * i)), true);
        }
        let last_t = t0 + Duration::from_millis(33 * 9);
        // The teacher comes back 1.5 s later with a new SSRC and random seq/ts bases.
        let t1 = last_t + Duration::from_millis(1500);
        assert_eq!(f.decide(&pkt(2, 77, 9, 123_456, false, t1), false), Decision::Drop(DropReason::NotSelected));
        f.release();
        assert_eq!(f.decide(&pkt(2, 77, 9, 123_456, false, t1), true), Decision::Drop(DropReason::WaitingForKeyframe));
        let (seq, ts) = sent(f.decide(&pkt(2, 77, 10, 123_456, true, t1), true));
        assert_eq!(seq, 10, "sequence continues after the last one sent (9)");
        assert_eq!(ts, 27_000 + 135_000, "timestamp advances by the 1.5 s elapsed");
        assert_eq!(sent(f.decide(&pkt(2, 77, 11, 126_456, false, t1), true)), (11, 27_000 + 138_000));
    }

    #[test]
    fn wraparound_of_input_and_output() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(48_000, false, 65_530);
        // Incoming extended seq crosses 2^16 and the timestamp crosses 2^32.
        for (i, expect_seq) in (0..20u64).zip(65_530u64..) {
            let ts = (u32::MAX - 5 * 960).wrapping_add(960 * i as u32);
            let (seq, out_ts) = sent(f.decide(&pkt(1, 5, 65_530 + i, ts, true, t0), true));
            assert_eq!(seq, expect_seq);
            assert_eq!(out_ts, ts);
        }
        assert_eq!(f.last_seq(), Some(65_549));
        assert_eq!((65_549u64 as u16), 13, "the 16-bit wire value wrapped");
    }

    #[test]
    fn restart_across_timestamp_wrap() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(48_000, false, 1);
        let near_max = u32::MAX - 100;
        sent(f.decide(&pkt(1, 5, 10, near_max, true, t0), true));
        f.release();
        let (seq, ts) = sent(f.decide(&pkt(2, 6, 60_000, 7, true, t0 + Duration::from_millis(20)), true));
        assert_eq!(seq, 2);
        assert_eq!(ts, near_max.wrapping_add(960));
    }

    #[test]
    fn layer_switch_happens_only_on_keyframe_of_new_layer() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, true, 0);
        sent(f.decide(&pkt(1, 100, 1, 0, true, t0), true));
        // Packet of another layer, switch wanted, but not a keyframe: stays on the old layer.
        assert_eq!(f.decide(&pkt(1, 200, 50, 0, false, t0), true), Decision::Drop(DropReason::WaitingForKeyframe));
        assert_eq!(f.source().unwrap().ssrc, 100);
        sent(f.decide(&pkt(1, 200, 51, 3000, true, t0 + Duration::from_millis(33)), true));
        assert_eq!(f.source().unwrap().ssrc, 200);
    }
}
