//! Simulated time: 1 publisher → room → 10 subscribers with 2% random loss on every subscriber
//! link (both directions). NACK/RTX from the SFU's own history must recover ≥ 99% of packets.

use ardoise_proto::{ClassId, ParticipantId};
use ardoise_sfu::{Room, SfuConfig};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use str0m_netem::{Input as NIn, Netem, NetemConfig, Output as NOut, Probability, RandomLoss};

#[derive(Clone)]
struct Pkt {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}
impl AsRef<[u8]> for Pkt {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    timeout: Instant,
    /// Link toward this client (server → client).
    down: Netem<Pkt>,
    /// Link from this client (client → server).
    up: Netem<Pkt>,
    received: HashSet<u32>,
    connected: bool,
    keyframe_wanted: bool,
}

const SERVER: &str = "127.0.0.1:5000";

fn client(now: Instant, port: u16, link: NetemConfig) -> Client {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    Client {
        rtc,
        addr,
        timeout: now,
        down: Netem::new(link.clone()),
        up: Netem::new(link),
        received: HashSet::new(),
        connected: false,
        keyframe_wanted: false,
    }
}

fn drain(c: &mut Client, now: Instant) {
    loop {
        match c.rtc.poll_output().unwrap() {
            Output::Timeout(t) => {
                c.timeout = t;
                break;
            }
            Output::Transmit(t) => c.up.handle_input(NIn::Packet(
                now,
                Pkt { from: t.source, to: t.destination, data: t.contents.to_vec() },
            )),
            Output::Event(Event::Connected) => c.connected = true,
            Output::Event(Event::RtpPacket(p)) => {
                if p.payload.len() >= 6 {
                    c.received.insert(u32::from_be_bytes(p.payload[2..6].try_into().unwrap()));
                }
            }
            Output::Event(Event::KeyframeRequest(_)) => c.keyframe_wanted = true,
            Output::Event(_) => {}
        }
    }
}

