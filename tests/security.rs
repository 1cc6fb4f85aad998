//! The holes a security probe found (issue 11), one test each: every attack is replayed on
//! loopback against the real binary and must now fail, while the class goes on.

mod common;

use ardoise_loadgen::{Publisher, PublisherConfig, Subscriber};
use common::ws::{hello, next, open, send as ws_send, wait_for};
use common::{TestServer, assert_problem, lo, rss_kib, send, wait_until};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use str0m::media::{Direction, MediaKind};
use tokio_tungstenite::tungstenite::Message;

/// The flood measurement runs alone (write lock); the other tests of this file share the
/// machine with each other (read lock).
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    MACHINE.blocking_read()
}

/// The per-address limits of the shipped configuration (the test configuration raises them
/// because every test client comes from 127.0.0.1).
const SHIPPED_LIMITS: &[(&str, &str)] = &[
    ("ARDOISE__LIMITS__CONNECTIONS_PER_IP", "64"),
    ("ARDOISE__LIMITS__OFFERS_PER_IP_PER_MINUTE", "60"),
    ("ARDOISE__LIMITS__JOINS_PER_IP_PER_MINUTE", "60"),
    ("ARDOISE__LIMITS__JOINS_PER_CLASS_PER_MINUTE", "120"),
    ("ARDOISE__LIMITS__SESSIONS_PER_IP", "64"),
    ("ARDOISE__LIMITS__PENDING_PER_CLASS", "64"),
    ("ARDOISE__LIMITS__WEBSOCKETS_PER_IP", "64"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    SHIPPED_LIMITS.iter().chain(extra).copied().collect()
}

/// A str0m offer with these m-lines.
fn offer(media: &[(MediaKind, Direction)]) -> String {
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    for (k, d) in media {
        api.add_media(*k, *d, None, None, None);
    }
    api.apply().unwrap().0.to_sdp_string()
}

fn recv_offer() -> String {
    offer(&[(MediaKind::Audio, Direction::RecvOnly), (MediaKind::Video, Direction::RecvOnly)])
}

fn json_of(r: &common::Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("not JSON: {}", r.body))
}

fn create_class(server: &TestServer, admin: &str, id: &str) -> Value {
    let body = json!({"id": id, "title": id.split('-').next().unwrap().to_uppercase()}).to_string();
    let r = send("POST", &format!("{}/api/classes", server.base), Some(admin), Some("application/json"), &body);
    assert_eq!(r.status, 201, "{}", r.body);
    json_of(&r)
}

fn join(server: &TestServer, code: &str, name: &str) -> common::Reply {
    send(
        "POST",
        &format!("{}/api/classes/{code}/join", server.base),
        None,
        Some("application/json"),
        &json!({"name": name}).to_string(),
    )
}

fn publisher_config(base: &str, token: &str) -> PublisherConfig {
    PublisherConfig {
        server: base.to_owned(),
        class: "demo".into(),
        token: token.to_owned(),
        bind: lo(),
        simulcast: true,
        record_payloads: false,
    }
}

fn publisher(server: &TestServer, token: &str) -> Publisher {
    Publisher::connect(&publisher_config(&server.base, token)).expect("the teacher publishes")
}

fn admin_class(server: &TestServer, admin: &str, id: &str) -> Value {
    let r = send("GET", &format!("{}/api/admin/classes", server.base), Some(admin), None, "");
    json_of(&r)["classes"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned().unwrap_or(Value::Null)
}

// ------------------------------------------------------------------------------------ 1

/// Hole 1: a pupil that sends WebSocket pings and never reads took the server from 49 MiB to
/// 3.4 GiB in 20 s. Pings now count against the rate limit and the write buffer is bounded:
/// the flooder is disconnected, memory stays put, the teacher's socket is not disturbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_1_a_ping_flood_that_never_reads_is_cut_off_with_memory_bounded() {
    let _machine = MACHINE.read().await;
    let server = TestServer::start(&with(&[]));
    let teacher = server.token("teacher", Some("demo"));
    let pupil = server.join("demo", "Pingu");
    let (mut t, _) = hello(&server, "demo", &teacher).await;
    let (ws, _) = hello(&server, "demo", &pupil).await;
    let rss_before = rss_kib(server.child.id());
    // Never read again: only the write half is used.
    let (mut sink, _stream) = ws.split();
    let payload = vec![0x55u8; 125];
    let started = Instant::now();
    let mut sent = 0u64;
    let mut cut_off = false;
    while started.elapsed() < Duration::from_secs(10) {
        match tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Ping(payload.clone().into()))).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(_)) | Err(_) => {
                cut_off = true;
                break;
            }
        }
        if sent.is_multiple_of(256) {
            tokio::task::yield_now().await;
        }
    }
    let rss_after = rss_kib(server.child.id());
    println!("ping flood: {sent} pings sent in {:?}; RSS {rss_before} → {rss_after} KiB", started.elapsed());
    assert!(cut_off, "the server closes a flooding client ({sent} pings sent)");
    assert!(rss_after < rss_before + 32 * 1024, "memory stays bounded: {rss_before} → {rss_after} KiB");
    ws_send(&mut t, json!({"type": "ping"})).await;
    assert_eq!(wait_for(&mut t, "pong").await["type"], "pong", "the teacher is not disturbed");
}

