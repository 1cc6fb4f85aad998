//! VP8 RTP packetization (RFC 7741) with a 15-bit picture id.

/// Largest RTP payload produced.
pub const MAX_PAYLOAD: usize = 1100;

/// Splits VP8 frames into RTP payloads.
#[derive(Debug, Clone, Default)]
pub struct Vp8Packetizer {
    picture_id: u16,
}

impl Vp8Packetizer {
    /// Payloads of one frame (the last one carries the marker bit).
    pub fn packetize(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        let pid = self.picture_id & 0x7fff;
        self.picture_id = self.picture_id.wrapping_add(1);
        let chunk = MAX_PAYLOAD - 4;
        frame
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let mut p = Vec::with_capacity(4 + part.len());
                // X=1, S on the first packet, PID=0; I=1; M=1 + 15-bit picture id.
                p.push(if i == 0 { 0x90 } else { 0x80 });
                p.push(0x80);
                p.push(0x80 | (pid >> 8) as u8);
                p.push(pid as u8);
                p.extend_from_slice(part);
                p
            })
            .collect()
    }
}

/// Picture id of a VP8 payload with an extended descriptor, if present.
pub fn picture_id(payload: &[u8]) -> Option<u16> {
    if payload.len() < 4 || payload[0] & 0x80 == 0 || payload[1] & 0x80 == 0 {
        return None;
    }
    if payload[2] & 0x80 != 0 {
        Some((((payload[2] & 0x7f) as u16) << 8) | payload[3] as u16)
    } else {
        Some(payload[2] as u16)
    }
}

/// Whether a VP8 payload starts a keyframe, whatever its descriptor (the SFU's parser).
pub use ardoise_sfu::keyframe::vp8_keyframe_start as is_keyframe_start;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_marks() {
        let mut p = Vp8Packetizer::default();
        let frame: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8 & 0xfe).collect();
        let pkts = p.packetize(&frame);
        assert_eq!(pkts.len(), 3);
        assert!(pkts.iter().all(|x| x.len() <= MAX_PAYLOAD));
        assert!(is_keyframe_start(&pkts[0]));
        assert!(!is_keyframe_start(&pkts[1]));
        let joined: Vec<u8> = pkts.iter().flat_map(|x| x[4..].to_vec()).collect();
        assert_eq!(joined, frame);
        assert_eq!(picture_id(&pkts[0]), Some(0));
        assert_eq!(picture_id(&p.packetize(&frame)[0]), Some(1));
    }
}
