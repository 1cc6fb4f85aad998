//! Property tests of the pure decision types (proptest): random packet streams, estimates and
//! source changes, checked against the rules the modules state.
//!
//! - `Forwarder`: what a subscriber receives is one stream. Across source changes (publisher
//!   restarts, layer switches) and 16/32-bit wraparound, every first packet of a source goes
//!   out right after the last one sent, packets of one source keep their spacing in sequence
//!   number and timestamp, a retransmission maps where the original went, and video never
//!   changes source except at a keyframe.
//! - `BandwidthAllocator`: whatever the estimates, costs and caps, the level it keeps never
//!   needs more than the latest estimate by its own stay rule, except the lowest video level
//!   while `audio_only_after` has not passed; a pupil's cap is always respected.

use ardoise_sfu::{
    AllocatorConfig, AvailableVideo, BandwidthAllocator, Decision, Forwarder, LayerChoice, PacketIn, PupilCap,
    SourceKey,
};
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One step of a forwarder scenario.
#[derive(Debug, Clone)]
enum Step {
    /// The next packet of source `source`: `seq_gap` after its previous one (a gap is loss
    /// upstream), `ts_gap` ticks later, `dt_ms` after the previous step.
    Packet { source: usize, seq_gap: u64, ts_gap: u32, keyframe: bool, switch: bool, dt_ms: u64 },
    /// A retransmission of an earlier packet of the current source, `back` packets ago.
    Retransmit { back: usize },
    /// The publisher left: the next packet of any source rebases.
    Release,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..3usize, 1..4u64, 0..6000u32, any::<bool>(), any::<bool>(), 0..200u64).prop_map(
            |(source, seq_gap, ts_gap, keyframe, switch, dt_ms)| Step::Packet { source, seq_gap, ts_gap, keyframe, switch, dt_ms }
        ),
        1 => (1..20usize).prop_map(|back| Step::Retransmit { back }),
        1 => Just(Step::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_forwarder_makes_one_continuous_stream(
        video in any::<bool>(),
        first_out in any::<u16>(),
        // Sources start anywhere, close to the 16-bit and 32-bit wraps included.
        starts in proptest::collection::vec((prop_oneof![Just(65_500u64), 0..1u64 << 40], any::<u32>()), 3),
        steps in proptest::collection::vec(step(), 1..300),
    ) {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, video, first_out);
        let mut next: Vec<(u64, u32)> = starts.clone();
        let mut now = t0;
        // (source, incoming seq) → (outgoing seq, ts) of what was sent.
        let mut sent: HashMap<(usize, u64), (u64, u32)> = HashMap::new();
        let mut history: Vec<(usize, u64, u32, bool)> = Vec::new();
        let mut last_out: Option<(u64, u32)> = None;
        let mut current: Option<usize> = None;
        for s in steps {
            let (source, seq, ts, keyframe, switch) = match s {
                Step::Packet { source, seq_gap, ts_gap, keyframe, switch, dt_ms } => {
                    now += Duration::from_millis(dt_ms);
                    let (seq, ts) = next[source];
                    next[source] = (seq + seq_gap, ts.wrapping_add(ts_gap));
                    history.push((source, seq, ts, keyframe));
                    (source, seq, ts, keyframe, switch)
                }
                Step::Retransmit { back } => {
                    let Some(&(source, seq, ts, keyframe)) = history.iter().rev().nth(back) else { continue };
                    (source, seq, ts, keyframe, false)
                }
                Step::Release => {
                    f.release();
                    current = None;
                    continue;
                }
            };
            let p = PacketIn { source: SourceKey { publisher: 1, ssrc: source as u32 }, seq, ts, keyframe_start: keyframe, now };
            match f.decide(&p, switch) {
                Decision::Send { seq: out, ts: out_ts, switched } => {
                    if let Some(&(o, t)) = sent.get(&(source, seq)) && !switched {
                        prop_assert_eq!((o, t), (out, out_ts), "a retransmission goes where the original went");
                    }
                    if switched {
                        prop_assert!(!video || keyframe, "video changes source only at a keyframe");
                        match last_out {
                            None => prop_assert_eq!(out, u64::from(first_out)),
                            Some((l, lts)) => {
                                prop_assert_eq!(out, l + 1, "a new source goes on right after the last packet sent");
                                prop_assert!(out_ts != lts, "the timestamp moves on at a switch");
                            }
                        }
                        current = Some(source);
                        sent.clear();
                    } else {
                        prop_assert_eq!(current, Some(source), "only the current source is sent without a switch");
                        // Same spacing as the incoming stream, against the source's first packet.
                        let (&(_, in0), &(o0, t0)) = sent.iter().find(|((s, _), _)| *s == source).unwrap();
                        let (_, ts0) = history.iter().find(|h| h.0 == source && h.1 == in0).map(|h| (h.1, h.2)).unwrap();
                        prop_assert_eq!(out.wrapping_sub(o0), seq.wrapping_sub(in0));
                        prop_assert_eq!(out_ts.wrapping_sub(t0), ts.wrapping_sub(ts0));
                    }
                    sent.insert((source, seq), (out, out_ts));
                    if last_out.is_none_or(|(l, _)| out > l) {
                        last_out = Some((out, out_ts));
                    }
                }
                Decision::Drop(_) => {
                    if current == Some(source) {
                        let switch_point = sent.keys().map(|&(_, s)| s).min().unwrap();
                        prop_assert!(seq < switch_point, "a packet of the current source is dropped only before its switch point");
                    }
                }
            }
        }
    }
}