/// Hole 1 (continued) and hole 6: only application messages keep a socket alive: a client
/// that only pings is closed after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_1_pings_alone_do_not_keep_a_socket_alive() {
    let _machine = MACHINE.read().await;
    let server = TestServer::start(&with(&[("ARDOISE__LIMITS__WEBSOCKET_IDLE_SECS", "2")]));
    let pupil = server.join("demo", "Idle");
    let (mut ws, _) = hello(&server, "demo", &pupil).await;
    let started = Instant::now();
    // A ping every 400 ms (well within the rate limit), the pongs read, nothing else.
    let mut next_ping = tokio::time::Instant::now();
    let closed = loop {
        if started.elapsed() > Duration::from_secs(8) {
            break false;
        }
        if tokio::time::Instant::now() >= next_ping {
            if ws.send(Message::Ping(vec![1].into())).await.is_err() {
                break true;
            }
            next_ping += Duration::from_millis(400);
        }
        match tokio::time::timeout_at(next_ping, ws.next()).await {
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => break true,
            _ => {}
        }
    };
    assert!(closed, "a socket kept busy with pings only is closed after the idle timeout");
    assert!(started.elapsed() >= Duration::from_millis(1900), "not before the idle timeout: {:?}", started.elapsed());
}

// ------------------------------------------------------------------------------------ 2

/// Hole 2: the public look-up returned the join code, join accepted the class id, /metrics
/// listed class ids, and `serve` shipped a class `demo` with code `demo`.
#[test]
fn hole_2_a_stranger_cannot_join_without_the_code() {
    let _machine = shared();
    let server = TestServer::start(&with(&[("ARDOISE__HTTP__METRICS_ALLOW", "[]")]));
    let b = &server.base;
    let admin = server.token("admin", None);
    let class = create_class(&server, &admin, "cm2-secret");
    assert_eq!(class["title"], "CM2");
    let code = class["code"].as_str().unwrap().to_owned();
    assert!(code.len() >= 8, "codes are long enough: {code}");

    // The look-up by id finds nothing; by code it shows the title and state only.
    assert_problem(&send("GET", &format!("{b}/api/classes/cm2-secret"), None, None, ""), 404, "look-up by id");
    let public = send("GET", &format!("{b}/api/classes/{code}"), None, None, "");
    assert_eq!(public.status, 200);
    assert!(!public.body.contains(&code) && !public.body.contains("cm2-secret"), "no code, no id: {}", public.body);
    // Join by id is refused; by code it works.
    assert_problem(&join(&server, "cm2-secret", "Intrus"), 404, "join by id");
    assert_eq!(join(&server, &code, "Léa").status, 200);
    // The teacher (and admins) see the code with their token.
    let teacher = class["teacher_token"].as_str().unwrap();
    let own = send("GET", &format!("{b}/api/classes/cm2-secret"), Some(teacher), None, "");
    assert_eq!(json_of(&own)["code"], code.as_str());
    let other_teacher = server.token("teacher", Some("demo"));
    assert_problem(
        &send("GET", &format!("{b}/api/classes/cm2-secret"), Some(&other_teacher), None, ""),
        403,
        "another teacher",
    );

    // /metrics: an admin token from outside metrics_allow, and no class id in it.
    assert_problem(&send("GET", &format!("{b}/metrics"), None, None, ""), 401, "metrics without a token");
    let pupil = server.join("demo", "Curieux");
    assert_problem(&send("GET", &format!("{b}/metrics"), Some(&pupil), None, ""), 403, "metrics with a pupil token");
    let sub = Subscriber::connect(b, "cm2-secret", &join_token(&server, &code, "Tom"), lo()).expect("WHEP");
    let metrics = send("GET", &format!("{b}/metrics"), Some(&admin), None, "");
    assert_eq!(metrics.status, 200);
    assert!(!metrics.body.contains("cm2-secret") && !metrics.body.contains("demo"), "opaque labels only");
    let label = admin_class(&server, &admin, "cm2-secret")["metrics_label"].as_str().unwrap().to_owned();
    wait_until(Duration::from_secs(5), "the pupil under its class label", || {
        let m = send("GET", &format!("{b}/metrics"), Some(&admin), None, "").body;
        m.contains(&format!("class=\"{label}\"")).then_some(())
    });
    drop(sub);

    // A plain `serve` has no demo class.
    let bare = TestServer::start_with("127.0.0.1:0", "", &with(&[]));
    assert_problem(&join(&bare, "demo", "Léa"), 404, "no demo class under serve");
    assert!(
        send("GET", &format!("{}/api/admin/classes", bare.base), Some(&bare.token("admin", None)), None, "")
            .body
            .contains("\"classes\":[]")
    );
}

fn join_token(server: &TestServer, code: &str, name: &str) -> String {
    json_of(&join(server, code, name))["token"].as_str().unwrap().to_owned()
}

// ------------------------------------------------------------------------------------ 3

