//! Simulated time: 1 publisher → room → 10 subscribers with 2% random loss on every subscriber
//! link (both directions). NACK/RTX from the SFU's own history must recover ≥ 99% of packets.

use ardoise_proto::ClassId;
use ardoise_sfu::sim::{Datagram, SimClient, to_room};
use ardoise_sfu::{Room, SfuConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::format::Codec;
use str0m::rtp::RtpWrite;
use str0m_netem::{Input as NIn, Netem, NetemConfig, Output as NOut, Probability, RandomLoss};

/// A client with its two emulated links.
struct Linked {
    client: SimClient,
    /// Server → client.
    down: Netem<Datagram>,
    /// Client → server.
    up: Netem<Datagram>,
}

fn linked(room: &mut Room, now: Instant, port: u16, pid: u64, publish: bool, link: NetemConfig) -> Linked {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    Linked { client: SimClient::join(room, now, addr, pid, publish), down: Netem::new(link), up: Netem::new(link) }
}

#[test]
fn nack_rtx_recovers_2_percent_loss_for_10_subscribers() {
    let t0 = Instant::now();
    let server: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut room = Room::new(ClassId("sim".into()), SfuConfig { candidates: vec![server], ..Default::default() });

    let mut peers = vec![linked(&mut room, t0, 6000, 1, true, NetemConfig::new())];
    for i in 0..10u64 {
        let loss = NetemConfig::new().loss(RandomLoss::new(Probability::new(0.02))).seed(1000 + i);
        peers.push(linked(&mut room, t0, 7000 + i as u16, 10 + i, false, loss));
    }
    let (amid, vmid) = peers[0].client.mids;
    let vp8 = peers[0].client.rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).unwrap().pt();
    let opus = peers[0].client.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();

    let media_end = t0 + Duration::from_secs(10);
    let end = media_end + Duration::from_secs(2);
    let mut now = t0;
    let mut next_video = t0 + Duration::from_millis(500);
    let mut next_audio = next_video;
    let (mut vseq, mut aseq, mut id, mut frame) = (1u64, 1u64, 0u32, 0u32);
    let mut sent_ids: Vec<u32> = vec![];

    while now < end {
        let publisher = &mut peers[0].client;
        // Media: 30 fps video in 5 packets a frame, 50 audio packets a second.
        if publisher.connected && now >= next_video && now < media_end {
            let key = frame == 0 || std::mem::take(&mut publisher.keyframe_wanted);
            for k in 0..5u8 {
                let mut payload = vec![0u8; 1000];
                payload[0] = if k == 0 { 0x10 } else { 0x00 };
                payload[1] = if key { 0x00 } else { 0x01 };
                payload[2..6].copy_from_slice(&id.to_be_bytes());
                sent_ids.push(id);
                id += 1;
                let mut api = publisher.rtc.direct_api();
                let tx = api.stream_tx_by_mid(vmid, None).unwrap();
                tx.write_rtp(RtpWrite::new(vp8, vseq.into(), frame * 3000, now, payload).marker(k == 4).nackable(true));
                vseq += 1;
            }
            frame += 1;
            next_video += Duration::from_micros(33_333);
            publisher.drain(now);
        }
        if publisher.connected && now >= next_audio && now < media_end {
            let mut payload = vec![0u8; 80];
            payload[2..6].copy_from_slice(&id.to_be_bytes());
            sent_ids.push(id);
            id += 1;
            let mut api = publisher.rtc.direct_api();
            let tx = api.stream_tx_by_mid(amid, None).unwrap();
            tx.write_rtp(RtpWrite::new(opus, aseq.into(), aseq as u32 * 960, now, payload));
            aseq += 1;
            next_audio += Duration::from_millis(20);
            publisher.drain(now);
        }

        // Move datagrams through the emulated links.
        for p in peers.iter_mut() {
            p.client.tick(now);
            for d in std::mem::take(&mut p.client.outbox) {
                p.up.handle_input(NIn::Packet(now, d));
            }
            p.up.handle_input(NIn::Timeout(now));
            while let Some(NOut::Packet(d)) = p.up.poll_output() {
                to_room(&mut room, now, &d);
            }
            p.down.handle_input(NIn::Timeout(now));
            while let Some(NOut::Packet(d)) = p.down.poll_output() {
                p.client.receive(now, &d);
            }
        }
        if room.poll_timeout().is_some_and(|t| t <= now) {
            room.handle_timeout(now);
        }
        for t in room.take_transmits() {
            let p = peers.iter_mut().find(|p| p.client.addr == t.destination).expect("transmit to a known client");
            p.down.handle_input(NIn::Packet(
                now,
                Datagram { from: t.source, to: t.destination, data: t.contents.to_vec() },
            ));
        }

        // Advance to the next thing that happens (at most 5 ms).
        let mut next = now + Duration::from_millis(5);
        for p in &peers {
            next = next.min(p.client.timeout).min(p.up.poll_timeout()).min(p.down.poll_timeout());
        }
        if let Some(t) = room.poll_timeout() {
            next = next.min(t);
        }
        if peers[0].client.connected {
            next = next.min(next_video).min(next_audio);
        }
        now = next.max(now + Duration::from_micros(100));
    }

    assert!(peers[0].client.connected, "publisher connected");
    let nacks: u64 = room.participant_stats().iter().map(|p| p.nacks_in).sum();
    let mut missing = 0;
    for (i, p) in peers[1..].iter().enumerate() {
        let s = &p.client;
        assert!(s.connected, "subscriber {i} connected");
        let first = *s.received.iter().min().expect("subscriber received media");
        // Everything sent from the first packet it got on.
        let expected: Vec<u32> = sent_ids.iter().copied().filter(|id| *id >= first).collect();
        let got = expected.iter().filter(|id| s.received.contains(id)).count();
        let ratio = got as f64 / expected.len() as f64;
        missing += expected.len() - got;
        println!("subscriber {i}: {got}/{} packets ({:.3}%)", expected.len(), ratio * 100.0);
        assert!(expected.len() > 1500, "enough media flowed ({})", expected.len());
        assert!(ratio >= 0.99, "subscriber {i} recovered only {:.2}%", ratio * 100.0);
    }
    println!("NACKs received by the SFU: {nacks}; packets still missing: {missing} (audio is not retransmitted)");
    assert!(nacks > 0, "2% loss must have caused NACKs (else the test proves nothing)");
}

