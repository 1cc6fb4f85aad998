//! Per-pupil adaptation in simulated time, with str0m's real send-side estimator fed by the
//! pupil's TWCC feedback and a network emulator (`str0m-netem`) on the server → pupil link:
//! a teacher sends three simulcast layers (120 kbit/s, 400 kbit/s, 1 Mbit/s)
//! and Opus; the pupil's link changes; the room's decisions and their timing are asserted,
//! and the teacher's voice must keep flowing.

use ardoise_proto::{ClassId, ParticipantId};
use ardoise_sfu::sim::{Datagram, SimClient, to_room};
use ardoise_sfu::{Feed, LayerChoice, PupilCap, Room, SfuConfig, VideoChoice};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::rtp::RtpWrite;
use str0m_netem::{Bitrate, DataSize, Input as NIn, Netem, NetemConfig, Output as NOut, Probability, RandomLoss};

/// (rid, bytes per frame, frames per second): 120 kbit/s, 400 kbit/s, 1 Mbit/s. (On a 2 Mbit/s
/// emulated link str0m's delay-based estimate settles near 1.5 Mbit/s, so the top layer must
/// cost clearly less to fit with headroom; the studio's 1.5 Mbit/s 720p needs a wider link.)
const LAYERS: [(&str, usize, u32); 3] = [("l", 1000, 15), ("m", 1667, 30), ("h", 4167, 30)];
const PACKET: usize = 1100;
const AUDIO_TAG: u32 = 1 << 31;
/// A video packet's id carries its layer's index from this bit on (its frame number below).
const LAYER_SHIFT: u32 = 28;

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// What the pupil's link looks like over time.
struct Phase {
    from_ms: u64,
    link: NetemConfig,
}

/// How the pupil's player gives the server its feedback.
#[derive(Clone, Copy, PartialEq)]
enum Player {
    /// A browser: transport-cc feedback (the server's send-side estimate).
    Browser,
    /// Receiver reports only (many non-browser WHEP players).
    ReportsOnly,
    /// No transport-cc, but REMB once a second with this many kbit/s per phase (a player with
    /// a receive-side estimator, which converges on what its link carries).
    Remb(&'static [u64]),
}

fn capped(kbps: u64) -> NetemConfig {
    // A home router's queue: about 250 ms at the capped rate.
    NetemConfig::new().link(Bitrate::kbps(kbps), DataSize::bytes((kbps * 1000 / 8 / 4) as _)).seed(7)
}

/// One run: the layer the room chose for the pupil every 100 ms, and the teacher's audio
/// packets sent / received per second.
struct Run {
    layers: Vec<(u64, String)>,
    estimates: Vec<(u64, u64)>,
    audio_sent: Vec<u32>,
    audio_got: HashSet<u32>,
    video_got: HashSet<u32>,
    switches: u64,
}

impl Run {
    /// When the layer first became `want` at or after `from_ms`, and stayed until `until_ms`.
    fn settled(&self, want: &str, from_ms: u64, until_ms: u64) -> Option<u64> {
        let window: Vec<_> = self.layers.iter().filter(|(t, _)| *t >= from_ms && *t < until_ms).collect();
        let first = window.iter().position(|(_, l)| l == want)?;
        window[first..].iter().all(|(_, l)| l == want).then(|| window[first].0)
    }

    /// When the teacher sent the newest frame of layer `index` that the pupil received
    /// among those sent in [from, until) ms.
    fn last_frame_of(&self, index: u32, from_ms: u64, until_ms: u64) -> Option<u64> {
        self.video_got
            .iter()
            .filter(|id| *id >> LAYER_SHIFT == index)
            .map(|id| (id & ((1 << LAYER_SHIFT) - 1)) as u64 * 1000 / 30)
            .filter(|ms| (from_ms..until_ms).contains(ms))
            .max()
    }