/// Hole 3: 500 WHEP offers from one pupil token filled the class, the teacher's WHIP got 503
/// and the picture froze for the pupils watching. Now: offers are rate-limited per address,
/// one token holds a few sessions (a new one replaces its oldest), unconnected sessions do
/// not count, and the teacher has a reserved place.
#[test]
fn hole_3_one_token_cannot_fill_a_class_or_lock_out_the_teacher() {
    let _machine = shared();
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let server = TestServer::start(&with(&[("ARDOISE__MEDIA__MAX_PEERS_PER_CLASS", "3")]));
    let b = server.base.clone();
    let teacher = server.token("teacher", Some("demo"));
    let admin = server.token("admin", None);
    let mut teaching = publisher(&server, &teacher);
    let teaching = std::thread::spawn(move || teaching.run_for(Duration::from_secs(6)).map(|_| teaching));
    // Two pupils watch, each on its own thread as a tablet would.
    let counters: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let watchers: Vec<_> = counters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut w =
                Subscriber::connect_with_layer(&b, "demo", &server.join("demo", &format!("W{i}")), lo(), Some("high"))
                    .unwrap();
            w.rtp_counter = Some(c.clone());
            std::thread::spawn(move || w.run_for(Duration::from_secs(6)))
        })
        .collect();
    let flowing = |what: &str, from: &[u64]| {
        wait_until(Duration::from_secs(3), what, || {
            counters.iter().zip(from).all(|(c, n)| c.load(Ordering::Relaxed) > n + 40).then_some(())
        })
    };
    flowing("the watchers to see the class", &[0, 0]);
    // 300 offers from one pupil token, as fast as one client can.
    let attacker = server.join("demo", "Script");
    let sdp = recv_offer();
    let started = Instant::now();
    let statuses: Vec<u16> = (0..300)
        .map(|_| {
            let r = send("POST", &format!("{b}/whep/demo"), Some(&attacker), Some("application/sdp"), &sdp);
            if r.status == 429 {
                assert!(r.retry_after.is_some(), "429 carries Retry-After");
            }
            r.status
        })
        .collect();
    let created = statuses.iter().filter(|&&s| s == 201).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    println!("300 offers in {:?}: {created} created, {limited} limited", started.elapsed());
    assert!(created <= 60, "per-address offer limit: {created} created");
    assert!(limited >= 200, "most offers refused with 429: {limited}");
    // The attacker holds at most `sessions_per_token` (4) sessions.
    let sessions = admin_class(&server, &admin, "demo")["participants"].as_array().unwrap().len();
    assert!(sessions <= 1 + 2 + 4, "teacher + 2 watchers + at most 4 of the attacker's: {sessions}");
    // The teacher can still publish (the studio reconnecting), and the watchers keep the picture.
    let mut again = publisher(&server, &teacher);
    let after: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let republished = std::thread::spawn(move || again.run_for(Duration::from_secs(2)).map(|_| again));
    flowing("the picture to go on for the watchers", &after);
    for w in watchers {
        w.join().unwrap().unwrap();
    }
    let _ = teaching.join().unwrap().unwrap();
    let _ = republished.join().unwrap().unwrap();
}

/// Hole 3 with the per-address limit out of the way (many addresses, one token): a token
/// still holds at most four sessions, and a full class refuses other pupils on the HTTP side
/// while the teacher's place stays free.
#[test]
fn hole_3_a_token_holds_a_few_sessions_and_a_full_class_keeps_the_teachers_place() {
    let _machine = shared();
    let server = TestServer::start(&[("ARDOISE__MEDIA__MAX_PEERS_PER_CLASS", "2")]);
    let b = server.base.clone();
    let admin = server.token("admin", None);
    let teacher = server.token("teacher", Some("demo"));
    let attacker = server.join("demo", "Script");
    let sdp = recv_offer();
    let mut created = Vec::new();
    for _ in 0..40 {
        let r = send("POST", &format!("{b}/whep/demo"), Some(&attacker), Some("application/sdp"), &sdp);
        assert_eq!(r.status, 201, "{}", r.body);
        created.push(r);
    }
    let sessions = admin_class(&server, &admin, "demo")["participants"].as_array().map_or(0, Vec::len);
    assert!(sessions <= 4, "one token, at most 4 sessions (each new one replaced the oldest): {sessions}");
    // Two connected pupils fill the class; a third is refused before the media worker.
    let tokens: Vec<String> = (0..2).map(|i| server.join("demo", &format!("P{i}"))).collect();
    let mut pupils: Vec<Subscriber> =
        tokens.iter().map(|t| Subscriber::connect(&b, "demo", t, lo()).unwrap()).collect();
    for p in &mut pupils {
        p.run_for(Duration::from_millis(300)).unwrap();
    }
    let third = server.join("demo", "P3");
    let full = wait_until(Duration::from_secs(5), "the class to count its connected pupils", || {
        let r = send("POST", &format!("{b}/whep/demo"), Some(&third), Some("application/sdp"), &sdp);
        (r.status == 503).then_some(r)
    });
    assert_problem(&full, 503, "class full");
    assert!(full.retry_after.is_some());
    // The teacher publishes anyway.
    let mut p = publisher(&server, &teacher);
    p.run_for(Duration::from_millis(500)).unwrap();
    // A pupil already in (a reconnecting tablet) is never refused, even in a full class.
    let mut again = Subscriber::connect(&b, "demo", &tokens[0], lo()).expect("the same pupil reconnects");
    again.run_for(Duration::from_millis(200)).unwrap();
}

// ------------------------------------------------------------------------------------ 4

