//! Puts one RTP stream's packets back in sequence order before its depayloader.
//!
//! The programme reaches the recorder as the SFU received it: a packet lost on the way and
//! repaired by a retransmission (NACK, RTX) arrives after the ones sent behind it. A
//! depayloader drops a packet older than the last it saw, and with it the whole frame, and
//! then every frame until the next keyframe (seconds of a layer lost, or all of a short
//! one). Rules:
//! - packets wait at most [`REORDER_WINDOW`] (arrival time) for the ones missing before them:
//!   long enough for a retransmission on a school link, and it costs only memory, since a
//!   recording is not watched live;
//! - a packet that comes after its place was given up, or twice, is dropped;
//! - a new stream (another SSRC) starts a new sequence: the caller makes a new `Reorder`.
//!
//! (Not GStreamer's `rtpjitterbuffer`: it re-times its output on the pipeline clock, and the
//! recorder's timeline is its own, anchored per stream; see the crate's rules.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a packet waits for the packets missing before it.
pub const REORDER_WINDOW: Duration = Duration::from_millis(500);

/// A reorder window over one stream's extended (never wrapping) sequence numbers, as str0m
/// gives them.
#[derive(Debug)]
pub struct Reorder<T> {
    /// Waiting packets, by sequence number, with their arrival.
    waiting: BTreeMap<u64, (Instant, T)>,
    /// The next sequence number to release, once the first packet is seen.
    next: Option<u64>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder { waiting: BTreeMap::new(), next: None }
    }
}

impl<T> Reorder<T> {
    /// Take packet `seq` (arrived `at`), and append to `out` every packet now in order, or
    /// whose wait is over.
    pub fn push(&mut self, seq: u64, at: Instant, packet: T, out: &mut Vec<T>) {
        let next = *self.next.get_or_insert(seq);
        if seq >= next {
            self.waiting.entry(seq).or_insert((at, packet));
        }
        self.release(at, out);
    }

    /// Append every waiting packet, in order, and start afresh: the stream ended (another
    /// one, with its own sequence numbers, may follow).
    pub fn flush(&mut self, out: &mut Vec<T>) {
        out.extend(std::mem::take(&mut self.waiting).into_values().map(|(_, p)| p));
        self.next = None;
    }

    fn release(&mut self, now: Instant, out: &mut Vec<T>) {
        while let Some(entry) = self.waiting.first_entry() {
            let next = self.next.expect("set at the first packet");
            let (seq, (arrived, _)) = (*entry.key(), entry.get());
            if seq != next && now.saturating_duration_since(*arrived) < REORDER_WINDOW {
                return; // waiting for `next`
            }
            let (_, packet) = entry.remove();
            out.push(packet);
            self.next = Some(seq + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(r: &mut Reorder<u64>, seqs: &[(u64, u64)], t0: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        for &(s, ms) in seqs {
            r.push(s, t0 + Duration::from_millis(ms), s, &mut out);
        }
        out
    }

    #[test]
    fn a_retransmitted_packet_takes_its_place() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        // 3 lost, repaired 40 ms later, after 4 and 5.
        assert_eq!(run(&mut r, &[(1, 0), (2, 1), (4, 2), (5, 3), (3, 40), (6, 41)], t0), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_frame_sent_whole_after_its_last_packet_comes_out_whole() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        let mut seqs = vec![(99, 0), (119, 1)];
        seqs.extend((100..119).map(|s| (s, 5)));
        let out = run(&mut r, &seqs, t0);
        assert_eq!(out, (99..=119).collect::<Vec<u64>>());
    }

    #[test]
    fn a_packet_never_repaired_is_given_up_after_the_window() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        let out = run(&mut r, &[(10, 0), (12, 1), (13, 2)], t0);
        assert_eq!(out, vec![10], "12 and 13 wait for 11");
        let later = REORDER_WINDOW.as_millis() as u64 + 1;
        let out = run(&mut r, &[(14, later)], t0);
        assert_eq!(out, vec![12, 13, 14], "the wait is over");
        assert!(run(&mut r, &[(11, later + 1)], t0).is_empty(), "too late now: dropped");
        assert!(run(&mut r, &[(14, later + 2)], t0).is_empty(), "a duplicate: dropped");
    }

    #[test]
    fn the_end_flushes_what_waits_in_order() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        assert_eq!(run(&mut r, &[(5, 0), (8, 1), (7, 2)], t0), vec![5]);
        let mut out = Vec::new();
        r.flush(&mut out);
        assert_eq!(out, vec![7, 8]);
        assert_eq!(run(&mut r, &[(3, 3), (4, 4)], t0), vec![3, 4], "a new stream after the end, lower numbers");
    }
}
