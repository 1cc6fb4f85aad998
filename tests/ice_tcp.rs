//! ICE-TCP (issue 12): every answer carries a passive TCP candidate; a str0m client whose
//! only candidate is TCP publishes and plays through the server; garbage, oversized frames and
//! a client that stops reading hurt only their own connection.

mod common;

use ardoise_client::Transports;
use ardoise_loadgen::{Publisher, PublisherConfig, Subscriber};
use common::{TestServer, lo, send, wait_until};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn teacher_config(server: &TestServer) -> PublisherConfig {
    PublisherConfig {
        server: server.base.clone(),
        class: "demo".into(),
        token: server.token("teacher", Some("demo")),
        bind: lo(),
        simulcast: true,
        record_payloads: false,
    }
}

fn transports(server: &TestServer) -> Vec<String> {
    let admin = server.token("admin", None);
    let v: serde_json::Value =
        serde_json::from_str(&send("GET", &format!("{}/api/admin/classes", server.base), Some(&admin), None, "").body)
            .unwrap();
    v["classes"][0]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["transport"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_tcp_only_client_publishes_and_plays() {
    let server = TestServer::start(&[]);
    let mut teacher =
        Publisher::connect_over(&teacher_config(&server), Transports::TCP).expect("WHIP with a TCP-only client");
    let token = server.join("demo", "Tcp");
    let mut pupil =
        Subscriber::connect_over(&server.base, "demo", &token, lo(), Some("high"), Transports::TCP).expect("WHEP");
    let t = std::thread::spawn(move || {
        teacher.run_for(Duration::from_secs(3)).unwrap();
        teacher
    });
    pupil.run_for(Duration::from_secs(3)).unwrap();
    let _ = t.join().unwrap();
    assert!(pupil.report.video.len() > 150, "video over ICE-TCP both ways: {}", pupil.report.video.len());
    assert!(pupil.report.audio_seqs.len() > 50, "audio too: {}", pupil.report.audio_seqs.len());
    assert!(common::metric(&server, "ardoise_tcp_frames_in_total") > 100.0);
    let seen = transports(&server);
    assert!(seen.len() >= 2 && seen.iter().all(|t| t == "tcp"), "the admin view says tcp: {seen:?}");
}

#[test]
fn a_client_offering_both_uses_udp() {
    let server = TestServer::start(&[]);
    let mut teacher = Publisher::connect_over(&teacher_config(&server), Transports::BOTH).unwrap();
    let token = server.join("demo", "Both");
    let mut pupil =
        Subscriber::connect_over(&server.base, "demo", &token, lo(), Some("high"), Transports::BOTH).unwrap();
    let t = std::thread::spawn(move || {
        teacher.run_for(Duration::from_secs(2)).unwrap();
        teacher
    });
    pupil.run_for(Duration::from_secs(2)).unwrap();
    let _ = t.join().unwrap();
    assert!(pupil.report.video.len() > 100);
    let seen = transports(&server);
    assert!(!seen.is_empty() && seen.iter().all(|t| t == "udp"), "UDP is preferred when it works: {seen:?}");
}

/// The server's passive TCP candidate, from an answer.
fn tcp_candidate(server: &TestServer) -> SocketAddr {
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(str0m::media::MediaKind::Audio, str0m::media::Direction::RecvOnly, None, None, None);
    let offer = api.apply().unwrap().0.to_sdp_string();
    let r = send(
        "POST",
        &format!("{}/whep/demo", server.base),
        Some(&server.join("demo", "Sdp")),
        Some("application/sdp"),
        &offer,
    );
    assert_eq!(r.status, 201);
    ardoise_client::peer::passive_tcp_candidate(&r.body).expect("a passive TCP candidate in every answer")
}

#[test]
fn garbage_and_oversized_frames_close_only_their_connection() {
    let server = TestServer::start(&[]);
    let tcp = tcp_candidate(&server);
    let teacher_cfg = teacher_config(&server);
    let mut teacher = Publisher::connect(&teacher_cfg).unwrap();
    let token = server.join("demo", "Calme");
    let mut pupil =
        Subscriber::connect_over(&server.base, "demo", &token, lo(), Some("high"), Transports::TCP).unwrap();
    let t = std::thread::spawn(move || {
        teacher.run_for(Duration::from_secs(4)).unwrap();
        teacher
    });
    let attack = std::thread::spawn(move || {
        let mut closed = 0;
        // A 1 MB frame (length 0xffff, then a megabyte), garbage, a zero-length frame, and a
        // valid frame that is not STUN: each connection is closed; none is served.
        let payloads: Vec<Vec<u8>> = vec![
            [&[0xffu8, 0xff][..], &vec![0x42u8; 1 << 20][..]].concat(),
            (0..4000u32).map(|i| (i * 7) as u8).collect(),
            vec![0, 0, 0, 0],
            [&[0u8, 4][..], b"junk"].concat(),
        ];
        for p in payloads {
            let mut s = TcpStream::connect(tcp).unwrap();
            let _ = s.write_all(&p);
            s.set_read_timeout(Some(Duration::from_secs(7))).unwrap();
            let mut buf = [0u8; 16];
            if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                closed += 1;
            }
        }
        closed
    });
    pupil.run_for(Duration::from_secs(4)).unwrap();
    let closed = attack.join().unwrap();
    let _ = t.join().unwrap();
    assert_eq!(closed, 4, "each bad connection is closed");
    assert!(pupil.report.video.len() > 200, "the TCP pupil is not disturbed: {}", pupil.report.video.len());
}

#[test]
fn a_tcp_client_that_stops_reading_loses_video_not_the_class() {
    let server = TestServer::start(&[]);
    let mut teacher = Publisher::connect(&teacher_config(&server)).unwrap();
    let slow_token = server.join("demo", "Lent");
    let mut slow =
        Subscriber::connect_over(&server.base, "demo", &slow_token, lo(), Some("high"), Transports::TCP).unwrap();
    let mut other =
        Subscriber::connect_with_layer(&server.base, "demo", &server.join("demo", "Vif"), lo(), Some("high")).unwrap();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    other.rtp_counter = Some(counter.clone());
    let t = std::thread::spawn(move || {
        teacher.run_for(Duration::from_secs(12)).unwrap();
        teacher
    });
    let o = std::thread::spawn(move || other.run_for(Duration::from_secs(12)));
    // Both receive; then the slow one stops reading (this thread no longer drives it).
    slow.run_for(Duration::from_millis(1500)).unwrap();
    assert!(slow.report.video.len() > 50, "the TCP pupil receives first: {}", slow.report.video.len());
    let count = || counter.load(std::sync::atomic::Ordering::Relaxed);
    let before = count();
    let started = Instant::now();
    // The kernel's socket buffers fill first (a few MB on loopback), then the queues.
    wait_until(Duration::from_secs(9), "the server to drop video toward the slow reader", || {
        (common::metric(&server, "ardoise_tcp_dropped_total") > 0.0).then_some(())
    });
    println!(
        "slow reader: {} packets dropped after {:?}",
        common::metric(&server, "ardoise_tcp_dropped_total"),
        started.elapsed()
    );
    let mid = count();
    wait_until(Duration::from_secs(3), "the other pupil to keep receiving", || (count() > mid + 100).then_some(()));
    assert!(count() > before + 150, "the other pupil is not held: {}", count() - before);
    drop(slow);
    o.join().unwrap().unwrap();
    let _ = t.join().unwrap();
}

#[test]
fn a_tcp_client_gone_without_a_fin_frees_its_address_slot_when_its_session_ends() {
    let server = TestServer::start(&[("ARDOISE__LIMITS__ICE_TCP_PER_IP", "2")]);
    let mut teacher = Publisher::connect(&teacher_config(&server)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let teaching = {
        let stop = stop.clone();
        std::thread::spawn(move || teacher.run_until(|| stop.load(std::sync::atomic::Ordering::Relaxed)))
    };
    // Two tablets of a school that blocks UDP, behind its one address, play over ICE-TCP; then
    // they vanish: their sessions end (here by a DELETE, a dead tablet's by its timeout), and
    // their connections stay open and silent (no FIN ever comes from a tablet without power).
    let mut vanished = Vec::new();
    for name in ["Un", "Deux"] {
        let token = server.join("demo", name);
        let mut p = Subscriber::connect_over(&server.base, "demo", &token, lo(), Some("low"), Transports::TCP).unwrap();
        wait_until(Duration::from_secs(5), "a picture over ICE-TCP", || {
            p.run_for(Duration::from_millis(50)).ok()?;
            (!p.report.video.is_empty()).then_some(())
        });
        assert!(p.peer().over_tcp(), "{name} plays over TCP");
        let url = ardoise_client::http::resolve(&server.base, p.resource().unwrap());
        assert!(send("DELETE", &url, Some(&token), None, "").status < 300, "its session ends");
        vanished.push(p);
    }
    wait_until(Duration::from_secs(5), "the server to close the ended sessions' connections", || {
        (common::metric(&server, "ardoise_tcp_open") == 0.0).then_some(())
    });
    // The address's slots are free again: the next tablet of the school plays over TCP.
    let token = server.join("demo", "Trois");
    let mut next = Subscriber::connect_over(&server.base, "demo", &token, lo(), Some("low"), Transports::TCP).unwrap();
    wait_until(Duration::from_secs(5), "the next tablet's picture over ICE-TCP", || {
        next.run_for(Duration::from_millis(50)).ok()?;
        (!next.report.video.is_empty()).then_some(())
    });
    assert!(next.peer().over_tcp());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    teaching.join().unwrap().unwrap();
    drop(vanished);
}