/// Hole 4: a pupil that only plays WHEP never appeared in the console, could not be removed,
/// and locking did not stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_4_every_watcher_is_seen_removable_and_locked_out() {
    let _machine = MACHINE.read().await;
    let server = TestServer::start(&with(&[]));
    let b = server.base.clone();
    let teacher = server.token("teacher", Some("demo"));
    let (mut console, _) = hello(&server, "demo", &teacher).await;
    let spy_token = server.join("demo", "Espion");
    let mut spy = {
        let (b, t) = (b.clone(), spy_token.clone());
        tokio::task::spawn_blocking(move || Subscriber::connect(&b, "demo", &t, lo()).unwrap()).await.unwrap()
    };
    // Shown in the console, with its name and as a player.
    let joined = wait_for(&mut console, "joined").await;
    assert_eq!(joined["member"]["name"], "Espion");
    assert_eq!(joined["member"]["client"], "player");
    assert_eq!(joined["member"]["sessions"], 1);
    let spy_id = joined["member"]["id"].as_str().unwrap().to_owned();
    // Removed: its sessions end, its token and the code it knew stop working.
    ws_send(&mut console, json!({"type": "remove", "pupil": spy_id})).await;
    wait_for(&mut console, "removed").await;
    let new_code = wait_for(&mut console, "code").await["code"].as_str().unwrap().to_owned();
    assert_eq!(
        send("POST", &format!("{b}/whep/demo"), Some(&spy_token), Some("application/sdp"), &recv_offer()).status,
        401
    );
    assert_eq!(join(&server, "demo", "Espion2").status, 404, "the old code is gone");
    let admin = server.token("admin", None);
    let spy_pid = spy.participant();
    let gone = tokio::task::spawn_blocking({
        let (server_admin, b) = (admin.clone(), b.clone());
        move || {
            wait_until(Duration::from_secs(5), "the removed watcher's session to end", || {
                let v = json_of(&send("GET", &format!("{b}/api/admin/classes"), Some(&server_admin), None, ""));
                let demo = v["classes"].as_array().unwrap().iter().find(|c| c["id"] == "demo").cloned().unwrap();
                (!demo["participants"].as_array().unwrap().iter().any(|p| Some(p["id"].as_u64().unwrap()) == spy_pid))
                    .then_some(())
            })
        }
    });
    gone.await.unwrap();
    spy.run_for(Duration::from_millis(10)).ok();

    // Lock: players of pupils without a page can be closed, and newcomers are refused.
    let player = join_token(&server, &new_code, "Lecteur");
    let paged = join_token(&server, &new_code, "Page");
    let (_page, _) = hello(&server, "demo", &paged).await;
    let _player = {
        let (b, t) = (b.clone(), player.clone());
        tokio::task::spawn_blocking(move || Subscriber::connect(&b, "demo", &t, lo()).unwrap()).await.unwrap()
    };
    let late = join_token(&server, &new_code, "Retard");
    loop {
        let m = wait_for(&mut console, "joined").await;
        if m["member"]["name"] == "Lecteur" {
            break;
        }
    }
    ws_send(&mut console, json!({"type": "lock", "locked": true, "close_players": true})).await;
    wait_for(&mut console, "locked").await;
    let left = loop {
        let m = next(&mut console).await.expect("console open");
        if m["type"] == "left" {
            break m;
        }
    };
    assert!(left["id"].is_string());
    let blocking = |token: String| {
        let b = b.clone();
        tokio::task::spawn_blocking(move || {
            send("POST", &format!("{b}/whep/demo"), Some(&token), Some("application/sdp"), &recv_offer())
        })
    };
    assert_eq!(blocking(late.clone()).await.unwrap().status, 423, "a pupil not in the class is refused while locked");
    assert_eq!(blocking(paged.clone()).await.unwrap().status, 201, "a pupil in the class may still reconnect");
    let mut ws = open(&server, "demo").await;
    ws_send(&mut ws, json!({"type": "hello", "token": late})).await;
    assert_eq!(next(&mut ws).await.unwrap()["code"], "forbidden", "nor may it open the class events");
}

// ------------------------------------------------------------------------------------ 5

/// Hole 5: 4,036 wrong join attempts per second from one client, never throttled.
#[test]
fn hole_5_join_codes_cannot_be_guessed_and_can_be_rotated() {
    let _machine = shared();
    let server = TestServer::start(&with(&[]));
    let b = &server.base;
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..120 {
        let r = join(&server, &format!("guess{i:04}"), "X");
        if r.status == 429 {
            assert!(r.retry_after.as_deref().is_some_and(|s| s.parse::<u32>().is_ok_and(|n| n >= 1)));
        }
        statuses.push(r.status);
    }
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    println!("120 guesses in {:?}: {limited} limited", started.elapsed());
    assert!(statuses[..50].iter().all(|&s| s == 404), "the first guesses are answered (wrong code)");
    assert!(limited >= 55, "then refused: {limited} of 120");
    // Look-ups and the QR code count too.
    assert_eq!(send("GET", &format!("{b}/api/classes/guess"), None, None, "").status, 429);
    assert_eq!(send("GET", &format!("{b}/api/classes/guess/qr.svg"), None, None, "").status, 429);
    // The teacher rotates the code: the old one stops at once.
    let other = TestServer::start(&[]);
    let admin = other.token("admin", None);
    let class = create_class(&other, &admin, "cm1");
    let teacher = class["teacher_token"].as_str().unwrap();
    let old = class["code"].as_str().unwrap();
    assert!(class["code_expires_at"].as_u64().is_some(), "created codes expire");
    let rotated = send("POST", &format!("{}/api/classes/cm1/code", other.base), Some(teacher), None, "");
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = json_of(&rotated)["code"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(join(&other, old, "A").status, 404);
    assert_eq!(join(&other, &new, "A").status, 200);
    let pupil = join_token(&other, &new, "B");
    assert_eq!(send("POST", &format!("{}/api/classes/cm1/code", other.base), Some(&pupil), None, "").status, 403);
}

// ------------------------------------------------------------------------------------ 6

/// Hole 6: 1,100 idle half-open sockets from one address took HTTP down. Now a connection
/// cap per address, and a deadline on the first bytes and the headers.
#[test]
fn hole_6_idle_sockets_are_capped_and_timed_out() {
    let _machine = shared();
    let server = TestServer::start(&with(&[
        ("ARDOISE__LIMITS__CONNECTIONS_PER_IP", "20"),
        ("ARDOISE__LIMITS__HEADER_TIMEOUT_SECS", "2"),
    ]));
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut idle: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Over the cap: answered 503 at once and closed.
    let refused = idle
        .iter_mut()
        .map(|s| {
            s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            let mut buf = [0u8; 256];
            matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 503"))
        })
        .filter(|refused| *refused)
        .count();
    assert!(refused >= 35, "connections over the per-address cap are refused: {refused} of 60");
    // A slow client sends half its headers and stalls.
    let started = Instant::now();
    let mut slow = wait_until(Duration::from_secs(10), "a free connection slot", || {
        drop(std::mem::take(&mut idle)); // give the slots back
        let mut s = TcpStream::connect(&addr).ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").ok()?;
        Some(s)
    });
    slow.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "the stalled request is closed: {text}");
    assert!(started.elapsed() < Duration::from_secs(6), "within the header timeout: {:?}", started.elapsed());
    // A silent connection is closed too.
    let mut silent = TcpStream::connect(&addr).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let t = Instant::now();
    assert_eq!(silent.read(&mut buf).unwrap_or(0), 0);
    assert!(t.elapsed() < Duration::from_secs(5), "silent connection closed after {:?}", t.elapsed());
    // And the server answers normally.
    assert_eq!(send("GET", &format!("{}/healthz", server.base), None, None, "").status, 200);
}

