//! Property tests of genlock's slot placement (proptest): inputs at their own rates, phases
//! and jitter, lead changes, against the rules `genlock.rs` states.
//!
//! - slots never go back on one input;
//! - the lead's phase stays within a quarter slot of `[min_phase, min_phase + T)`;
//! - a steady lead (no lead change, jitter under a quarter slot) puts each frame in the slot
//!   whose expected arrival is nearest: one new slot per frame, never a slot skipped or doubled;
//! - any other input's new slot is at most two slots past the arrival's own slot (one ahead for
//!   a burst), so the mixer never waits far ahead for it.

use ardoise_studio::genlock::Genlock;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Input {
    /// Frame interval, in output slots ×4 (2 = 60 fps against 30, 8 = 15 fps).
    interval_quarters: u64,
    phase_ns: u64,
    jitter_ns: Vec<u64>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop_oneof![Just(4u64), Just(8u64), Just(2u64), 3..9u64],
        0..40_000_000u64,
        proptest::collection::vec(0..8_000_000u64, 64),
    )
        .prop_map(|(interval_quarters, phase_ns, jitter_ns)| Input { interval_quarters, phase_ns, jitter_ns })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn slots_follow_the_rules_of_genlock(
        inputs in proptest::collection::vec(input(), 1..4),
        min_phase_frac in 0..100i64,
        lead_changes in proptest::collection::vec((0..200usize, proptest::option::of(0..4usize)), 0..3),
        frames in 20..150usize,
    ) {
        let n = inputs.len();
        let mut g = Genlock::new(30, 1, n, Some(0));
        let period = g.slot_duration(0) as i64;
        let min_phase = period * min_phase_frac / 100;
        g.set_min_phase(min_phase);
        // Every input's arrivals, merged in time order.
        let mut arrivals: Vec<(u64, usize)> = Vec::new();
        for (i, inp) in inputs.iter().enumerate() {
            let interval = period as u64 * inp.interval_quarters / 4;
            for k in 0..frames as u64 {
                let jitter = inp.jitter_ns[k as usize % inp.jitter_ns.len()];
                arrivals.push((1_000_000_000 + inp.phase_ns + k * interval + jitter, i));
            }
        }
        arrivals.sort();
        let mut last: Vec<Option<u64>> = vec![None; n];
        let mut lead_placed: Vec<(u64, u64)> = Vec::new();
        let mut steady = true;
        for (step, &(t, i)) in arrivals.iter().enumerate() {
            for &(at, lead) in &lead_changes {
                if at == step && lead.is_none_or(|l| l < n) && lead != g.lead() {
                    g.set_lead(lead);
                    steady = false;
                }
            }
            let phase_before = g.lead_phase();
            let k = g.place(i, t, t);
            prop_assert!(last[i].is_none_or(|l| k >= l), "input {i} went back from slot {:?} to {k}", last[i]);
            if Some(i) == g.lead() {
                let phase = g.lead_phase().unwrap();
                prop_assert!(
                    phase >= min_phase - period / 4 && phase < min_phase + period + period / 4,
                    "lead phase {phase} outside [{min_phase} - T/4, {min_phase} + 5T/4)"
                );
                prop_assert_eq!(g.lead_capture(k), Some(t), "the lead's capture is remembered for its slot");
                if steady && i == 0 && inputs[0].interval_quarters == 4 && inputs[0].jitter_ns.iter().all(|&j| j < period as u64 / 4) {
                    if let Some(&(_, prev)) = lead_placed.last() {
                        prop_assert_eq!(k, prev + 1, "a steady 30 fps lead takes one new slot per frame");
                    }
                    lead_placed.push((t, k));
                }
            } else if last[i] != Some(k) {
                let phase = phase_before.unwrap_or(0);
                let own = g.slot_at(((t as i64 - phase).max(0) as u64 / period as u64) * period as u64);
                prop_assert!(k <= own + 2, "input {i} at {t} put {k} slots ahead of its own slot {own}");
            }
            last[i] = Some(k);
        }
    }
}
