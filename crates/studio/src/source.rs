//! Capture sources as written in the configuration, and their GStreamer description.

use std::fmt;
use std::str::FromStr;

/// Where a video or audio input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `videotestsrc` with this pattern (`ball`, `smpte`, …) or `audiotestsrc` (`test`).
    TestPattern(String),
    /// `videotestsrc` with this pattern at its own frame rate (`test:smpte@15`), as a device
    /// runs: a 15 fps document camera, a 60 fps camera.
    TestPatternAt(String, u32),
    /// A solid colour test picture (`test:color=RRGGBB`), for layout tests.
    TestColor(u32),
    /// A tone of this frequency (`test:440`).
    TestTone(u32),
    /// A V4L2 camera by device path (`/dev/video0`) — raw or MJPEG.
    V4l2(String),
    /// The X11 screen (`x11`).
    X11,
    /// A PipeWire screen cast (`pipewire`), for Wayland.
    PipeWire,
    /// PulseAudio (`pulse` or `pulse:DEVICE`).
    Pulse(Option<String>),
    /// ALSA (`alsa:hw:0`).
    Alsa(String),
    /// Whatever `autoaudiosrc` finds (`auto`).
    AutoAudio,
    /// Not used (`none`): the input shows a slate.
    None,
}

impl FromStr for SourceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s {
            "test" => SourceSpec::TestPattern(String::new()),
            "x11" => SourceSpec::X11,
            "pipewire" => SourceSpec::PipeWire,
            "pulse" => SourceSpec::Pulse(None),
            "auto" => SourceSpec::AutoAudio,
            "none" => SourceSpec::None,
            _ if s.starts_with("test:color=") => {
                let hex = &s["test:color=".len()..];
                SourceSpec::TestColor(u32::from_str_radix(hex, 16).map_err(|_| format!("bad colour '{hex}' (RRGGBB)"))?)
            }
            _ if s.starts_with("test:") && s.contains('@') => {
                let (pattern, fps) = s[5..].split_once('@').unwrap_or_default();
                let fps = fps
                    .parse::<u32>()
                    .ok()
                    .filter(|f| (1..=120).contains(f))
                    .ok_or_else(|| format!("bad frame rate in '{s}' (1..=120)"))?;
                if pattern.is_empty() || !pattern.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(format!("bad test source '{s}'"));
                }
                SourceSpec::TestPatternAt(pattern.to_owned(), fps)
            }
            _ if s.starts_with("test:") => {
                let arg = &s[5..];
                match arg.parse::<u32>() {
                    Ok(f) if (20..=20_000).contains(&f) => SourceSpec::TestTone(f),
                    Ok(_) => return Err(format!("tone '{arg}' out of 20..=20000 Hz")),
                    Err(_) if arg.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !arg.is_empty() => {
                        SourceSpec::TestPattern(arg.to_owned())
                    }
                    Err(_) => return Err(format!("bad test source '{s}'")),
                }
            }
            _ if s.starts_with("/dev/") => SourceSpec::V4l2(s.to_owned()),
            _ if s.starts_with("v4l2:") => SourceSpec::V4l2(s[5..].to_owned()),
            _ if s.starts_with("pulse:") => SourceSpec::Pulse(Some(s[6..].to_owned())),
            _ if s.starts_with("alsa:") => SourceSpec::Alsa(s[5..].to_owned()),
            _ => {
                return Err(format!(
                    "unknown source '{s}' (test, test:PATTERN, test:PATTERN@FPS, test:color=RRGGBB, /dev/videoN, x11, pipewire, pulse, alsa:DEV, auto, none)"
                ));
            }
        })
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::TestPattern(p) if p.is_empty() => f.write_str("test"),
            SourceSpec::TestPattern(p) => write!(f, "test:{p}"),
            SourceSpec::TestPatternAt(p, fps) => write!(f, "test:{p}@{fps}"),
            SourceSpec::TestColor(c) => write!(f, "test:color={c:06x}"),
            SourceSpec::TestTone(t) => write!(f, "test:{t}"),
            SourceSpec::V4l2(d) => f.write_str(d),
            SourceSpec::X11 => f.write_str("x11"),
            SourceSpec::PipeWire => f.write_str("pipewire"),
            SourceSpec::Pulse(None) => f.write_str("pulse"),
            SourceSpec::Pulse(Some(d)) => write!(f, "pulse:{d}"),
            SourceSpec::Alsa(d) => write!(f, "alsa:{d}"),
            SourceSpec::AutoAudio => f.write_str("auto"),
            SourceSpec::None => f.write_str("none"),
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl SourceSpec {
    /// Whether this is an audio source.
    pub fn is_audio(&self) -> bool {
        matches!(self, SourceSpec::TestTone(_) | SourceSpec::Pulse(_) | SourceSpec::Alsa(_) | SourceSpec::AutoAudio)
    }

    /// GStreamer description of a video source producing raw video; `default_pattern` for `test`.
    pub fn video_launch(&self, default_pattern: &str) -> Result<String, String> {
        Ok(match self {
            SourceSpec::TestPattern(p) => {
                let p = if p.is_empty() { default_pattern } else { p };
                format!("videotestsrc is-live=true pattern={p}")
            }
            SourceSpec::TestPatternAt(p, fps) => {
                format!("videotestsrc is-live=true pattern={p} ! video/x-raw,framerate={fps}/1")
            }
            SourceSpec::TestColor(c) => {
                format!("videotestsrc is-live=true pattern=solid-color foreground-color={}", 0xff00_0000u32 | c)
            }
            SourceSpec::None => "videotestsrc is-live=true pattern=black".into(),
            SourceSpec::V4l2(dev) => format!("v4l2src device={} ! decodebin", quote(dev)),
            SourceSpec::X11 => "ximagesrc use-damage=false show-pointer=true".into(),
            SourceSpec::PipeWire => "pipewiresrc".into(),
            other => return Err(format!("'{other}' is not a video source")),
        })
    }

    /// Whether the video source produces whatever frame rate downstream asks (test sources).
    /// Devices (and `test:PATTERN@FPS`) run at their own rate: the pipeline only caps it at the
    /// mix's rate (`videorate drop-only`, which holds no frame).
    pub fn follows_requested_rate(&self) -> bool {
        matches!(self, SourceSpec::TestPattern(_) | SourceSpec::TestColor(_) | SourceSpec::None)
    }

    /// GStreamer description of an audio source.
    pub fn audio_launch(&self) -> Result<String, String> {
        Ok(match self {
            SourceSpec::TestPattern(_) => "audiotestsrc is-live=true wave=sine freq=440 volume=0.3".into(),
            SourceSpec::TestTone(f) => format!("audiotestsrc is-live=true wave=sine freq={f} volume=0.3"),
            SourceSpec::None => "audiotestsrc is-live=true wave=silence".into(),
            SourceSpec::Pulse(None) => "pulsesrc".into(),
            SourceSpec::Pulse(Some(d)) => format!("pulsesrc device={}", quote(d)),
            SourceSpec::Alsa(d) => format!("alsasrc device={}", quote(d)),
            SourceSpec::AutoAudio => "autoaudiosrc".into(),
            other => return Err(format!("'{other}' is not an audio source")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_describe() {
        let p = |s: &str| s.parse::<SourceSpec>().unwrap();
        assert_eq!(p("test"), SourceSpec::TestPattern(String::new()));
        assert_eq!(p("test:smpte").video_launch("ball").unwrap(), "videotestsrc is-live=true pattern=smpte");
        assert_eq!(p("test").video_launch("ball").unwrap(), "videotestsrc is-live=true pattern=ball");
        assert!(p("test:color=ff0000").video_launch("").unwrap().contains("foreground-color=4294901760"));
        assert_eq!(p("/dev/video3"), SourceSpec::V4l2("/dev/video3".into()));
        assert!(p("/dev/video3").video_launch("").unwrap().contains("device=\"/dev/video3\""));
        assert_eq!(p("test:880").audio_launch().unwrap(), "audiotestsrc is-live=true wave=sine freq=880 volume=0.3");
        assert!(p("x11").audio_launch().is_err());
        assert!(p("pulse").video_launch("").is_err());
        assert!("test:color=zz".parse::<SourceSpec>().is_err());
        assert!("rtsp://x".parse::<SourceSpec>().is_err());
        assert!("test:a b".parse::<SourceSpec>().is_err());
        assert_eq!(p("test:smpte@15"), SourceSpec::TestPatternAt("smpte".into(), 15));
        assert!(p("test:smpte@15").video_launch("").unwrap().contains("framerate=15/1"));
        assert!(!p("test:smpte@15").follows_requested_rate());
        assert!("test:smpte@0".parse::<SourceSpec>().is_err());
        assert!("test:@15".parse::<SourceSpec>().is_err());
        for s in ["test:color=00ff00", "test:ball@60", "pulse:mic", "alsa:hw:0", "x11", "none"] {
            assert_eq!(p(s).to_string(), s);
        }
    }
}