// ------------------------------------------------------------------------------------ 7

/// Hole 7: a pupil given the floor with the microphone only sent `m=video 0` +
/// `a=bundle-only` and was answered with a receiving video line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_7_the_floor_camera_needs_the_grant() {
    let _machine = MACHINE.read().await;
    let server = TestServer::start(&with(&[]));
    let teacher = server.token("teacher", Some("demo"));
    let pupil = server.join("demo", "Micro");
    let (mut console, _) = hello(&server, "demo", &teacher).await;
    let (mut page, w) = hello(&server, "demo", &pupil).await;
    let id = w["you"]["id"].as_str().unwrap().to_owned();
    ws_send(&mut console, json!({"type": "grant_floor", "pupil": id, "camera": false})).await;
    wait_for(&mut page, "floor").await;
    let plain = offer(&[(MediaKind::Audio, Direction::SendOnly), (MediaKind::Video, Direction::SendOnly)]);
    let hidden = hide_video(&plain);
    assert!(hidden.contains("m=video 0 ") && hidden.contains("a=bundle-only"), "{hidden}");
    let b = server.base.clone();
    let post = move |sdp: String| send("POST", &format!("{b}/whip/demo"), Some(&pupil), Some("application/sdp"), &sdp);
    let (p1, p2, p3) = {
        let post = post.clone();
        let plain2 = plain.clone();
        tokio::task::spawn_blocking(move || {
            (post(plain2), post(hidden), post(offer(&[(MediaKind::Audio, Direction::SendOnly)])))
        })
        .await
        .unwrap()
    };
    assert_problem(&p1, 403, "a plain video line without the camera grant");
    assert_problem(&p2, 403, "a video line hidden behind port 0 + bundle-only");
    assert_eq!(p3.status, 201, "audio only is what was granted");
    assert!(
        !p3.body.lines().any(|l| l.starts_with("m=video") && !l.starts_with("m=video 0 ")),
        "no video in the answer"
    );
    // With the camera granted, video is accepted.
    ws_send(&mut console, json!({"type": "grant_floor", "pupil": id, "camera": true})).await;
    loop {
        if wait_for(&mut page, "floor").await["floor"]["camera"] == true {
            break;
        }
    }
    let ok = tokio::task::spawn_blocking(move || post(plain)).await.unwrap();
    assert_eq!(ok.status, 201, "{}", ok.body);
}

/// `sdp` with its video m-line on port 0 and marked `a=bundle-only`.
fn hide_video(sdp: &str) -> String {
    sdp.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| match l.strip_prefix("m=video ") {
            Some(rest) => format!("m=video 0 {}\r\na=bundle-only\r\n", rest.split_once(' ').map_or("", |x| x.1)),
            None => format!("{l}\r\n"),
        })
        .collect()
}

// ------------------------------------------------------------------------------------ 8

/// Hole 8: revocations lived in memory (a removed pupil's token worked again after a
/// restart), teacher and admin tokens could not be revoked, and sockets outlived tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_8_revocations_persist_cover_roles_and_close_sockets() {
    let _machine = MACHINE.read().await;
    let mut server = TestServer::start(&with(&[]));
    let teacher = server.token("teacher", Some("demo"));
    let pupil = server.join("demo", "Renvoyé");
    let (mut console, _) = hello(&server, "demo", &teacher).await;
    let (_page, w) = hello(&server, "demo", &pupil).await;
    ws_send(&mut console, json!({"type": "remove", "pupil": w["you"]["id"]})).await;
    wait_for(&mut console, "removed").await;
    let status = |server: &TestServer, token: &str| {
        send("POST", &format!("{}/whep/demo", server.base), Some(token), Some("application/sdp"), &recv_offer()).status
    };
    assert_eq!(status(&server, &pupil), 401);
    tokio::task::block_in_place(|| server.restart());
    assert_eq!(tokio::task::block_in_place(|| status(&server, &pupil)), 401, "still refused after a restart");

    // Revoke every teacher token (a leak): the console is closed within seconds.
    let teacher = tokio::task::block_in_place(|| server.token("teacher", Some("demo")));
    let (mut console, _) = hello(&server, "demo", &teacher).await;
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(common::bin())
            .args(["revoke", "--role", "teacher", "--config"])
            .arg(server.data_dir.join("test.toml"))
            .envs(server.env.iter().cloned())
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let closed =
        tokio::time::timeout(Duration::from_secs(6), async { while next(&mut console).await.is_some() {} }).await;
    assert!(closed.is_ok(), "the revoked teacher's socket closes");
    assert_eq!(tokio::task::block_in_place(|| status(&server, &teacher)), 401, "the old teacher token is refused");
    let fresh = tokio::task::block_in_place(|| server.token("teacher", Some("demo")));
    assert_eq!(tokio::task::block_in_place(|| status(&server, &fresh)), 201, "a new teacher token works");

    // A socket closes when its token expires.
    let short = tokio::task::block_in_place(|| {
        let out = std::process::Command::new(common::bin())
            .args(["token", "--role", "teacher", "--class", "demo", "--ttl", "3s", "--config"])
            .arg(server.data_dir.join("test.toml"))
            .envs(server.env.iter().cloned())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    });
    let (mut ws, _) = hello(&server, "demo", &short).await;
    let t = Instant::now();
    let expired = tokio::time::timeout(Duration::from_secs(12), async {
        loop {
            match next(&mut ws).await {
                Some(m) if m["type"] == "error" => return m,
                Some(_) => continue,
                None if t.elapsed() > Duration::from_secs(10) => panic!("silent"),
                None => continue,
            }
        }
    })
    .await
    .expect("the socket of an expired token is told and closed");
    assert_eq!(expired["code"], "unauthorized");
    assert!(next(&mut ws).await.is_none());
}

