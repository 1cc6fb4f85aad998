//! Mixer: the compositor's pads, the live layout, and the health of each video input.
//!
//! Every input (camera, document camera, screen) is a bin of its own (`input{i}`), with a
//! slate beneath it in the same rectangle ("Caméra indisponible"). When an input fails
//! (camera unplugged: an error on the bus from inside its bin), its pad is hidden so the slate
//! shows and the class goes on, and its stream is ended on the compositor (EOS) so that the
//! mix does not wait for it at every slot (measured: 86 ms capture-to-wire while a camera was
//! unplugged, 6 ms with the EOS); the bin is restarted every [`RETRY`] until frames flow again,
//! and then the input is shown again (with a keyframe, so pupils see it at once).
//!
//! The mixer also places every frame that reaches the compositor in an output slot
//! ([`Genlock`]), led by the layout's lead input while it delivers.

use crate::Layout;
use crate::genlock::Genlock;
use crate::layout::{CAMERA, DOCUMENT, SCREEN};
use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Time between two attempts to reopen a failed input.
pub const RETRY: Duration = Duration::from_secs(2);

/// What each input is called on its slate and in logs.
pub const INPUT_NAMES: [&str; 3] = ["camera", "document camera", "screen"];

/// The slate text of each input (the pages are French first).
pub const SLATE_TEXT: [&str; 3] = ["Caméra indisponible", "Caméra de documents indisponible", "Écran indisponible"];

/// Compositor pads, layout and input health.
pub struct Mixer {
    live_pads: [gst::Pad; 3],
    slate_pads: [gst::Pad; 3],
    bins: [gst::Element; 3],
    size: (i32, i32),
    layout: Mutex<Layout>,
    dead: [AtomicBool; 3],
    retry_at: Mutex<[Option<Instant>; 3]>,
    /// An input came back: the encoders should emit a keyframe.
    keyframe_wanted: AtomicBool,
    /// Slot placement of the compositor's six inputs (inputs, then slates).
    genlock: Mutex<Genlock>,
}

impl Mixer {
    /// Take the pads `sink_0..2` (inputs) and `sink_3..5` (slates) of `mix`, and the input bins.
    /// `fps` is the output frame rate.
    pub fn new(
        mix: &gst::Element,
        bins: [gst::Element; 3],
        size: (i32, i32),
        fps: u32,
        layout: Layout,
    ) -> Result<Mixer, String> {
        let pad = |i: usize| mix.static_pad(&format!("sink_{i}")).ok_or_else(|| format!("compositor pad sink_{i}"));
        let m = Mixer {
            live_pads: [pad(0)?, pad(1)?, pad(2)?],
            slate_pads: [pad(3)?, pad(4)?, pad(5)?],
            bins,
            size,
            layout: Mutex::new(layout),
            dead: Default::default(),
            retry_at: Mutex::new([None; 3]),
            keyframe_wanted: AtomicBool::new(false),
            genlock: Mutex::new(Genlock::new(fps, 1, 6, Some(layout.lead_input()))),
        };
        m.apply(layout);
        Ok(m)
    }

