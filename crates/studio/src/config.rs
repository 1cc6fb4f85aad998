//! Studio settings (the `[studio]` section of the configuration, mapped by the binary).

use crate::{Layout, SourceSpec};
use anyhow::{Result, bail};
use std::net::{IpAddr, SocketAddr};

/// Video codec of every simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// libvpx VP8, realtime.
    Vp8,
    /// x264, zerolatency, constrained baseline (for older iPads).
    H264,
}

impl std::str::FromStr for VideoCodec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vp8" => Ok(VideoCodec::Vp8),
            "h264" => Ok(VideoCodec::H264),
            o => Err(format!("unknown codec '{o}' (vp8 or h264)")),
        }
    }
}

/// One simulcast layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// Restriction id (`h`, `m`, `l`).
    pub rid: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate, kbit/s.
    pub kbps: u32,
}

impl std::str::FromStr for LayerSpec {
    type Err = String;
    /// `rid:WIDTHxHEIGHT@FPS:KBPS`, e.g. `h:1280x720@30:1500`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad layer '{s}' (expected rid:WIDTHxHEIGHT@FPS:KBPS, e.g. h:1280x720@30:1500)");
        let mut parts = s.split(':');
        let (rid, geo, kbps) =
            (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
        if parts.next().is_some() || rid.is_empty() || !rid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        let (size, fps) = geo.split_once('@').ok_or_else(bad)?;
        let (w, h) = size.split_once('x').ok_or_else(bad)?;
        let num = |v: &str| v.parse::<u32>().map_err(|_| bad());
        Ok(LayerSpec { rid: rid.to_owned(), width: num(w)?, height: num(h)?, fps: num(fps)?, kbps: num(kbps)? })
    }
}

/// An encoded frame handed from GStreamer to the publisher.
#[derive(Debug, Clone)]
pub struct EncodedLayer {
    /// Index in [`StudioConfig::layers`], or `None` for audio.
    pub layer: Option<usize>,
    /// Presentation time, microseconds (pipeline running time).
    pub pts_us: u64,
    /// Keyframe.
    pub key: bool,
    /// When the buffer left the encoder.
    pub at: std::time::Instant,
    /// Capture-to-encoder-out latency, if known.
    pub latency_us: Option<u64>,
    /// Bitstream.
    pub data: std::sync::Arc<[u8]>,
}

/// Everything the studio needs.
#[derive(Debug, Clone)]
pub struct StudioConfig {
    /// Server base URL (`http://host:port`); a cluster's nodes separated by commas (the
    /// studio uses whichever answers, and follows it to the class's owner).
    pub server: String,
    /// Class id to publish to.
    pub class: String,
    /// Teacher token.
    pub token: String,
    /// Camera input.
    pub camera: SourceSpec,
    /// Document camera input.
    pub document: SourceSpec,
    /// Screen input.
    pub screen: SourceSpec,
    /// Microphone.
    pub microphone: SourceSpec,
    /// Layout at start.
    pub layout: Layout,
    /// Video codec.
    pub codec: VideoCodec,
    /// Simulcast layers, highest first (camera layout).
    pub layers: Vec<LayerSpec>,
    /// The same layers when the layout shows a document or the screen: text needs pixels
    /// more than frames (same rids and bitrates; sizes and rates may differ).
    pub content_layers: Vec<LayerSpec>,
    /// Opus bitrate, kbit/s.
    pub audio_kbps: u32,
    /// Echo cancellation and noise suppression (`webrtcdsp`): not wired yet (it needs an echo
    /// probe on the speaker's path); the microphone goes as captured.
    pub echo_cancel: bool,
    /// Local IP for the WebRTC socket.
    pub bind: IpAddr,
    /// Control API address (layout switching), if any.
    pub control: Option<SocketAddr>,
    /// Where granted pupils' voices play in the classroom.
    pub speaker: Speaker,
    /// Follow the class events (layout from the teacher's console).
    pub follow_class: bool,
    /// Burn the capture's wall-clock time into the top of every frame, machine-readable
    /// ([`crate::timecode`]): glass-to-glass measurements only, never for a class.
    pub timecode: bool,
}

/// The classroom speaker for return audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// GStreamer's `autoaudiosink` (falls back to silence when there is no sound card).
    Auto,
    /// Decode but play nowhere (tests, headless servers).
    None,
}

impl std::str::FromStr for Speaker {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Speaker::Auto),
            "none" => Ok(Speaker::None),
            _ => Err(format!("unknown speaker '{s}' (auto, none)")),
        }
    }
}

impl StudioConfig {
    /// The servers of [`StudioConfig::server`], in order.
    pub fn servers(&self) -> Vec<&str> {
        self.server.split(',').map(|s| s.trim().trim_end_matches('/')).filter(|s| !s.is_empty()).collect()
    }

    /// The origin of the node that owns the class now (see `ardoise_client::http::owner`).
    pub fn class_server(&self) -> anyhow::Result<String> {
        ardoise_client::http::owner(&self.servers(), &format!("/whip/{}", self.class))
    }

