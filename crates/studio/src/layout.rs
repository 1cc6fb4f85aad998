//! Layouts: where the camera, document camera and screen go in the mixed picture.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A mixed-picture layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// The camera, full frame.
    #[serde(rename = "camera")]
    Camera,
    /// The document camera, full frame.
    #[serde(rename = "document")]
    Document,
    /// The screen, full frame.
    #[serde(rename = "screen")]
    Screen,
    /// Document full frame, camera in a corner.
    #[serde(rename = "document+camera")]
    DocumentCamera,
    /// Screen full frame, camera in a corner.
    #[serde(rename = "screen+camera")]
    ScreenCamera,
    /// Document and camera side by side.
    #[serde(rename = "side-by-side")]
    SideBySide,
}

/// A rectangle in the output picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x: i32,
    /// Top.
    pub y: i32,
    /// Width.
    pub w: i32,
    /// Height.
    pub h: i32,
    /// Stacking order (higher is on top).
    pub z: u32,
}

/// Index of each input in [`Layout::rects`].
pub const CAMERA: usize = 0;
/// Document camera input.
pub const DOCUMENT: usize = 1;
/// Screen input.
pub const SCREEN: usize = 2;

impl Layout {
    /// Every layout.
    pub const ALL: [Layout; 6] = [
        Layout::Camera,
        Layout::Document,
        Layout::Screen,
        Layout::DocumentCamera,
        Layout::ScreenCamera,
        Layout::SideBySide,
    ];

    /// Whether the picture is mostly document or screen (text): the studio then favours
    /// resolution over frame rate ([`crate::StudioConfig::content_layers`]).
    pub fn shows_content(self) -> bool {
        !matches!(self, Layout::Camera)
    }

    /// Where camera, document and screen go (`None`: hidden) in a `w`×`h` picture.
    pub fn rects(self, w: i32, h: i32) -> [Option<Rect>; 3] {
        let full = Rect { x: 0, y: 0, w, h, z: 1 };
        // Picture in picture: a quarter-width inset, 2.5% margin, bottom right.
        let (pw, ph) = (w / 4, h / 4);
        let pip = Rect { x: w - pw - w / 40, y: h - ph - h / 40, w: pw, h: ph, z: 2 };
        match self {
            Layout::Camera => [Some(full), None, None],
            Layout::Document => [None, Some(full), None],
            Layout::Screen => [None, None, Some(full)],
            Layout::DocumentCamera => [Some(pip), Some(full), None],
            Layout::ScreenCamera => [Some(pip), None, Some(full)],
            Layout::SideBySide => {
                let half = h / 4;
                [
                    Some(Rect { x: w / 2, y: half, w: w / 2, h: h / 2, z: 1 }),
                    Some(Rect { x: 0, y: half, w: w / 2, h: h / 2, z: 1 }),
                    None,
                ]
            }
        }
    }

    /// The input whose frames pace the mix ([`crate::genlock`]): the teacher's camera
    /// whenever it is in the picture (a face and its voice must stay together and
    /// respond at once), else the document camera or the screen.
    pub fn lead_input(self) -> usize {
        match self {
            Layout::Document => DOCUMENT,
            Layout::Screen => SCREEN,
            Layout::Camera | Layout::DocumentCamera | Layout::ScreenCamera | Layout::SideBySide => CAMERA,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Camera => "camera",
            Layout::Document => "document",
            Layout::Screen => "screen",
            Layout::DocumentCamera => "document+camera",
            Layout::ScreenCamera => "screen+camera",
            Layout::SideBySide => "side-by-side",
        })
    }
}

impl FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layout::ALL.into_iter().find(|l| l.to_string() == s).ok_or_else(|| {
            format!("unknown layout '{s}' (camera, document, screen, document+camera, screen+camera, side-by-side)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_cover_the_picture_and_round_trip() {
        for l in Layout::ALL {
            assert_eq!(l.to_string().parse::<Layout>(), Ok(l));
            let rects = l.rects(1280, 720);
            assert!(rects.iter().any(|r| r.is_some()), "{l} shows something");
            for r in rects.into_iter().flatten() {
                assert!(r.x >= 0 && r.y >= 0 && r.x + r.w <= 1280 && r.y + r.h <= 720, "{l}: {r:?} inside");
            }
        }
        let [cam, doc, screen] = Layout::DocumentCamera.rects(1280, 720);
        assert_eq!(doc.unwrap().w, 1280);
        assert!(cam.unwrap().z > doc.unwrap().z, "the inset is on top");
        assert!(screen.is_none());
        // The centre of the picture shows the document in document+camera, the camera in camera.
        assert!(Layout::Camera.rects(1280, 720)[CAMERA].is_some());
        // The lead input is always in the picture.
        for l in Layout::ALL {
            assert!(l.rects(1280, 720)[l.lead_input()].is_some(), "{l}");
        }
        assert!("nope".parse::<Layout>().is_err());
    }
}