    /// The current layout.
    pub fn layout(&self) -> Layout {
        *self.layout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switch layout (pad rectangles; a failed input shows its slate instead).
    pub fn set_layout(&self, layout: Layout) {
        *self.layout.lock().unwrap_or_else(|e| e.into_inner()) = layout;
        self.apply(layout);
    }

    fn apply(&self, layout: Layout) {
        let rects = layout.rects(self.size.0, self.size.1);
        for i in [CAMERA, DOCUMENT, SCREEN] {
            let dead = self.dead[i].load(Ordering::Relaxed);
            for (pad, show, z_offset) in [(&self.slate_pads[i], dead, 0u32), (&self.live_pads[i], !dead, 1)] {
                match rects[i] {
                    Some(r) => {
                        pad.set_property("xpos", r.x);
                        pad.set_property("ypos", r.y);
                        pad.set_property("width", r.w);
                        pad.set_property("height", r.h);
                        pad.set_property("zorder", r.z * 2 + z_offset);
                        pad.set_property("alpha", if show { 1.0f64 } else { 0.0 });
                    }
                    None => pad.set_property("alpha", 0.0f64),
                }
            }
        }
        // The lead: the layout's, or while it is down any input still in the picture.
        let live = |i: usize| rects[i].is_some() && !self.dead[i].load(Ordering::Relaxed);
        let lead = Some(layout.lead_input())
            .filter(|&i| live(i))
            .or_else(|| [CAMERA, DOCUMENT, SCREEN].into_iter().find(|&i| live(i)));
        self.genlock.lock().unwrap_or_else(|e| e.into_inner()).set_lead(lead);
    }

    /// A frame of compositor input `pad` (0–2: inputs, 3–5: slates) arrived at `arrival`,
    /// captured at `capture` (running times, ns): the start and duration of its output slot.
    pub fn place(&self, pad: usize, arrival: u64, capture: u64) -> (u64, u64) {
        let mut g = self.genlock.lock().unwrap_or_else(|e| e.into_inner());
        let k = g.place(pad, arrival, capture);
        (g.slot_start(k), g.slot_duration(k))
    }

    /// The compositor produced the slot starting at `start`: when its lead frame was
    /// captured, if known.
    pub fn output(&self, start: u64) -> Option<u64> {
        let mut g = self.genlock.lock().unwrap_or_else(|e| e.into_inner());
        let k = g.slot_at(start);
        g.observe_output(k);
        g.lead_capture(k)
    }

    /// The compositor's inputs report `latency` ns: the timeout it should add so that a slot
    /// goes out `margin` after its lead frame is due (`None`: no lead yet, keep it).
    pub fn timeout_for(&self, latency: u64, margin: u64) -> Option<u64> {
        let mut g = self.genlock.lock().unwrap_or_else(|e| e.into_inner());
        g.set_min_phase(latency as i64 - margin as i64);
        g.lead_phase().map(|phase| (phase + margin as i64 - latency as i64).max(0) as u64)
    }

    /// Lead frames that came after their slot had gone out.
    pub fn late_lead_frames(&self) -> u64 {
        self.genlock.lock().unwrap_or_else(|e| e.into_inner()).late_lead_frames()
    }

    /// Which input an element belongs to (its `input{i}` ancestor), if any.
    pub fn input_of(&self, element: &gst::Object) -> Option<usize> {
        let mut cur = Some(element.clone());
        while let Some(o) = cur {
            if let Some(i) = self.bins.iter().position(|b| b.upcast_ref::<gst::Object>() == &o) {
                return Some(i);
            }
            cur = o.parent();
        }
        None
    }

    /// Input `i` failed: show its slate, retry later. Returns false if it was already down.
    pub fn input_failed(&self, i: usize, why: &str) -> bool {
        let mut retry = self.retry_at.lock().unwrap_or_else(|e| e.into_inner());
        retry[i] = Some(Instant::now() + RETRY);
        if self.dead[i].swap(true, Ordering::Relaxed) {
            return false;
        }
        warn!(input = INPUT_NAMES[i], "input unavailable ({why}); showing the slate, retrying every {RETRY:?}");
        drop(retry);
        // End its stream on the compositor, which otherwise waits for it at every slot.
        self.live_pads[i].send_event(gst::event::Eos::new());
        self.apply(self.layout());
        self.keyframe_wanted.store(true, Ordering::Relaxed);
        true
    }

    /// A frame came out of input `i`: if it was down, show it again.
    pub fn frame_from(&self, i: usize) {
        if self.dead[i].load(Ordering::Relaxed) && self.dead[i].swap(false, Ordering::Relaxed) {
            self.retry_at.lock().unwrap_or_else(|e| e.into_inner())[i] = None;
            info!(input = INPUT_NAMES[i], "input is back");
            self.apply(self.layout());
            self.keyframe_wanted.store(true, Ordering::Relaxed);
        }
    }

    /// Restart the bins of failed inputs whose retry time has come.
    pub fn retry_due(&self, now: Instant) {
        for i in 0..3 {
            let due = {
                let mut retry = self.retry_at.lock().unwrap_or_else(|e| e.into_inner());
                match retry[i] {
                    Some(t) if t <= now && self.dead[i].load(Ordering::Relaxed) => {
                        retry[i] = Some(now + RETRY);
                        true
                    }
                    _ => false,
                }
            };
            if due {
                let bin = &self.bins[i];
                let _ = bin.set_state(gst::State::Null);
                if let Err(e) = bin.sync_state_with_parent() {
                    info!(input = INPUT_NAMES[i], "still unavailable: {e}");
                }
            }
        }
    }

    /// Stop input `i` as if its device had been unplugged (rehearsals and tests): the same
    /// path as a real failure follows.
    pub fn unplug(&self, i: usize) {
        let _ = self.bins[i].set_state(gst::State::Null);
        self.input_failed(i, "unplugged");
    }

    /// Whether each input delivers (camera, document camera, screen).
    pub fn health(&self) -> [bool; 3] {
        [0, 1, 2].map(|i| !self.dead[i].load(Ordering::Relaxed))
    }

    /// Take the "an input came back, send a keyframe" flag.
    pub fn take_keyframe_wanted(&self) -> bool {
        self.keyframe_wanted.swap(false, Ordering::Relaxed)
    }
}