fn negotiate(room: &mut Room, now: Instant, c: &mut Client, pid: u64, publish: bool) -> (Mid, Mid) {
    let dir = if publish { Direction::SendOnly } else { Direction::RecvOnly };
    let mut api = c.rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
    let video = api.add_media(MediaKind::Video, dir, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let sdp = offer.to_sdp_string();
    let answer = if publish {
        room.add_publisher(now, ParticipantId(pid), &sdp).unwrap()
    } else {
        room.add_subscriber(now, ParticipantId(pid), &sdp).unwrap()
    };
    let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap();
    c.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    drain(c, now);
    (audio, video)
}

#[test]
fn nack_rtx_recovers_2_percent_loss_for_10_subscribers() {
    let t0 = Instant::now();
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut room = Room::new(ClassId("sim".into()), SfuConfig { candidates: vec![server], ..Default::default() });

    let mut publisher = client(t0, 6000, NetemConfig::new());
    let (amid, vmid) = negotiate(&mut room, t0, &mut publisher, 1, true);
    let mut subs: Vec<Client> = (0..10)
        .map(|i| {
            let loss = NetemConfig::new().loss(RandomLoss::new(Probability::new(0.02))).seed(1000 + i as u64);
            let mut c = client(t0, 7000 + i as u16, loss);
            negotiate(&mut room, t0, &mut c, 10 + i as u64, false);
            c
        })
        .collect();

    let vp8 = publisher.rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).unwrap().pt();
    let opus = publisher.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();

    let media_end = t0 + Duration::from_secs(10);
    let end = media_end + Duration::from_secs(2);
    let mut now = t0;
    let mut next_video = t0 + Duration::from_millis(500);
    let mut next_audio = next_video;
    let (mut vseq, mut aseq, mut id) = (1u64, 1u64, 0u32);
    let mut frame = 0u32;
    let mut sent_ids: Vec<(Instant, u32)> = vec![];
    let mut total_dropped_by_net = 0usize;

    while now < end {
        // Media from the publisher: 30 fps video in 5 packets a frame, 50 audio packets a second.
        if publisher.connected && now >= next_video && now < media_end {
            let key = frame == 0 || std::mem::take(&mut publisher.keyframe_wanted);
            for k in 0..5u8 {
                let mut payload = vec![0u8; 1000];
                payload[0] = if k == 0 { 0x10 } else { 0x00 };
                payload[1] = if key { 0x00 } else { 0x01 };
                payload[2..6].copy_from_slice(&id.to_be_bytes());
                sent_ids.push((now, id));
                id += 1;
                let mut api = publisher.rtc.direct_api();
                let tx = api.stream_tx_by_mid(vmid, None).unwrap();
                tx.write_rtp(
                    RtpWrite::new(vp8, vseq.into(), frame * 3000, now, payload).marker(k == 4).nackable(true),
                );
                vseq += 1;
            }
            frame += 1;
            next_video += Duration::from_micros(33_333);
            drain(&mut publisher, now);
        }
        if publisher.connected && now >= next_audio && now < media_end {
            let mut payload = vec![0u8; 80];
            payload[2..6].copy_from_slice(&id.to_be_bytes());
            sent_ids.push((now, id));
            id += 1;
            let mut api = publisher.rtc.direct_api();
            let tx = api.stream_tx_by_mid(amid, None).unwrap();
            tx.write_rtp(RtpWrite::new(opus, aseq.into(), aseq as u32 * 960, now, payload));
            aseq += 1;
            next_audio += Duration::from_millis(20);
            drain(&mut publisher, now);
        }

        // Deliver everything due.
        let clients = std::iter::once(&mut publisher).chain(subs.iter_mut());
        for c in clients {
            c.up.handle_input(NIn::Timeout(now));
            while let Some(NOut::Packet(p)) = c.up.poll_output() {
                let pid = room.find(now, p.from, p.to, &p.data).expect("datagram for a known participant");
                room.handle_receive(now, pid, p.from, p.to, &p.data).unwrap();
            }
            c.down.handle_input(NIn::Timeout(now));
            while let Some(NOut::Packet(p)) = c.down.poll_output() {
                let r = Receive::new(Protocol::Udp, p.from, p.to, &p.data).unwrap();
                c.rtc.handle_input(Input::Receive(now, r)).unwrap();
                drain(c, now);
            }
            if c.timeout <= now {
                c.rtc.handle_input(Input::Timeout(now)).unwrap();
                drain(c, now);
            }
        }
        if room.poll_timeout().is_some_and(|t| t <= now) {
            room.handle_timeout(now);
        }
        for t in room.take_transmits() {
            let c = std::iter::once(&mut publisher)
                .chain(subs.iter_mut())
                .find(|c| c.addr == t.destination)
                .expect("transmit to a known client");
            c.down.handle_input(NIn::Packet(now, Pkt { from: t.source, to: t.destination, data: t.contents.to_vec() }));
        }

        // Advance to the next thing that happens (at most 5 ms).
        let mut next = now + Duration::from_millis(5);
        for c in std::iter::once(&publisher).chain(subs.iter()) {
            next = next.min(c.timeout).min(c.up.poll_timeout()).min(c.down.poll_timeout());
        }
        if let Some(t) = room.poll_timeout() {
            next = next.min(t);
        }
        if publisher.connected {
            next = next.min(next_video).min(next_audio);
        }
        now = next.max(now + Duration::from_micros(100));
    }

    assert!(publisher.connected, "publisher connected");
    let nacks: u64 = room.participant_stats().iter().map(|p| p.nacks_in).sum();
    for (i, s) in subs.iter().enumerate() {
        assert!(s.connected, "subscriber {i} connected");
        let first = *s.received.iter().min().expect("subscriber received media");
        // Everything sent from the first packet it got on, up to the end of media.
        let expected: Vec<u32> = sent_ids.iter().map(|(_, id)| *id).filter(|id| *id >= first).collect();
        let got = expected.iter().filter(|id| s.received.contains(id)).count();
        let ratio = got as f64 / expected.len() as f64;
        total_dropped_by_net += expected.len() - got;
        println!("subscriber {i}: {got}/{} packets ({:.3}%)", expected.len(), ratio * 100.0);
        assert!(expected.len() > 1500, "enough media flowed ({})", expected.len());
        assert!(ratio >= 0.99, "subscriber {i} recovered only {:.2}%", ratio * 100.0);
    }
    println!("NACKs received by the SFU: {nacks}; packets still missing: {total_dropped_by_net}");
    assert!(nacks > 0, "2% loss must have caused NACKs (else the test proves nothing)");
}
