//! Pre-encoded VP8 clips (IVF files made by `fixtures/make-fixtures.sh`), embedded.

use std::sync::Arc;

/// One encoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// VP8 bitstream of the frame.
    pub data: Arc<[u8]>,
    /// Whether it is a keyframe.
    pub key: bool,
}

/// A looping clip of frames at a fixed rate.
#[derive(Debug, Clone)]
pub struct VideoClip {
    /// Frames in decode order; frame 0 is a keyframe.
    pub frames: Vec<Frame>,
    /// Frames per second.
    pub fps: u32,
    /// Width and height.
    pub size: (u16, u16),
}

const CLIP_720P: &[u8] = include_bytes!("../fixtures/ball-720p.ivf");
const CLIP_360P: &[u8] = include_bytes!("../fixtures/ball-360p.ivf");
const CLIP_180P: &[u8] = include_bytes!("../fixtures/ball-180p.ivf");

impl VideoClip {
    /// Parse an IVF file.
    pub fn from_ivf(bytes: &[u8], fps: u32) -> Result<VideoClip, String> {
        if bytes.len() < 32 || &bytes[0..4] != b"DKIF" {
            return Err("not an IVF file".into());
        }
        let header_len = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
        let size = (u16::from_le_bytes([bytes[12], bytes[13]]), u16::from_le_bytes([bytes[14], bytes[15]]));
        let mut i = header_len;
        let mut frames = Vec::new();
        while i + 12 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
            i += 12;
            let data = bytes.get(i..i + len).ok_or("truncated IVF frame")?;
            let key = data.first().is_some_and(|b| b & 1 == 0);
            frames.push(Frame { data: data.into(), key });
            i += len;
        }
        if !frames.first().is_some_and(|f| f.key) {
            return Err("the first frame is not a keyframe".into());
        }
        Ok(VideoClip { frames, fps, size })
    }

    /// The three simulcast layers, lowest first: (rid, clip).
    pub fn simulcast() -> Vec<(&'static str, VideoClip)> {
        vec![
            ("l", VideoClip::from_ivf(CLIP_180P, 15).expect("embedded 180p clip")),
            ("m", VideoClip::from_ivf(CLIP_360P, 30).expect("embedded 360p clip")),
            ("h", VideoClip::from_ivf(CLIP_720P, 30).expect("embedded 720p clip")),
        ]
    }

    /// Average bitrate of the clip, bits per second.
    pub fn bitrate(&self) -> u64 {
        let bytes: usize = self.frames.iter().map(|f| f.data.len()).sum();
        bytes as u64 * 8 * self.fps as u64 / self.frames.len().max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_clips_parse() {
        let layers = VideoClip::simulcast();
        assert_eq!(layers.len(), 3);
        let (_, high) = &layers[2];
        assert_eq!(high.size, (1280, 720));
        assert_eq!(high.frames.len(), 300);
        assert!(high.frames[0].key);
        assert!(high.frames[1..].iter().all(|f| !f.key));
        assert!((1_000_000..2_000_000).contains(&high.bitrate()), "{}", high.bitrate());
        assert_eq!(layers[0].1.size, (320, 180));
        assert!(VideoClip::from_ivf(b"nope", 30).is_err());
    }
}