    /// Fraction of the teacher's audio packets sent in [from, until) ms that arrived.
    fn audio_delivered(&self, from_ms: u64, until_ms: u64) -> f64 {
        let sent: Vec<u32> = self
            .audio_sent
            .iter()
            .copied()
            .filter(|id| (from_ms..until_ms).contains(&((id & !AUDIO_TAG) as u64 * 20)))
            .collect();
        sent.iter().filter(|id| self.audio_got.contains(id)).count() as f64 / sent.len().max(1) as f64
    }
}

fn simulate(phases: &[Phase], end_ms: u64, adaptive: bool) -> Run {
    simulate_player(phases, end_ms, adaptive, Player::Browser)
}

/// A pupil's offer as a player without transport-cc feedback makes it (many non-browser
/// WHEP players): no transport-wide sequence numbers, no `transport-cc` feedback.
fn without_transport_cc(offer: &str) -> String {
    offer
        .split("\r\n")
        .filter(|l| !l.contains("transport-wide-cc") && !l.ends_with(" transport-cc"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn simulate_player(phases: &[Phase], end_ms: u64, adaptive: bool, player: Player) -> Run {
    let t0 = Instant::now();
    let server = addr(5000);
    let mut room = Room::new(ClassId("sim".into()), SfuConfig { candidates: vec![server], ..Default::default() });
    let rids: Vec<&str> = LAYERS.iter().map(|l| l.0).collect();
    let send = Direction::SendOnly;
    let mut teacher = SimClient::negotiate_simulcast(
        t0,
        addr(6000),
        &[(MediaKind::Audio, send), (MediaKind::Video, send)],
        &rids,
        |sdp| room.add_publisher(t0, ParticipantId(1), sdp).unwrap(),
    );
    let recv = Direction::RecvOnly;
    let choice = if adaptive {
        VideoChoice::Adaptive { cap: PupilCap::Auto, start_bps: None }
    } else {
        VideoChoice::Fixed(LayerChoice::High)
    };
    let mut pupil =
        SimClient::negotiate(t0, addr(7000), &[(MediaKind::Audio, recv), (MediaKind::Video, recv)], |sdp| {
            let offer = if player == Player::Browser { sdp.to_owned() } else { without_transport_cc(sdp) };
            room.add_subscriber_to(t0, ParticipantId(2), &offer, Some(choice), Feed::Class).unwrap()
        });
    let mut down: Netem<Datagram> = Netem::new(phases[0].link);
    let mut phase = 0;

    let vp8 = teacher.rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).unwrap().pt();
    let opus = teacher.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();
    let (amid, vmid) = teacher.mids;
    let mut run = Run {
        layers: vec![],
        estimates: vec![],
        audio_sent: vec![],
        audio_got: HashSet::new(),
        video_got: HashSet::new(),
        switches: 0,
    };
    let mut now = t0;
    let (mut next_frame, mut next_audio, mut next_sample, mut next_remb) = (t0, t0, t0, t0);
    let mut frame = 0u32;
    let mut key_due: Option<Instant> = None;
    let mut seqs = [1u64; 3];
    let mut aseq = 1u64;
    let end = t0 + Duration::from_millis(end_ms);
    while now < end {
        let ms = (now - t0).as_millis() as u64;
        if phase + 1 < phases.len() && ms >= phases[phase + 1].from_ms {
            phase += 1;
            down.set_config(phases[phase].link);
        }
        // The teacher: 30 fps (the low layer every other frame), Opus every 20 ms.
        if teacher.connected && now >= next_frame {
            // A keyframe every 2 s, as the studio's encoder sends, and 200 ms after a request
            // (the encoder's and the school uplink's delay).
            if std::mem::take(&mut teacher.keyframe_wanted) {
                key_due = key_due.or(Some(now + Duration::from_millis(200)));
            }
            let requested = key_due.is_some_and(|t| now >= t);
            if requested {
                key_due = None;
            }
            let key = frame.is_multiple_of(60) || requested;
            for (i, (rid, bytes, fps)) in LAYERS.iter().enumerate() {
                if *fps == 15 && frame % 2 == 1 && !key {
                    continue;
                }
                let n = bytes.div_ceil(PACKET);
                for k in 0..n {
                    let mut payload = vec![0u8; PACKET.min(*bytes - k * PACKET)];
                    payload[0] = if k == 0 { 0x10 } else { 0x00 };
                    payload[1] = if key { 0x00 } else { 0x01 };
                    // The id: the layer's index above the frame number.
                    payload[2..6].copy_from_slice(&(frame | (i as u32) << LAYER_SHIFT).to_be_bytes());
                    let mut api = teacher.rtc.direct_api();
                    let tx = api.stream_tx_by_mid(vmid, Some((*rid).into())).expect("simulcast send stream");
                    tx.write_rtp(
                        RtpWrite::new(vp8, seqs[i].into(), frame * 3000, now, payload)
                            .marker(k == n - 1)
                            .nackable(true),
                    );
                    seqs[i] += 1;
                }
            }
            frame += 1;
            next_frame += Duration::from_micros(33_333);
            teacher.drain(now);
        }
        if teacher.connected && now >= next_audio {
            let id = AUDIO_TAG | aseq as u32;
            let mut payload = vec![0u8; 80];
            payload[2..6].copy_from_slice(&id.to_be_bytes());
            let mut api = teacher.rtc.direct_api();
            api.stream_tx_by_mid(amid, None).unwrap().write_rtp(RtpWrite::new(
                opus,
                aseq.into(),
                aseq as u32 * 960,
                now,
                payload,
            ));
            run.audio_sent.push(id);
            aseq += 1;
            next_audio += Duration::from_millis(20);
            teacher.drain(now);
        }

        if let Player::Remb(kbps) = player
            && pupil.connected
            && now >= next_remb
        {
            let mid = pupil.mids.1;
            if let Some(rx) = pupil.rtc.direct_api().stream_rx_by_mid(mid, None) {
                rx.request_remb(str0m::bwe::Bitrate::kbps(kbps[phase]));
            }
            next_remb += Duration::from_secs(1);
            pupil.drain(now);
        }

        // Teacher ↔ room: a perfect link. Room → pupil: the emulated one; pupil → room: perfect.
        for c in [&mut teacher, &mut pupil] {
            c.tick(now);
            for d in std::mem::take(&mut c.outbox) {
                to_room(&mut room, now, &d);
            }
        }
        if room.poll_timeout().is_some_and(|t| t <= now) {
            room.handle_timeout(now);
        }
        for t in room.take_transmits() {
            let d = Datagram { from: t.source, to: t.destination, data: t.contents.to_vec() };
            if t.destination == teacher.addr {
                teacher.receive(now, &d);
            } else {
                down.handle_input(NIn::Packet(now, d));
            }
        }
        down.handle_input(NIn::Timeout(now));
        while let Some(NOut::Packet(d)) = down.poll_output() {
            pupil.receive(now, &d);
        }
        if now >= next_sample {
            let st = room.participant_stats().into_iter().find(|p| p.id == 2).expect("the pupil");
            run.layers.push((ms, st.layer.clone().unwrap_or_else(|| "high".into())));
            run.switches = st.switches;
            run.estimates.push((ms, st.estimate_bps.unwrap_or(0)));
            next_sample += Duration::from_millis(100);
        }

        let mut next =
            (now + Duration::from_millis(5)).min(teacher.timeout).min(pupil.timeout).min(down.poll_timeout());
        if let Some(t) = room.poll_timeout() {
            next = next.min(t);
        }
        if teacher.connected {
            next = next.min(next_frame).min(next_audio);
        }
        now = next.max(now + Duration::from_micros(200)).min(next_sample.max(now + Duration::from_micros(200)));
    }
    run.audio_got = pupil.received.iter().copied().filter(|id| id & AUDIO_TAG != 0).collect();
    run.video_got = pupil.received.iter().copied().filter(|id| id & AUDIO_TAG == 0).collect();
    run
}

fn print(name: &str, run: &Run) {
    let mut last = String::new();
    let mut changes = Vec::new();
    for (t, l) in &run.layers {
        if *l != last {
            changes.push(format!("{:.1}s {l}", *t as f64 / 1000.0));
            last = l.clone();
        }
    }
    println!("{name}: {} (switches {})", changes.join(" → "), run.switches);
    let est: Vec<String> =
        run.estimates.iter().step_by(10).map(|(t, e)| format!("{}s:{}k", t / 1000, e / 1000)).collect();
    println!("  estimates {}", est.join(" "));
}

#[test]
fn capacity_steps_2m_300k_2m_move_the_pupil_down_then_up_and_keep_the_voice() {
    let phases = [
        Phase { from_ms: 0, link: capped(2000) },
        Phase { from_ms: 12_000, link: capped(300) },
        Phase { from_ms: 30_000, link: capped(2000) },
    ];
    let run = simulate(&phases, 45_000, true);
    print("adaptive", &run);
    let up = run.settled("high", 0, 12_000).expect("720p on a 2 Mbit/s link");
    assert!(up <= 8_000, "reached 720p at {up} ms");
    let down = run.settled("low", 12_000, 30_000).expect("180p on a 300 kbit/s link");
    assert!(down - 12_000 <= 1_500, "down to 180p {} ms after the drop", down - 12_000);
    // Stepping down, the pupil gets no frame of the top layer sent after the room chose a
    // lower one (sampled every 100 ms): it would queue in front of the voice.
    let left_top = run.layers.iter().find(|(t, l)| *t >= 12_000 && l != "high").expect("a step down").0;
    let last_top = run.last_frame_of(2, 12_000, 30_000).unwrap_or(0);
    println!(
        "stepping down: the room left 720p at {left_top} ms; the last 720p frame the pupil got was sent at {last_top} ms"
    );
    assert!(last_top <= left_top + 100, "720p frames sent until {last_top} ms, the room left 720p at {left_top} ms");
    let back = run.settled("high", 30_000, 45_000).expect("720p again");
    assert!(back - 30_000 <= 8_000, "back to 720p {} ms after the recovery", back - 30_000);
    for (from, to) in [(2_000, 12_000), (14_000, 30_000), (32_000, 45_000)] {
        let a = run.audio_delivered(from, to);
        assert!(a >= 0.99, "teacher's voice delivered {:.2}% in [{from}, {to}) ms", a * 100.0);
    }

    // The same link with adaptation off (always 720p): the voice suffers under the cap.
    let fixed = simulate(&phases, 30_000, false);
    let a_fixed = fixed.audio_delivered(14_000, 30_000);
    let a_adaptive = run.audio_delivered(14_000, 30_000);
    println!("voice under the 300 kbit/s cap: adaptive {:.1}%, fixed 720p {:.1}%", a_adaptive * 100.0, a_fixed * 100.0);
    assert!(a_fixed < 0.9, "a fixed 720p stream drowns the voice on 300 kbit/s ({:.1}%)", a_fixed * 100.0);
}

#[test]
fn random_and_burst_loss_and_a_long_jittery_rtt_do_not_make_the_layer_flap() {
    let lossy = NetemConfig::new().loss(RandomLoss::new(Probability::new(0.05))).seed(3);
    let run = simulate(&[Phase { from_ms: 0, link: lossy }], 25_000, true);
    print("5% loss", &run);
    let layers: HashSet<_> = run.layers.iter().filter(|(t, _)| *t >= 10_000).map(|(_, l)| l.clone()).collect();
    assert!(!layers.contains("audio"), "5% loss is no reason for audio only");
    assert!(run.switches <= 6, "no flapping under 5% loss: {} switches", run.switches);
    let a = run.audio_delivered(2_000, 25_000);
    assert!(
        (0.93..0.97).contains(&a),
        "audio loss is the link's (no NACK for Opus; FEC is in-band): {:.1}%",
        a * 100.0
    );

    let bursty = NetemConfig::new().loss(str0m_netem::GilbertElliot::wifi_lossy()).seed(5);
    let run = simulate(&[Phase { from_ms: 0, link: bursty }], 25_000, true);
    print("burst loss", &run);
    assert!(run.switches <= 6, "no flapping under burst loss: {} switches", run.switches);
    assert!(run.audio_delivered(2_000, 25_000) > 0.85);

    let far = NetemConfig::new().latency(Duration::from_millis(100)).jitter(Duration::from_millis(10)).seed(9);
    let run = simulate(&[Phase { from_ms: 0, link: far }], 25_000, true);
    print("200 ms RTT, 10 ms jitter", &run);
    assert!(run.settled("high", 0, 25_000).is_some_and(|t| t <= 12_000), "a far but wide link reaches 720p");
    assert!(run.switches <= 4, "no flapping with jitter: {} switches", run.switches);
    assert!(run.audio_delivered(2_000, 25_000) >= 0.99);
}

#[test]
fn a_pupil_who_joined_before_the_teachers_video_gets_it_when_it_comes() {
    // The pupil joins with the teacher, before any of the teacher's layers has arrived: its
    // allocator starts in audio only. When the layers come, it must choose a video layer at
    // once, not at its next bandwidth estimate (which took 0.6–1.6 s end to end).
    let run = simulate(&[Phase { from_ms: 0, link: capped(2000) }], 1_500, true);
    let first_video = run.layers.iter().find(|(_, l)| l != "audio").map(|(t, _)| *t);
    println!("layers: {:?}", &run.layers[..run.layers.len().min(8)]);
    let at = first_video.expect("video within 1.5 s");
    assert!(at <= 300, "first video layer chosen at {at} ms");
}

#[test]
fn a_player_without_transport_cc_climbs_to_the_top_on_an_open_link_and_steps_down_on_a_capped_one() {
    // It starts on the middle layer, its receiver reports move the estimate: up on the open
    // link (before, such a player stayed on 180p for ever), down under the cap, the voice kept.
    let phases = [Phase { from_ms: 0, link: capped(3000) }, Phase { from_ms: 25_000, link: capped(300) }];
    let run = simulate_player(&phases, 50_000, true, Player::ReportsOnly);
    print("no transport-cc", &run);
    // (The layers arrive one by one at the start: 180p is chosen while it is the only one.)
    let medium = run.layers.iter().find(|(_, l)| l == "medium").map(|(t, _)| *t);
    assert!(medium.is_some_and(|t| t <= 2_000), "on the middle layer as soon as it is there: {medium:?}");
    let up = run.settled("high", 0, 25_000).expect("720p on a 3 Mbit/s link");
    assert!(up <= 15_000, "reached 720p at {up} ms");
    let down = run.settled("low", 25_000, 50_000).or_else(|| run.settled("audio", 25_000, 50_000));
    let down = down.expect("180p or audio only on a 300 kbit/s link");
    assert!(down - 25_000 <= 10_000, "stepped down {} ms after the cap", down - 25_000);
    let a = run.audio_delivered(down + 2_000, 50_000);
    assert!(a >= 0.95, "teacher's voice delivered {:.1}% once stepped down", a * 100.0);
    // Without probes each try of a higher layer costs loss: not one every few seconds.
    let changes = run.layers.windows(2).filter(|w| w[0].0 >= 25_000 && w[0].1 != w[1].1).count();
    assert!(changes <= 3, "{changes} layer changes under the cap");
}

#[test]
fn a_player_that_sends_remb_gets_the_layer_its_remb_allows() {
    // No transport-cc, REMB instead: the server follows the player's own estimate (its
    // receiver reports no longer move one), at once, both ways.
    let phases = [Phase { from_ms: 0, link: capped(3000) }, Phase { from_ms: 15_000, link: capped(300) }];
    let run = simulate_player(&phases, 30_000, true, Player::Remb(&[2_500, 280]));
    print("REMB", &run);
    let up = run.settled("high", 0, 15_000).expect("720p on a 3 Mbit/s link whose player says 2.5 Mbit/s");
    assert!(up <= 5_000, "reached 720p at {up} ms (the report estimator alone took 9.6 s)");
    let down = run.settled("low", 15_000, 30_000).expect("180p once the player says 280 kbit/s");
    assert!(down - 15_000 <= 2_000, "stepped down {} ms after the cap", down - 15_000);
    // The estimate shown is the player's.
    let shown = run.estimates.iter().rev().find(|(t, _)| *t < 30_000).map(|(_, e)| *e);
    assert_eq!(shown, Some(280_000), "{:?}", &run.estimates[run.estimates.len() - 5..]);
    let a = run.audio_delivered(down + 2_000, 30_000);
    assert!(a >= 0.95, "teacher's voice delivered {:.1}% once stepped down", a * 100.0);
    let changes = run.layers.windows(2).filter(|w| w[0].0 >= 15_000 && w[0].1 != w[1].1).count();
    assert!(changes <= 1, "{changes} layer changes under the cap");
}
