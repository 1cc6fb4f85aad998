//! The frames of one video layer since its latest keyframe, so that a pupil who connects
//! gets a picture at once instead of waiting for a keyframe asked of the teacher's encoder.
//!
//! A joining pupil needs a keyframe. Asking the encoder for one costs the class (a keyframe
//! is 5–10× a frame) and takes a round trip; throttled to protect the teacher's uplink, a
//! burst of pupils joining in the same second waits up to the throttle's interval. The
//! cache holds the packets of the current group of pictures (the keyframe and every frame
//! after it) while it is young: a pupil that connects within `max_age` of the keyframe is
//! sent the group in one go, its decoder starts at the keyframe and catches up to the live
//! frame; older, the room asks for a fresh keyframe as before (throttled), and the cache
//! starts again at it.
//!
//! Rules:
//! - a keyframe's first packet starts a new group, if it is newer than every packet kept
//!   and of another frame (H.264 sends the parameter sets and each slice of an IDR picture
//!   in packets that each look like a keyframe's start: they belong to the group their
//!   frame started; a late retransmission of an old keyframe's start is not a new group);
//!   packets before the group's first (older sequence numbers) are never kept;
//! - the group is dropped, until the next keyframe, when it grows past `max_bytes` (a large
//!   group would arrive late at the pupil, in front of the live frames and its voice);
//! - it is served only while younger than `max_age`.
//!
//! Pure: time is an input; payloads are shared (`Arc`), never copied.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::rtp::ExtensionValues;

/// One cached RTP packet.
#[derive(Debug, Clone)]
pub struct CachedPacket {
    /// Extended sequence number (the publisher's).
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// End of frame.
    pub marker: bool,
    /// The first packet of a keyframe (the group's first).
    pub keyframe_start: bool,
    /// Header extensions to carry.
    pub ext: ExtensionValues,
    /// Payload.
    pub payload: Arc<[u8]>,
}

/// The current group of pictures of one layer (see the module's rules).
#[derive(Debug, Clone, Default)]
pub struct KeyframeCache {
    packets: VecDeque<CachedPacket>,
    started: Option<Instant>,
    /// The group's keyframe's RTP timestamp.
    key_ts: Option<u32>,
    /// The newest sequence number seen.
    newest: Option<u64>,
    bytes: usize,
    /// The group outgrew the cap: nothing is kept until the next keyframe.
    overflowed: bool,
}

impl KeyframeCache {
    /// Keep `p` (arrived at `now`) if it belongs to the current group; a keyframe's first
    /// packet starts a new one. `max_bytes` caps the group.
    pub fn push(&mut self, now: Instant, p: CachedPacket, max_bytes: usize) {
        let newer = self.newest.is_none_or(|n| p.seq > n);
        if newer {
            self.newest = Some(p.seq);
        }
        if p.keyframe_start && newer && self.key_ts != Some(p.ts) {
            self.packets.clear();
            self.bytes = 0;
            self.overflowed = false;
            self.started = Some(now);
            self.key_ts = Some(p.ts);
        } else if self.started.is_none() || self.overflowed {
            return;
        } else if self.packets.front().is_some_and(|first| p.seq < first.seq) {
            return; // a late packet from before the keyframe
        }
        self.bytes += p.payload.len();
        if self.bytes > max_bytes {
            self.packets.clear();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.packets.push_back(p);
    }

    /// The group, from its keyframe on, if it is younger than `max_age` at `now`.
    pub fn group(&self, now: Instant, max_age: Duration) -> Option<impl Iterator<Item = &CachedPacket>> {
        let started = self.started?;
        let fresh = !self.overflowed && now.saturating_duration_since(started) <= max_age;
        (fresh && !self.packets.is_empty()).then(|| self.packets.iter())
    }

    /// When the group's keyframe came, if a group is held.
    pub fn started(&self) -> Option<Instant> {
        self.started.filter(|_| !self.overflowed)
    }

    /// Forget everything (the layer's stream changed).
    pub fn clear(&mut self) {
        *self = KeyframeCache::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u64, key: bool, len: usize) -> CachedPacket {
        CachedPacket {
            seq,
            ts: seq as u32 * 3000,
            marker: true,
            keyframe_start: key,
            ext: ExtensionValues::default(),
            payload: Arc::from(vec![0u8; len]),
        }
    }

    #[test]
    fn a_group_starts_at_a_keyframe_and_is_served_while_young() {
        let t0 = Instant::now();
        let mut c = KeyframeCache::default();
        c.push(t0, pkt(1, false, 100), 10_000);
        assert!(c.group(t0, Duration::from_secs(1)).is_none(), "nothing before a keyframe");
        c.push(t0, pkt(2, true, 1000), 10_000);
        c.push(t0, pkt(3, false, 100), 10_000);
        c.push(t0, pkt(1, false, 100), 10_000); // late, from before the keyframe
        c.push(t0, pkt(4, false, 100), 10_000);
        let seqs: Vec<u64> =
            c.group(t0 + Duration::from_millis(900), Duration::from_secs(1)).unwrap().map(|p| p.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        assert!(c.group(t0 + Duration::from_millis(1100), Duration::from_secs(1)).is_none(), "too old");
        // A new keyframe starts again.
        let t1 = t0 + Duration::from_secs(2);
        c.push(t1, pkt(5, true, 1000), 10_000);
        assert_eq!(c.group(t1, Duration::from_secs(1)).unwrap().count(), 1);
    }

    #[test]
    fn the_packets_of_one_keyframe_and_late_repairs_do_not_restart_the_group() {
        let t0 = Instant::now();
        let mut c = KeyframeCache::default();
        let at = |seq: u64, ts: u32, key: bool| CachedPacket { ts, ..pkt(seq, key, 100) };
        // H.264: the parameter sets, then two slices of the IDR picture, each a "start".
        c.push(t0, at(10, 9000, true), 10_000);
        c.push(t0, at(11, 9000, true), 10_000);
        c.push(t0, at(12, 9000, true), 10_000);
        c.push(t0, at(13, 12000, false), 10_000);
        // A repaired packet of an older keyframe's start arrives late.
        c.push(t0, at(5, 6000, true), 10_000);
        let seqs: Vec<u64> = c.group(t0, Duration::from_secs(1)).unwrap().map(|p| p.seq).collect();
        assert_eq!(seqs, vec![10, 11, 12, 13]);
        // The next keyframe (a newer frame) starts a new group.
        c.push(t0, at(14, 15000, true), 10_000);
        assert_eq!(c.group(t0, Duration::from_secs(1)).unwrap().count(), 1);
    }

    #[test]
    fn a_group_too_large_is_dropped_until_the_next_keyframe() {
        let t0 = Instant::now();
        let mut c = KeyframeCache::default();
        c.push(t0, pkt(1, true, 600), 1000);
        c.push(t0, pkt(2, false, 600), 1000);
        assert!(c.group(t0, Duration::from_secs(1)).is_none());
        c.push(t0, pkt(3, false, 10), 1000);
        assert!(c.group(t0, Duration::from_secs(1)).is_none(), "still dropped");
        c.push(t0, pkt(4, true, 500), 1000);
        assert_eq!(c.group(t0, Duration::from_secs(1)).unwrap().count(), 1);
    }
}