    /// Test sources publishing to `class` on `server`: what `ardoise demo` and the tests use.
    pub fn test_sources(server: &str, class: &str, token: &str) -> StudioConfig {
        StudioConfig {
            server: server.to_owned(),
            class: class.to_owned(),
            token: token.to_owned(),
            camera: SourceSpec::TestPattern("ball".into()),
            document: SourceSpec::TestPattern("smpte".into()),
            screen: SourceSpec::TestPattern("pinwheel".into()),
            microphone: SourceSpec::TestTone(440),
            layout: Layout::DocumentCamera,
            codec: VideoCodec::Vp8,
            layers: Self::default_layers(),
            content_layers: Self::default_content_layers(),
            audio_kbps: 32,
            echo_cancel: true,
            bind: "127.0.0.1".parse().expect("ip"),
            control: None,
            speaker: Speaker::Auto,
            follow_class: true,
            timecode: false,
        }
    }

    /// 720p30 1.5 Mbit/s, 360p30 500 kbit/s, 180p15 150 kbit/s.
    pub fn default_layers() -> Vec<LayerSpec> {
        vec![
            LayerSpec { rid: "h".into(), width: 1280, height: 720, fps: 30, kbps: 1500 },
            LayerSpec { rid: "m".into(), width: 640, height: 360, fps: 30, kbps: 500 },
            LayerSpec { rid: "l".into(), width: 320, height: 180, fps: 15, kbps: 150 },
        ]
    }

    /// For document and screen layouts: 720p30, 960x540@15 (legible text at the same
    /// 500 kbit/s as 360p30), 180p15.
    pub fn default_content_layers() -> Vec<LayerSpec> {
        vec![
            LayerSpec { rid: "h".into(), width: 1280, height: 720, fps: 30, kbps: 1500 },
            LayerSpec { rid: "m".into(), width: 960, height: 540, fps: 15, kbps: 500 },
            LayerSpec { rid: "l".into(), width: 320, height: 180, fps: 15, kbps: 150 },
        ]
    }

    /// The layers to encode for `layout`.
    pub fn layers_for(&self, layout: crate::Layout) -> &[LayerSpec] {
        if layout.shows_content() && self.content_layers.len() == self.layers.len() {
            &self.content_layers
        } else {
            &self.layers
        }
    }

    /// Check settings and that every configured device exists.
    pub fn validate(&self) -> Result<()> {
        if self.layers.is_empty() || self.layers.len() > 3 {
            bail!("studio: 1 to 3 simulcast layers are needed");
        }
        for w in self.layers.windows(2) {
            if w[1].width > w[0].width || w[1].height > w[0].height {
                bail!("studio: layers must be listed from the highest to the lowest resolution");
            }
        }
        if !self.content_layers.is_empty() {
            let rids = |v: &[LayerSpec]| v.iter().map(|l| (l.rid.clone(), l.kbps)).collect::<Vec<_>>();
            if rids(&self.content_layers) != rids(&self.layers) {
                bail!("studio: content_layers must have the same rids and bitrates as layers, in the same order");
            }
            if self.content_layers.iter().zip(&self.layers).any(|(c, l)| {
                c.width > self.layers[0].width || c.height > self.layers[0].height || c.width > l.width * 2
            }) {
                bail!("studio: a content layer may not exceed the top layer's size");
            }
        }
        for l in self.layers.iter().chain(&self.content_layers) {
            if l.width < 64
                || l.height < 64
                || l.width % 2 == 1
                || l.height % 2 == 1
                || !(1..=60).contains(&l.fps)
                || l.kbps < 30
            {
                bail!(
                    "studio: layer '{}' is not a sensible size/rate ({}x{}@{} {} kbit/s)",
                    l.rid,
                    l.width,
                    l.height,
                    l.fps,
                    l.kbps
                );
            }
        }
        for (role, spec) in [("camera", &self.camera), ("document camera", &self.document), ("screen", &self.screen)] {
            if spec.is_audio() {
                bail!("studio: the {role} cannot be the audio source '{spec}'");
            }
            crate::devices::check_video(role, spec)?;
        }
        if !self.microphone.is_audio() && !matches!(self.microphone, SourceSpec::TestPattern(_) | SourceSpec::None) {
            bail!("studio: the microphone '{}' is not an audio source", self.microphone);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_strings() {
        let l: LayerSpec = "h:1280x720@30:1500".parse().unwrap();
        assert_eq!(l, LayerSpec { rid: "h".into(), width: 1280, height: 720, fps: 30, kbps: 1500 });
        for bad in ["h:1280x720@30", "1280x720@30:1500", "h:1280@30:1500", "h:axb@30:1", "h:1x1@1:1:1"] {
            assert!(bad.parse::<LayerSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_catches_a_missing_camera_and_bad_layers() {
        let mut c = StudioConfig::test_sources("http://127.0.0.1:1", "demo", "t");
        assert!(c.validate().is_ok());
        c.camera = SourceSpec::V4l2("/dev/video-nope-42".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("camera device '/dev/video-nope-42' not found"), "{e}");
        assert!(e.contains("cameras found:"), "{e}");
        let mut c = StudioConfig::test_sources("http://127.0.0.1:1", "demo", "t");
        c.layers.reverse();
        assert!(c.validate().is_err());
        c.layers.clear();
        assert!(c.validate().is_err());
    }
}
