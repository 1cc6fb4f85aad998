//! Genlock: lines every input frame up with the mixer's output slots, paced by the layout's
//! lead input, so that the mix goes out the moment the lead frame arrives.
//!
//! `compositor` produces output slot `k` (running time `[k·T, (k+1)·T)`) once every input has
//! a frame covering it. Cameras, screen grabs and test sources each run on their own phase
//! (their first frame's running time), so with their own timestamps the mix waits, every
//! frame, for the input whose phase comes last: measured, 7 to 36 ms depending on how the
//! inputs happened to start, which made capture-to-wire latency vary by ±8 ms from run to run.
//!
//! Instead each frame is *placed* in a slot by its arrival time:
//! - the lead input (the teacher's camera when it is in the picture) takes the slot whose
//!   expected arrival (`k·T + phase`) is nearest, and `phase` follows its arrivals: the slot
//!   is complete when the lead frame arrives;
//! - every other input takes the first slot whose lead frame has not arrived yet: it is
//!   already there when the lead frame comes. A content input that delivers two frames at
//!   once (a `videorate` catching up) may look one slot ahead, never more;
//! - the lead is placed at least [`Genlock::set_min_phase`] into its slots, and the mixer
//!   sets its timeout a small margin after the lead's phase: a slot that misses a slower
//!   input's frame (a 15 fps document camera) still goes out right after the lead's frame.
//!
//! Pure and clock-free: arrival times are inputs, in nanoseconds of running time.

use std::collections::VecDeque;

/// How far the lead's phase moves towards each new arrival (1/8: a jittery camera does not
/// shake the slots, a drifting one is followed).
const PHASE_GAIN: i64 = 8;

/// How many placed lead frames are remembered for [`Genlock::lead_capture`].
const REMEMBERED: usize = 16;

/// Slot placement for the mixer's inputs.
#[derive(Debug, Clone)]
pub struct Genlock {
    fps_n: u64,
    fps_d: u64,
    lead: Option<usize>,
    /// Offset of the lead's arrivals from their slot's start, ns (`None` until its first
    /// frame): within [min_phase - T/4, min_phase + 5T/4).
    phase: Option<i64>,
    /// The least phase wanted, ns: the mixer's timeout for a slot comes no sooner than the
    /// inputs' latency after its start, so the lead is placed late enough in its slot for
    /// that timeout to follow its arrival closely (see [`Genlock::set_min_phase`]).
    min_phase: i64,
    /// The last slot the mixer produced, and lead frames that came after their slot.
    last_output: Option<u64>,
    late: u64,
    /// Last slot given to each input (slots never go back on one input), and when its frame
    /// arrived.
    last: Vec<Option<u64>>,
    last_arrival: Vec<Option<i64>>,
    /// (slot, capture running time) of the last lead frames.
    captures: VecDeque<(u64, u64)>,
}

impl Genlock {
    /// Output rate `fps_n/fps_d`, for `inputs` compositor inputs, led by `lead`.
    pub fn new(fps_n: u32, fps_d: u32, inputs: usize, lead: Option<usize>) -> Genlock {
        Genlock {
            fps_n: u64::from(fps_n.max(1)),
            fps_d: u64::from(fps_d.max(1)),
            lead,
            phase: None,
            min_phase: 0,
            last_output: None,
            late: 0,
            last: vec![None; inputs],
            last_arrival: vec![None; inputs],
            captures: VecDeque::with_capacity(REMEMBERED),
        }
    }

    /// The input whose frames complete each slot (`None`: slots complete on the mixer's
    /// timeout only, e.g. while the lead input is unplugged).
    pub fn lead(&self) -> Option<usize> {
        self.lead
    }

    /// Change the lead input (layout switch, an input failing or coming back).
    pub fn set_lead(&mut self, lead: Option<usize>) {
        if lead != self.lead {
            self.lead = lead;
            self.phase = None;
        }
    }

    /// Place the lead at least `min_phase` ns into its slots. The mixer's timeout for a slot
    /// (the inputs' latency plus its own) then needs only a small margin beyond the lead's
    /// phase, so that a slot missing a slower input's frame goes out right after the lead's
    /// frame instead of up to two slots later.
    pub fn set_min_phase(&mut self, min_phase: i64) {
        self.min_phase = min_phase;
    }

