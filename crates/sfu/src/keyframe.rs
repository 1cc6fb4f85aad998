//! Payload inspection: does this RTP payload start a keyframe? (VP8 per RFC 7741, H.264 per RFC 6184.)

/// Codecs whose keyframes the SFU can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8 (RFC 7741).
    Vp8,
    /// H.264 (RFC 6184).
    H264,
    /// Anything else: every packet counts as a possible start.
    Other,
}

/// Whether `payload` is the first packet of a keyframe for `codec`.
pub fn is_keyframe_start(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe_start(payload),
        VideoCodec::H264 => h264_keyframe_start(payload),
        VideoCodec::Other => true,
    }
}

/// Length of the VP8 payload descriptor (RFC 7741 §4.2) at the start of `p`, if complete.
pub fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let &b0 = p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let &x = p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            let &pic = p.get(i)?;
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    (i <= p.len()).then_some(i)
}

/// VP8: start of partition 0 (S=1, PID=0) whose frame tag has P=0 (key frame).
pub fn vp8_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return false;
    }
    matches!(vp8_descriptor_len(p).and_then(|i| p.get(i)), Some(tag) if tag & 0x01 == 0)
}

/// H.264: a packet carrying an IDR slice or an SPS (single NAL, STAP-A, or FU-A start).
pub fn h264_keyframe_start(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let is_key_nal = |t: u8| t == 5 || t == 7;
    match b0 & 0x1f {
        24 => {
            // STAP-A: [hdr][size16][nal]...
            let mut i = 1;
            while i + 2 < p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if is_key_nal(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => matches!(p.get(1), Some(fu) if fu & 0x80 != 0 && is_key_nal(fu & 0x1f)),
        t => is_key_nal(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_descriptor_variants() {
        // Minimal descriptor, S=1, keyframe tag.
        assert!(vp8_keyframe_start(&[0x10, 0x50]));
        // Interframe (P bit set).
        assert!(!vp8_keyframe_start(&[0x10, 0x51]));
        // Not a partition start.
        assert!(!vp8_keyframe_start(&[0x00, 0x50]));
        // Extended with 15-bit picture id and TL0PICIDX.
        assert!(vp8_keyframe_start(&[0x90, 0xC0, 0x81, 0x23, 0x07, 0x50]));
        assert!(!vp8_keyframe_start(&[0x90, 0xC0, 0x81, 0x23, 0x07, 0x51]));
        // Truncated input never panics.
        assert!(!vp8_keyframe_start(&[0x90, 0xC0, 0x81]));
        assert!(!vp8_keyframe_start(&[]));
        assert_eq!(vp8_descriptor_len(&[0x90, 0xC0, 0x81, 0x23, 0x07, 0x50]), Some(5));
        assert_eq!(vp8_descriptor_len(&[0x10, 0x50]), Some(1));
        assert_eq!(vp8_descriptor_len(&[0x90, 0x80]), None);
    }

    #[test]
    fn h264_nal_variants() {
        assert!(h264_keyframe_start(&[0x65, 0x88])); // IDR
        assert!(h264_keyframe_start(&[0x67, 0x42])); // SPS
        assert!(!h264_keyframe_start(&[0x41, 0x9a])); // non-IDR slice
        assert!(h264_keyframe_start(&[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68])); // STAP-A with SPS
        assert!(h264_keyframe_start(&[0x7c, 0x85, 0x00])); // FU-A start of IDR
        assert!(!h264_keyframe_start(&[0x7c, 0x05, 0x00])); // FU-A continuation
        assert!(!h264_keyframe_start(&[0x18, 0xff, 0xff]));
    }
}