/// Available video with measured (non-zero) costs.
fn available() -> impl Strategy<Value = AvailableVideo> {
    (
        proptest::option::weighted(0.8, 50_000..400_000u64),
        proptest::option::weighted(0.7, 300_000..900_000u64),
        proptest::option::weighted(0.9, 900_000..3_000_000u64),
        proptest::option::weighted(0.3, 200_000..800_000u64),
    )
        .prop_map(|(l, m, h, floor)| AvailableVideo { class: [l, m, h], floor })
}

#[derive(Debug, Clone)]
enum Input {
    Estimate(u64),
    Cap(PupilCap),
    Video(AvailableVideo),
    Poll,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        10 => (0..5_000_000u64).prop_map(Input::Estimate),
        1 => prop_oneof![Just(PupilCap::Auto), Just(PupilCap::DataSaver), Just(PupilCap::AudioOnly)].prop_map(Input::Cap),
        2 => available().prop_map(Input::Video),
        3 => Just(Input::Poll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_allocator_never_keeps_more_than_the_estimate_carries(
        first in available(),
        audio_only_after_ms in prop_oneof![Just(0u64), 0..3000u64],
        inputs in proptest::collection::vec((input(), 0..1500u64), 1..200),
    ) {
        let config = AllocatorConfig { audio_only_after: Duration::from_millis(audio_only_after_ms), ..AllocatorConfig::default() };
        let mut a = BandwidthAllocator::new(config.clone());
        let mut video = first;
        let mut cap = PupilCap::Auto;
        let mut now = Instant::now();
        let mut estimate = None;
        for (i, dt) in inputs {
            now += Duration::from_millis(dt);
            let _ = match i {
                Input::Estimate(e) => { estimate = Some(e); a.on_estimate(now, e, &video) }
                Input::Cap(c) => { cap = c; a.set_cap(now, c, &video) }
                Input::Video(v) => { video = v; a.poll(now, &video) }
                Input::Poll => a.poll(now, &video),
            };
            let got = a.allocation();
            // The pupil's cap.
            match cap {
                PupilCap::AudioOnly => prop_assert!(got.class_video.is_none() && !got.floor_video, "{got:?}"),
                PupilCap::DataSaver => prop_assert!(!got.floor_video, "{got:?}"),
                PupilCap::Auto => {}
            }
            // Only what is published.
            let slot = got.class_video.map(|c| match c { LayerChoice::Low => 0, LayerChoice::Medium => 1, LayerChoice::High => 2 });
            if let Some(s) = slot {
                prop_assert!(video.class[s].is_some(), "a layer that is not published: {got:?} of {video:?}");
            }
            prop_assert!(!got.floor_video || video.floor.is_some(), "a floor camera that is not there");
            // What the kept level costs, by the stay rule, against the latest estimate.
            let Some(e) = estimate else { continue };
            let cost = slot.and_then(|s| video.class[s]).unwrap_or(0) + if got.floor_video { video.floor.unwrap_or(0) } else { 0 };
            if cost == 0 {
                continue;
            }
            // The lowest video level: the lowest class layer, or the floor camera alone.
            let lowest = video.class.iter().position(Option::is_some);
            let on_lowest = match lowest {
                Some(_) => slot == lowest && !got.floor_video,
                None => slot.is_none() && got.floor_video,
            };
            let stay = (config.down_margin * cost as f64 + config.audio_reserve_bps as f64).round() as u64;
            let stay = stay.max(config.audio_only_below_bps);
            prop_assert!(
                e >= stay || (on_lowest && audio_only_after_ms > 0),
                "kept {got:?} costing {cost} (needs {stay}) on an estimate of {e}"
            );
        }
    }
}