// ------------------------------------------------------------------------------------ 9

/// Hole 9: a 1-byte secret with mode 0644 started silently.
#[test]
fn hole_9_a_weak_secret_is_refused_and_a_readable_one_is_made_private() {
    let _machine = shared();
    let dir = std::env::temp_dir().join(format!("ardoise-secret-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("jwt-secret");
    let serve = |env: &[(&str, &str)]| {
        std::process::Command::new(common::bin())
            .args(["token", "--role", "admin"])
            .env("ARDOISE__DATA__DIR", &dir)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    std::fs::write(&secret, "x").unwrap();
    let out = serve(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&secret, "").unwrap();
    let out = serve(&[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("empty"));
    let out = serve(&[("ARDOISE__AUTH__SECRET", "short")]);
    assert!(!out.status.success(), "a short configured secret is refused");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(serve(&[]).status.success(), "a long secret works");
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600, "and is made private");
    }
    // The server itself refuses to start on a weak secret.
    std::fs::write(&secret, "weak").unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"])
        .env("ARDOISE__DATA__DIR", &dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve refuses a weak secret");
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------------------------ 10

/// Hole 10: one teacher token created 20,000 classes in 11 s; no global session cap.
#[test]
fn hole_10_class_creation_and_sessions_are_bounded() {
    let _machine = shared();
    let server = TestServer::start(&with(&[("ARDOISE__LIMITS__CLASSES", "30"), ("ARDOISE__LIMITS__SESSIONS", "3")]));
    let b = &server.base;
    let teacher = server.token("teacher", Some("demo"));
    let statuses: Vec<u16> = (0..25)
        .map(|_| send("POST", &format!("{b}/api/classes"), Some(&teacher), Some("application/json"), "{}").status)
        .collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 20, "20 per token per hour: {statuses:?}");
    let last = send("POST", &format!("{b}/api/classes"), Some(&teacher), Some("application/json"), "{}");
    assert_problem(&last, 429, "creation quota");
    assert!(last.retry_after.is_some());
    let admin = server.token("admin", None);
    let mut full = None;
    for _ in 0..20 {
        let r = send("POST", &format!("{b}/api/classes"), Some(&admin), Some("application/json"), "{}");
        if r.status != 201 {
            full = Some(r);
            break;
        }
    }
    let full = full.expect("the class cap is reached");
    assert_problem(&full, 503, "class cap");
    // The global session cap.
    let sdp = recv_offer();
    for i in 0..3 {
        let t = server.join("demo", &format!("S{i}"));
        assert_eq!(send("POST", &format!("{b}/whep/demo"), Some(&t), Some("application/sdp"), &sdp).status, 201);
    }
    let t = server.join("demo", "S3");
    let r = send("POST", &format!("{b}/whep/demo"), Some(&t), Some("application/sdp"), &sdp);
    assert_problem(&r, 503, "global session cap");
    assert!(r.retry_after.is_some());
}

// ------------------------------------------------------------------------------- the rest

/// Only a teacher token may say `client: "studio"`; error bodies carry our words only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pupil_cannot_pose_as_the_studio_and_errors_are_generic() {
    let _machine = MACHINE.read().await;
    let server = TestServer::start(&with(&[]));
    let pupil = server.join("demo", "Faux");
    let mut ws = open(&server, "demo").await;
    ws_send(&mut ws, json!({"type": "hello", "token": pupil, "client": "studio"})).await;
    assert_eq!(next(&mut ws).await.unwrap()["code"], "forbidden");
    let b = server.base.clone();
    tokio::task::spawn_blocking(move || {
        let garbage =
            send("POST", &format!("{b}/whep/demo"), Some(&pupil), Some("application/sdp"), "v=0\r\nm=audio x\r\n");
        let bad_json =
            send("POST", &format!("{b}/api/classes/demo/join"), None, Some("application/json"), "{\"name\": 3}");
        let bad_token = send("POST", &format!("{b}/whep/demo"), Some("a.b.c"), Some("application/sdp"), "v=0");
        for r in [&garbage, &bad_json, &bad_token] {
            let detail = json_of(r)["detail"].as_str().unwrap().to_owned();
            assert!(r.status >= 400 && r.status < 500, "{}", r.body);
            assert!(
                !detail.contains("0x")
                    && !detail.contains("line")
                    && !detail.contains("column")
                    && !detail.contains("Error"),
                "{detail}"
            );
        }
    })
    .await
    .unwrap();
}

/// Refused offers do not write a log line each (a flood cannot fill the disk), and a flood
/// of /metrics requests reaches the media threads at most twice a second.
#[test]
fn floods_of_bad_offers_and_metrics_stay_cheap() {
    let _machine = shared();
    let dir = std::env::temp_dir().join(format!("ardoise-log-{}-{:?}", std::process::id(), Instant::now()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("server.log");
    let log_s = log.display().to_string();
    let server = TestServer::start(&[("ARDOISE_LOG", "info"), ("ARDOISE_TEST_LOG", &log_s)]);
    let b = &server.base;
    let pupil = server.join("demo", "Bavard");
    let before = std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    for _ in 0..200 {
        let r = send("POST", &format!("{b}/whep/demo"), Some(&pupil), Some("application/sdp"), "v=0\r\nnot sdp\r\n");
        assert_eq!(r.status, 400);
    }
    let after = std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    assert!(after - before < 10, "200 refused offers wrote {} log lines", after - before);

    let wakeups = || -> f64 {
        send("GET", &format!("{b}/metrics"), None, None, "")
            .body
            .lines()
            .filter(|l| l.starts_with("ardoise_worker_wakeups_total"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let w0 = wakeups();
    let t = Instant::now();
    for _ in 0..500 {
        assert_eq!(send("GET", &format!("{b}/metrics"), None, None, "").status, 200);
    }
    std::thread::sleep(Duration::from_millis(600)); // let the cached snapshot expire
    let w1 = wakeups();
    let secs = t.elapsed().as_secs_f64();
    // Two workers wake at least once a second on their own; snapshots add at most 2/s each.
    assert!(
        w1 - w0 < 2.0 * (1.0 + 2.0) * (secs + 1.0) + 10.0,
        "500 scrapes woke the workers {} times in {secs:.1} s",
        w1 - w0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A UDP flood of STUN for unknown sessions is dropped without a scan of the sessions, most
/// of it before parsing (over 100 a second from one source); the class goes on, and a pupil
/// joining afterwards from the flooding address connects.
#[test]
fn unknown_stun_is_dropped_limited_per_source_and_counted() {
    let _machine = shared();
    let server = TestServer::start(&[]);
    let teacher = server.token("teacher", Some("demo"));
    let mut p = publisher(&server, &teacher);
    let mut pupil =
        Subscriber::connect_with_layer(&server.base, "demo", &server.join("demo", "Vue"), lo(), Some("high")).unwrap();
    let media = server.media.clone();
    let flood = std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        for i in 0..20_000u32 {
            let ufrag = format!("zz{i:06}:peer");
            let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
            m.extend_from_slice(&i.to_be_bytes());
            m.extend_from_slice(&[7u8; 8]);
            let mut attr = vec![0x00, 0x06, 0x00, ufrag.len() as u8];
            attr.extend_from_slice(ufrag.as_bytes());
            while attr.len() % 4 != 0 {
                attr.push(0);
            }
            let len = attr.len() as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            m.extend_from_slice(&attr);
            let _ = sock.send_to(&m, media[i as usize % media.len()]);
            if i % 64 == 0 {
                std::thread::sleep(Duration::from_millis(1)); // let the kernel buffer drain
            }
        }
    });
    let t = std::thread::spawn(move || {
        p.run_for(Duration::from_secs(3)).unwrap();
        p
    });
    pupil.run_for(Duration::from_secs(3)).unwrap();
    flood.join().unwrap();
    assert!(pupil.report.video.len() > 150, "the class goes on: {} video packets", pupil.report.video.len());
    let unknown = common::metric(&server, "ardoise_datagrams_unknown_total");
    assert!(unknown >= 10_000.0, "unknown STUN counted as dropped: {unknown}");
    let limited = common::metric(&server, "ardoise_datagrams_unknown_limited_total");
    assert!(limited >= unknown / 2.0, "most of one source's flood is dropped unparsed: {limited} of {unknown}");
    // The flooding address starts a session from another socket like anyone.
    let from_flooder: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut late =
        Subscriber::connect_with_layer(&server.base, "demo", &server.join("demo", "Tard"), from_flooder, Some("high"))
            .expect("a pupil from the flooding address connects once its window passed");
    let mut p = t.join().unwrap();
    let publishing = std::thread::spawn(move || p.run_for(Duration::from_secs(2)));
    late.run_for(Duration::from_secs(2)).unwrap();
    publishing.join().unwrap().unwrap();
    assert!(!late.report.video.is_empty(), "the late pupil gets the class");
}

// ------------------------------------------------------------------- the flood, measured

/// Quantile `q` of `v` (sorted in place).
fn quantile(v: &mut [f32], q: f64) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The server's forwarding-delay histogram, summed over workers: (upper bound s, cumulative).
fn forward_delay_buckets(base: &str) -> Vec<(f64, f64)> {
    let body = send("GET", &format!("{base}/metrics"), None, None, "").body;
    let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
    for l in body.lines().filter(|l| l.starts_with("ardoise_forward_delay_seconds_bucket")) {
        let le = l.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
        *sums.entry(le).or_default() += l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    }
    let mut v: Vec<(f64, f64)> =
        sums.into_iter().map(|(le, n)| (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, n)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Quantile `q` (ms, a bucket's upper bound) of the packets forwarded between two scrapes.
fn window_quantile_ms(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let delta: Vec<(f64, f64)> = after.iter().zip(before).map(|(a, b)| (a.0, a.1 - b.1)).collect();
    let total = delta.last().map_or(0.0, |d| d.1);
    delta.iter().find(|(_, n)| *n >= q * total).map_or(f64::NAN, |(le, _)| le * 1000.0)
}

/// Issue 11's measure: a class of 10 pupils watches while one pupil token floods WHEP
/// offers. The teacher's WHIP is still accepted, and the forwarding delay stays within 2× its
/// quiet value (plus 2 ms for a loaded shared box). `cargo test --release --test security
/// flood -- --nocapture` prints the figures for benches/RESULTS.md; `FLOOD_LIMITS=off`
/// lifts the per-address and per-token offer limits to show what they buy (not asserted).
#[test]
fn flood_of_offers_keeps_the_class_delay() {
    let _alone = MACHINE.blocking_write();
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
    let limits_off = std::env::var("FLOOD_LIMITS").is_ok_and(|v| v == "off");
    let lifted =
        [("ARDOISE__LIMITS__OFFERS_PER_IP_PER_MINUTE", "100000"), ("ARDOISE__LIMITS__PENDING_PER_CLASS", "1000")];
    let server = TestServer::start(&with(if limits_off { &lifted } else { &[] }));
    let b = server.base.clone();
    let teacher = server.token("teacher", Some("demo"));
    let mut teaching = publisher(&server, &teacher);
    let phase = Arc::new(AtomicU8::new(0)); // 0 warm-up, 1 quiet, 2 flood, 3 done
    let teaching = {
        let phase = phase.clone();
        std::thread::spawn(move || teaching.run_until(|| phase.load(Ordering::Relaxed) == 3).map(|_| teaching))
    };
    let counters: Vec<Arc<AtomicU64>> = (0..10).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let pupils: Vec<_> = counters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut p =
                Subscriber::connect_with_layer(&b, "demo", &server.join("demo", &format!("P{i}")), lo(), Some("high"))
                    .expect("pupil WHEP");
            p.rtp_counter = Some(c.clone());
            let phase = phase.clone();
            std::thread::spawn(move || {
                let mut marks = Vec::new();
                for until in 1..=3u8 {
                    p.run_until(|| phase.load(Ordering::Relaxed) >= until).unwrap();
                    marks.push(p.report.frame_delays_ms.len());
                }
                (marks, p.report.frame_delays_ms)
            })
        })
        .collect();
    wait_until(Duration::from_secs(5), "every pupil to see the class", || {
        counters.iter().all(|c| c.load(Ordering::Relaxed) > 100).then_some(())
    });
    // Quiet window (a measurement window: its length is the point, not a synchronisation).
    phase.store(1, Ordering::Relaxed);
    let h0 = forward_delay_buckets(&b);
    std::thread::sleep(Duration::from_secs(4));
    let h1 = forward_delay_buckets(&b);
    // Flood window: one pupil token, as fast as a client can, for as long as the quiet one.
    phase.store(2, Ordering::Relaxed);
    let attacker = server.join("demo", "Script");
    let sdp = recv_offer();
    let started = Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_secs(4) {
        statuses.push(send("POST", &format!("{b}/whep/demo"), Some(&attacker), Some("application/sdp"), &sdp).status);
    }
    let h2 = forward_delay_buckets(&b);
    // Right after the flood, while the address is still refused, the studio reconnects from
    // it: its WHIP is accepted (it then takes over the class: outside the measured windows).
    // (The token bucket lets one offer through per second: probe until a refusal.)
    let attacker_before = (0..100)
        .map(|_| send("POST", &format!("{b}/whep/demo"), Some(&attacker), Some("application/sdp"), &sdp).status)
        .find(|&s| s == 429)
        .unwrap_or(201);
    let teacher_ok = Publisher::connect(&publisher_config(&b, &teacher)).map(|p| p.resource().to_owned());
    phase.store(3, Ordering::Relaxed);
    let mut quiet = Vec::new();
    let mut flood = Vec::new();
    for p in pupils {
        let (marks, delays) = p.join().unwrap();
        quiet.extend_from_slice(&delays[marks[0]..marks[1]]);
        flood.extend_from_slice(&delays[marks[1]..marks[2]]);
    }
    let _ = teaching.join().unwrap().unwrap();
    let created = statuses.iter().filter(|&&s| s == 201).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    let (q50, q95) = (quantile(&mut quiet, 0.5), quantile(&mut quiet, 0.95));
    let (f50, f95) = (quantile(&mut flood, 0.5), quantile(&mut flood, 0.95));
    let (sq50, sq99) = (window_quantile_ms(&h0, &h1, 0.5), window_quantile_ms(&h0, &h1, 0.99));
    let (sf50, sf99) = (window_quantile_ms(&h1, &h2, 0.5), window_quantile_ms(&h1, &h2, 0.99));
    println!(
        "FLOOD limits={} offers={} created={created} limited={limited} teacher_whip_ok={} (attacker's address then {attacker_before}) | \
         pupils' frame delay p50/p95 ms: quiet {q50:.2}/{q95:.2} ({} frames), flood {f50:.2}/{f95:.2} ({} frames) | \
         server forwarding delay p50/p99 ms: quiet {sq50:.3}/{sq99:.3}, flood {sf50:.3}/{sf99:.3}",
        if limits_off { "off" } else { "shipped" },
        statuses.len(),
        teacher_ok.is_ok(),
        quiet.len(),
        flood.len()
    );
    assert!(teacher_ok.is_ok(), "the teacher's WHIP is accepted: {teacher_ok:?}");
    if !limits_off {
        assert_eq!(attacker_before, 429, "while the attacker's offers are still refused");
    }
    if !limits_off {
        assert!(f95 <= 2.0 * q95 + 2.0, "pupils' frame delay p95: quiet {q95:.2} ms, flood {f95:.2} ms");
        // The server's own delay: p95 within the same bound; p99 only against a collapse, since
        // on two cores a debug build flooded at ~6,000 offers/s can lose a core for ~10 ms
        // (seen once in a clean-clone CI run while the pupils' frame delay held: 1.49 → 1.71 ms).
        let (sq95, sf95) = (window_quantile_ms(&h0, &h1, 0.95), window_quantile_ms(&h1, &h2, 0.95));
        assert!(sf95 <= 2.0 * sq95 + 2.0, "server forwarding delay p95: quiet {sq95:.3} ms, flood {sf95:.3} ms");
        assert!(sf99 <= 2.0 * sq99 + 20.0, "server forwarding delay p99: quiet {sq99:.3} ms, flood {sf99:.3} ms");
        assert!(
            flood.len() as f64 > 0.8 * quiet.len() as f64,
            "no frame lost to the flood: {} vs {}",
            flood.len(),
            quiet.len()
        );
    }
}
