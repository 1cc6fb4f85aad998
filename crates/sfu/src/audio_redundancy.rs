//! RFC 2198 redundancy (RED) for one published audio stream.
//!
//! A pupil whose browser negotiated `red/48000/2` for Opus gets each audio packet with the
//! previous one inside it: a single lost packet is rebuilt from the next one, on top of Opus's
//! own in-band FEC (which only carries a lower-quality copy). The SFU builds the RED payload
//! once per incoming packet (per Opus payload type, which is the same for nearly every pupil)
//! and shares it between the pupils that use it; the others get the plain Opus payload.
//!
//! Redundancy needs the previous packet of the *same* stream: after a gap (loss toward the
//! SFU, a publisher restart) the packet goes out with its primary block only.

use std::sync::Arc;
use str0m::rtp::{RedEncoder, RedundantBlock};

/// Builds the RED payloads of one audio stream (one level of redundancy: the previous packet).
#[derive(Debug, Clone, Default)]
pub struct AudioRedundancy {
    /// The previous packet: extended sequence number, RTP timestamp, Opus payload.
    previous: Option<(u64, u32, Arc<[u8]>)>,
    /// The RED payload built for the current packet: its sequence number, the primary
    /// payload type it names, and the payload.
    built: Option<(u64, u8, Arc<[u8]>)>,
}

impl AudioRedundancy {
    /// The RED payload for the packet `seq`/`ts` whose Opus payload is `primary`, naming
    /// `primary_pt` (the pupil's Opus payload type) in its blocks. Built once per packet and
    /// payload type, then shared.
    pub fn payload(&mut self, seq: u64, ts: u32, primary_pt: u8, primary: &[u8]) -> Arc<[u8]> {
        if let Some((s, pt, red)) = &self.built
            && *s == seq
            && *pt == primary_pt
        {
            return red.clone();
        }
        let redundant: Vec<RedundantBlock> = match &self.previous {
            Some((prev_seq, prev_ts, prev)) if prev_seq + 1 == seq => vec![RedundantBlock {
                pt: primary_pt,
                timestamp_offset: ts.wrapping_sub(*prev_ts),
                payload: prev.to_vec(),
            }],
            _ => Vec::new(),
        };
        // Blocks that do not fit RFC 2198's fields (a timestamp going back, > 1023 bytes) are
        // left out by the encoder.
        let red: Arc<[u8]> = RedEncoder::encode(primary_pt, primary, &redundant).into();
        self.built = Some((seq, primary_pt, red.clone()));
        red
    }

    /// The packet `seq` was handled: it is the redundancy of the next one.
    pub fn advance(&mut self, seq: u64, ts: u32, payload: Arc<[u8]>) {
        self.previous = Some((seq, ts, payload));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::rtp::RedDecoder;

    #[test]
    fn each_packet_carries_the_previous_one() {
        let mut red = AudioRedundancy::default();
        let first: Arc<[u8]> = Arc::from(&b"opus-1"[..]);
        // The first packet has nothing before it: the primary block only.
        let p1 = red.payload(10, 1000, 111, &first);
        let blocks = RedDecoder::decode(&p1).unwrap();
        assert_eq!(blocks.len(), 1);
        assert!(blocks[0].is_primary);
        assert_eq!((blocks[0].pt, blocks[0].payload), (111, &b"opus-1"[..]));
        red.advance(10, 1000, first);

        let second: Arc<[u8]> = Arc::from(&b"opus-2!"[..]);
        let p2 = red.payload(11, 1960, 111, &second);
        let blocks = RedDecoder::decode(&p2).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].pt, blocks[0].timestamp_offset, blocks[0].payload, blocks[0].is_primary),
            (111, 960, &b"opus-1"[..], false)
        );
        assert_eq!((blocks[1].payload, blocks[1].is_primary), (&b"opus-2!"[..], true));
        // Shared for the same packet and payload type; built again for another one.
        assert!(Arc::ptr_eq(&p2, &red.payload(11, 1960, 111, &second)));
        let other = red.payload(11, 1960, 100, &second);
        assert_eq!(RedDecoder::decode(&other).unwrap()[1].pt, 100);
        red.advance(11, 1960, second);

        // A gap (packet 12 never came): no redundancy for 13.
        let fourth: Arc<[u8]> = Arc::from(&b"opus-4"[..]);
        let blocks_after_gap = RedDecoder::decode(&red.payload(13, 3880, 111, &fourth)).unwrap().len();
        assert_eq!(blocks_after_gap, 1);
        // A timestamp that went back does not fit the 14-bit offset: primary only.
        red.advance(13, 3880, fourth.clone());
        assert_eq!(RedDecoder::decode(&red.payload(14, 100, 111, &fourth)).unwrap().len(), 1);
    }
}