/// In a batch, the packets of a frame reach each subscriber together at the frame's end.
#[test]
fn a_batch_holds_a_frame_until_its_last_packet() {
    use ardoise_sfu::sim::{connect_all, pump};
    let t0 = Instant::now();
    let server: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut room = Room::new(ClassId("batch".into()), SfuConfig { candidates: vec![server], ..Default::default() });
    let mut clients = vec![SimClient::join(&mut room, t0, "127.0.0.1:6000".parse().unwrap(), 1, true)];
    for i in 0..3u16 {
        clients.push(SimClient::join(
            &mut room,
            t0,
            format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
            10 + i as u64,
            false,
        ));
    }
    let mut now = connect_all(&mut room, &mut clients, t0);
    let (_, vmid) = clients[0].mids;
    let vp8 = clients[0].rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).unwrap().pt();
    for frame in 0..3u64 {
        now += Duration::from_millis(33);
        pump(&mut room, &mut clients, now);
        room.take_transmits();
        let publisher = &mut clients[0];
        for k in 0..5u64 {
            let mut payload = vec![0u8; 1000];
            payload[0] = if k == 0 { 0x10 } else { 0 };
            payload[1] = if frame == 0 { 0 } else { 1 };
            let mut api = publisher.rtc.direct_api();
            let tx = api.stream_tx_by_mid(vmid, None).unwrap();
            tx.write_rtp(
                RtpWrite::new(vp8, (frame * 5 + k + 1).into(), (frame * 3000) as u32, now, payload)
                    .marker(k == 4)
                    .nackable(true),
            );
        }
        let mut t = now;
        while publisher.outbox.len() < 5 {
            publisher.rtc.handle_input(str0m::Input::Timeout(t)).unwrap();
            publisher.drain(t);
            t += Duration::from_micros(100);
        }
        let datagrams = std::mem::take(&mut publisher.outbox);
        room.begin_batch();
        for (k, d) in datagrams.iter().enumerate() {
            to_room(&mut room, now, d);
            let last = k + 1 == datagrams.len();
            assert_eq!(room.frame_open(), !last, "frame {frame} packet {k}");
        }
        let before = room.transmits().len();
        room.end_batch(now);
        let sent = room.transmits().len() - before;
        assert!(sent >= 15, "frame {frame}: 5 packets to each of 3 subscribers at the end of the batch, got {sent}");
    }
}
