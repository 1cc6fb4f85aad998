//! Criterion benches of the forwarding path.
//!
//! - `forwarder/decide`: the pure per-packet, per-subscriber decision (seq/ts rewrite).
//! - `room/forward/N`: one encrypted 1,100-byte VP8 packet from the teacher through the
//!   room to N connected subscribers: SRTP decrypt once, then per subscriber the forwarder,
//!   str0m's RTP write, RTX history and SRTP encrypt into a datagram. Throughput is in
//!   subscribers, so criterion's "elements/s" is forwarded packets per second.

use ardoise_proto::ClassId;
use ardoise_sfu::sim::{SimClient, connect_all, pump, to_room};
use ardoise_sfu::{Decision, Forwarder, PacketIn, Room, SfuConfig, SourceKey};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;
use str0m::format::Codec;
use str0m::rtp::RtpWrite;

fn forwarder(c: &mut Criterion) {
    let now = Instant::now();
    let mut f = Forwarder::new(90_000, true, 1);
    let mut seq = 0u64;
    let src = SourceKey { publisher: 1, ssrc: 42 };
    f.decide(&PacketIn { source: src, seq: 0, ts: 0, keyframe_start: true, now }, true);
    c.bench_function("forwarder/decide", |b| {
        b.iter(|| {
            seq += 1;
            let p = PacketIn { source: src, seq, ts: (seq * 3000) as u32, keyframe_start: false, now };
            black_box(f.decide(black_box(&p), true))
        })
    });
    assert!(matches!(
        f.decide(&PacketIn { source: src, seq: seq + 1, ts: 0, keyframe_start: false, now }, true),
        Decision::Send { .. }
    ));
}

fn room_forward(c: &mut Criterion) {
    forward_group(c, "room/forward", 1, &[1, 10, 50]);
    forward_group(c, "room/forward-frame-of-6", 6, &[10, 50]);
}

/// `per_batch` packets (one video frame) enter in one batch, as the worker does on one wake-up.
fn forward_group(c: &mut Criterion, name: &str, per_batch: u64, sizes: &[usize]) {
    let mut group = c.benchmark_group(name);
    for &n in sizes {
        let t0 = Instant::now();
        let server = "127.0.0.1:5000".parse().unwrap();
        let mut room = Room::new(ClassId("bench".into()), SfuConfig { candidates: vec![server], ..Default::default() });
        let mut clients = vec![SimClient::join(&mut room, t0, "127.0.0.1:6000".parse().unwrap(), 1, true)];
        for i in 0..n {
            let addr = format!("127.0.0.1:{}", 7000 + i).parse().unwrap();
            clients.push(SimClient::join(&mut room, t0, addr, 10 + i as u64, false));
        }
        connect_all(&mut room, &mut clients, t0);
        let (_, vmid) = clients[0].mids;
        let vp8 = clients[0].rtc.codec_config().find(|p| p.spec().codec == Codec::Vp8).unwrap().pt();
        let mut seq = 1u64;
        let payload: Vec<u8> = std::iter::once(0x10u8).chain(std::iter::repeat_n(0u8, 1099)).collect();

        let room = std::cell::RefCell::new(room);
        let produced = std::cell::Cell::new(0u64);
        group.throughput(Throughput::Elements(n as u64 * per_batch));
        group.bench_function(format!("{n}"), |b| {
            b.iter_batched(
                || {
                    // Untimed: deliver what the room sent, then the teacher encrypts the next packet.
                    let now = Instant::now();
                    // Datagrams the timed part produced (pacing must not defer the work to here).
                    produced.set(produced.get() + room.borrow_mut().transmits().len() as u64);
                    pump(&mut room.borrow_mut(), &mut clients, now);
                    let publisher = &mut clients[0];
                    let mut api = publisher.rtc.direct_api();
                    let tx = api.stream_tx_by_mid(vmid, None).unwrap();
                    let frame_ts = (seq * 3000) as u32;
                    for k in 0..per_batch {
                        let last = k + 1 == per_batch;
                        tx.write_rtp(
                            RtpWrite::new(vp8, seq.into(), frame_ts, now, payload.clone()).marker(last).nackable(true),
                        );
                        seq += 1;
                    }
                    // Let the pacer release them now.
                    let mut t = now;
                    while (publisher.outbox.len() as u64) < per_batch {
                        publisher.rtc.handle_input(str0m::Input::Timeout(t)).unwrap();
                        publisher.drain(t);
                        t += std::time::Duration::from_micros(200);
                    }
                    let out = std::mem::take(&mut publisher.outbox);
                    (now, out)
                },
                |(now, datagrams)| {
                    let mut room = room.borrow_mut();
                    room.begin_batch();
                    for d in &datagrams {
                        to_room(&mut room, now, d);
                    }
                    room.end_batch(now);
                },
                BatchSize::SmallInput,
            )
        });
        let forwarded = room.borrow().stats().forwarded;
        let written = (seq - 1) * n as u64;
        assert!(forwarded * 10 >= written * 9, "the bench forwarded {forwarded} of {written} packets");
        let produced = produced.get();
        assert!(produced * 10 >= written * 9, "only {produced} of {written} datagrams were produced in the timed part");
    }
    group.finish();
}

// criterion_group! makes a public function it gives no documentation to.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, forwarder, room_forward);
}
criterion_main!(group::benches);