    /// The lead's phase in its slots, ns, once known.
    pub fn lead_phase(&self) -> Option<i64> {
        self.phase.filter(|_| self.lead.is_some())
    }

    /// The mixer produced slot `k`.
    pub fn observe_output(&mut self, k: u64) {
        self.last_output = Some(self.last_output.map_or(k, |l| l.max(k)));
    }

    /// Lead frames that arrived after their slot had gone out (the timeout margin is too short
    /// for the lead's jitter when this grows).
    pub fn late_lead_frames(&self) -> u64 {
        self.late
    }

    /// Start of slot `k`, ns (rounded as `compositor` rounds its output timestamps).
    pub fn slot_start(&self, k: u64) -> u64 {
        ((u128::from(k) * 1_000_000_000 * u128::from(self.fps_d) + u128::from(self.fps_n) / 2) / u128::from(self.fps_n))
            as u64
    }

    /// Duration of slot `k`, ns.
    pub fn slot_duration(&self, k: u64) -> u64 {
        self.slot_start(k + 1) - self.slot_start(k)
    }

    /// The slot that starts at `start` (nearest), for an output timestamp.
    pub fn slot_at(&self, start: u64) -> u64 {
        let second = 1_000_000_000 * u128::from(self.fps_d);
        ((u128::from(start) * u128::from(self.fps_n) + second / 2) / second) as u64
    }

    fn period(&self) -> u128 {
        1_000_000_000 * u128::from(self.fps_d) / u128::from(self.fps_n)
    }

    /// Index of the slot whose start is the last at or before `t` (`t ≥ 0`).
    fn floor_slot(&self, t: i64) -> u64 {
        let t = t.max(0) as u128;
        let mut k = (t * u128::from(self.fps_n) / (1_000_000_000 * u128::from(self.fps_d))) as u64;
        // Correct the rounding of slot starts.
        while k > 0 && u128::from(self.slot_start(k)) > t {
            k -= 1;
        }
        while u128::from(self.slot_start(k + 1)) <= t {
            k += 1;
        }
        k
    }

    /// A frame of `input` arrived at `arrival` (running time, ns), captured at `capture`:
    /// the slot it goes in.
    pub fn place(&mut self, input: usize, arrival: u64, capture: u64) -> u64 {
        let arrival = arrival as i64;
        let period = self.period() as i64;
        let last = self.last.get(input).copied().flatten();
        let slot = if Some(input) == self.lead {
            let phase = match self.phase {
                Some(p) => p,
                None => {
                    // Offset into its slot, moved by whole slots to at least `min_phase`.
                    let offset = arrival - self.slot_start(self.floor_slot(arrival)) as i64;
                    let behind = (self.min_phase - offset).max(0);
                    offset + (behind + period - 1) / period * period
                }
            };
            // The slot whose expected arrival is nearest.
            let k = self.floor_slot(arrival - phase + period / 2);
            let error = arrival - (self.slot_start(k) as i64 + phase);
            // Keep the phase within a quarter slot of [min_phase, min_phase + T): moving it by
            // a whole slot moves the lead's slots by one (a slot doubled or skipped), so do it
            // only a quarter slot past either end, where jitter cannot bring it back and forth.
            let mut phase = phase + error / PHASE_GAIN;
            if phase < self.min_phase - period / 4 {
                phase += period;
            } else if phase >= self.min_phase + period + period / 4 {
                phase -= period;
            }
            self.phase = Some(phase);
            let k = last.map_or(k, |l| k.max(l));
            if self.last_output.is_some_and(|o| k <= o) {
                self.late += 1;
            }
            if self.captures.len() == REMEMBERED {
                self.captures.pop_front();
            }
            self.captures.push_back((k, capture));
            k
        } else {
            // The first slot whose lead frame is still to come.
            let phase = self.phase.unwrap_or(0);
            let after = self.floor_slot(arrival - phase);
            let want = if self.slot_start(after) as i64 + phase >= arrival { after } else { after + 1 };
            // Two frames at once (a burst): the second looks one slot ahead. Otherwise a frame
            // for a slot that already has one replaces it.
            let burst = self.last_arrival.get(input).copied().flatten().is_some_and(|t| arrival - t < period / 2);
            match last {
                Some(l) if l >= want && burst => (l + 1).min(want + 1).max(l),
                Some(l) => want.max(l),
                None => want,
            }
        };
        if let Some(l) = self.last.get_mut(input) {
            *l = Some(slot);
        }
        if let Some(t) = self.last_arrival.get_mut(input) {
            *t = Some(arrival);
        }
        slot
    }

    /// When the lead frame placed in slot `k` was captured (running time, ns), if one was.
    pub fn lead_capture(&self, k: u64) -> Option<u64> {
        self.captures.iter().rev().find(|(s, _)| *s == k).map(|(_, c)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const T: u64 = 33_333_333;

    /// Frames of one input at `fps` from `phase`, as (arrival, input).
    fn frames(input: usize, phase: u64, period: u64, n: u64) -> Vec<(u64, usize)> {
        (0..n).map(|i| (phase + i * period, input)).collect()
    }

    /// Replay arrivals (sorted by time), returning each input's slots.
    fn replay(g: &mut Genlock, mut arrivals: Vec<(u64, usize)>) -> Vec<Vec<(u64, u64)>> {
        arrivals.sort();
        let mut out = vec![Vec::new(); g.last.len()];
        for (t, i) in arrivals {
            let k = g.place(i, t, t);
            out[i].push((t, k));
        }
        out
    }

    #[test]
    fn slots_match_the_compositor_grid() {
        let g = Genlock::new(30, 1, 1, None);
        assert_eq!(g.slot_start(0), 0);
        assert_eq!(g.slot_start(1), 33_333_333);
        assert_eq!(g.slot_start(2), 66_666_667);
        assert_eq!(g.slot_start(3), 100_000_000);
        assert_eq!(g.slot_at(66_666_667), 2);
        assert_eq!((g.slot_at(66_666_667 + 16_000_000), g.slot_at(66_666_667 + 17_000_000)), (2, 3), "nearest");
        assert_eq!(g.slot_duration(1), 33_333_334);
        for k in [0, 1, 2, 1000, 123_456] {
            assert_eq!(g.floor_slot(g.slot_start(k) as i64), k);
            assert_eq!(g.floor_slot(g.slot_start(k + 1) as i64 - 1), k);
        }
    }

    #[test]
    fn each_slot_is_complete_when_its_lead_frame_arrives() {
        // Lead (camera) at phase 7 ms, document at 26 ms, screen at 8.7 ms, slates at others:
        // the phases measured in one run; with the lead placed from 0 or from 61.7 ms into
        // its slots (the mixer's inputs reporting 66.7 ms of latency).
        for min_phase in [0, 61_700_000] {
            let mut g = Genlock::new(30, 1, 4, Some(0));
            g.set_min_phase(min_phase);
            let mut arrivals = frames(0, 7 * MS, T, 90);
            arrivals.extend(frames(1, 26 * MS, T, 90));
            arrivals.extend(frames(2, 8_740_000, T, 90));
            arrivals.extend(frames(3, 7_100_000, T, 90));
            let out = replay(&mut g, arrivals);
            // The lead takes consecutive slots (after the first frames, which share slot 0 when
            // placed 61.7 ms or more into slots that cannot start before 0).
            for w in out[0][3..].windows(2) {
                assert_eq!(w[1].1, w[0].1 + 1);
            }
            // Every slot the lead completes has a frame of every other input already there: the
            // latest frame of input i placed in slot k arrived before the lead's frame of slot k.
            for &(lead_at, k) in &out[0][6..] {
                for other in &out[1..] {
                    let (at, _) = other.iter().rev().find(|(_, s)| *s == k).expect("a frame for the slot");
                    assert!(*at <= lead_at, "slot {k}: input frame at {at} after the lead at {lead_at}");
                    // …and it is the freshest one: less than a frame interval old.
                    assert!(lead_at - at < T, "slot {k}: input frame {} ms old", (lead_at - at) / MS);
                }
            }
            let phase = g.lead_phase().unwrap();
            assert!((min_phase..min_phase + T as i64).contains(&phase), "phase {phase} from {min_phase}");
            // Lead frames arrive `phase` after their slot's start.
            for &(at, k) in &out[0][6..] {
                assert!((at as i64 - g.slot_start(k) as i64 - phase).abs() < MS as i64);
            }
        }
    }

    #[test]
    fn lead_frames_after_their_slot_went_out_are_counted() {
        let mut g = Genlock::new(30, 1, 2, Some(0));
        assert_eq!(g.place(0, 5 * MS, 5 * MS), 0);
        g.observe_output(0);
        assert_eq!(g.late_lead_frames(), 0);
        assert_eq!(g.place(0, T + 5 * MS, 0), 1);
        g.observe_output(2);
        assert_eq!(g.place(0, 2 * T + 5 * MS, 0), 2, "slot 2 went out before its lead frame");
        assert_eq!(g.late_lead_frames(), 1);
    }

    #[test]
    fn the_lead_follows_jitter_and_drift_without_skipping_slots() {
        // A camera whose clock runs 0.1% fast or slow, with up to 6 ms of jitter, for 60 s,
        // starting late or early in a slot (the phase then drifts across a slot boundary).
        for (rate, start) in [(999u64, 31 * MS), (1001, 31 * MS), (999, MS / 2), (1001, MS / 2), (1000, 0)] {
            let mut g = Genlock::new(30, 1, 2, Some(0));
            let mut t = start;
            let mut seed = 7u64;
            let mut last = None;
            let mut irregular = 0;
            for _ in 0..1800 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let jitter = (seed >> 33) % (6 * MS);
                let k = g.place(0, t + jitter, t);
                if let Some(l) = last {
                    assert!(k >= l, "slots never go back");
                    if k != l + 1 {
                        irregular += 1;
                    }
                }
                last = Some(k);
                t += T * rate / 1000;
            }
            // 0.1% off over 1800 frames is ~1.8 frames more (or fewer) than slots.
            assert!(irregular <= 2, "rate {rate}‰, start {start}: {irregular} irregular slots");
            let phase = g.phase.unwrap();
            assert!((-(T as i64) / 4..(T as i64) * 5 / 4).contains(&phase), "phase {phase}");
        }
    }

    #[test]
    fn a_catching_up_input_looks_one_slot_ahead_at_most() {
        let mut g = Genlock::new(30, 1, 2, Some(0));
        let mut arrivals = frames(0, 5 * MS, T, 60);
        // A 15 fps document camera behind `videorate`: two frames at once every two slots.
        for i in 0..30 {
            let t = 20 * MS + i * 2 * T;
            arrivals.push((t, 1));
            arrivals.push((t + 1000, 1));
        }
        let out = replay(&mut g, arrivals);
        let slots: Vec<u64> = out[1].iter().map(|(_, k)| *k).collect();
        for w in slots.windows(2) {
            assert_eq!(w[1], w[0] + 1, "every slot gets one document frame: {slots:?}");
        }
        // A 60 fps screen: never runs ahead by more than one slot.
        let mut g = Genlock::new(30, 1, 2, Some(0));
        let mut arrivals = frames(0, 5 * MS, T, 60);
        arrivals.extend(frames(1, MS, T / 2, 120));
        let out = replay(&mut g, arrivals);
        for (t, k) in &out[1] {
            let want = g.floor_slot(*t as i64) + 1;
            assert!(*k <= want + 1, "frame at {t} placed in {k}, want {want}");
        }
    }

    #[test]
    fn a_new_lead_takes_over_and_captures_are_remembered() {
        let mut g = Genlock::new(30, 1, 2, Some(0));
        let k = g.place(0, 10 * MS, 9 * MS);
        assert_eq!(k, 0);
        assert_eq!(g.lead_capture(0), Some(9 * MS));
        assert_eq!(g.lead_capture(1), None);
        // The document becomes the lead: its own phase (20 ms) now completes the slots.
        g.set_lead(Some(1));
        assert_eq!(g.lead(), Some(1));
        assert_eq!(g.place(1, T + 20 * MS, T + 19 * MS), 1);
        assert_eq!(g.place(0, T + 10 * MS + T, 0), 2, "the camera now comes before the lead");
        assert_eq!(g.place(1, 2 * T + 20 * MS, 0), 2);
        // No lead: every input takes the next slot, completed by the mixer's timeout.
        g.set_lead(None);
        assert_eq!(g.place(1, 4 * T - MS, 0), 4);
    }
}
