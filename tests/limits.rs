//! One test per limit on the server's doors (docs/SECURITY.md, "Limits on every door"): each
//! proves that the refusal arrives as a problem+json 429 or 503 with `Retry-After`, that
//! everyone else is unaffected (another address, another token or class, and a live class
//! whose pupil keeps receiving the teacher's video), and that service returns once the
//! window has passed or a place is freed.
//!
//! Clients pose as different addresses through `X-Forwarded-For`, the server trusting
//! loopback as its reverse proxy (`http.trusted_proxies`), exactly as behind nginx. Windows
//! are set to `60 / min` so that one place comes back each second.

mod common;

use ardoise_loadgen::{Publisher, PublisherConfig, Subscriber};
use common::{Reply, TestServer, assert_problem, lo, recv_offer, send_with, wait_until};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A class in progress: the teacher publishes from loopback and one pupil watches, each on
/// its own thread for the whole test, as real clients do.
struct LiveClass {
    server: TestServer,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Video packets the watching pupil received so far.
    watched: Arc<AtomicUsize>,
}

impl LiveClass {
    /// A server trusting loopback as its proxy, with these `ARDOISE__…` settings.
    fn start(env: &[(&str, &str)]) -> LiveClass {
        let mut all = vec![("ARDOISE__HTTP__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)];
        all.extend_from_slice(env);
        let server = TestServer::start(&all);
        let config = PublisherConfig {
            server: server.base.clone(),
            class: "demo".into(),
            token: server.token("teacher", Some("demo")),
            bind: lo(),
            simulcast: true,
            record_payloads: false,
        };
        let mut publisher = Publisher::connect(&config).expect("the teacher publishes");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let publishing = std::thread::spawn(move || {
            publisher.run_until(|| flag.load(Ordering::Relaxed)).expect("the teacher keeps publishing");
        });
        let token = server.join("demo", "Vue");
        let mut pupil = Subscriber::connect_with_layer(&server.base, "demo", &token, lo(), Some("low")).unwrap();
        let watched = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), watched.clone());
        let watching = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                pupil.run_for(Duration::from_millis(100)).expect("the pupil keeps watching");
                count.store(pupil.report.video.len(), Ordering::Relaxed);
            }
        });
        LiveClass { server, stop, threads: vec![publishing, watching], watched }
    }

    /// The pupil keeps receiving video (checked after each refusal).
    fn pupil_still_watches(&mut self) {
        let before = self.watched.load(Ordering::Relaxed);
        let watched = self.watched.clone();
        wait_until(Duration::from_secs(3), "the watching pupil to receive 10 more video packets", || {
            (watched.load(Ordering::Relaxed) >= before + 10).then_some(())
        });
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }
}

impl Drop for LiveClass {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A request from `ip` (through the trusted proxy).
fn from(ip: &str, method: &str, url: &str, token: Option<&str>, content_type: &str, body: &str) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("X-Forwarded-For", ip), ("Content-Type", content_type)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    send_with(method, url, &headers, body).0
}

/// Repeat `attempt` until it is refused with `status`: it must come after `allowed` accepted
/// attempts (give or take the places that came back while they ran: one a second at 60 a
/// minute, so at most 20 more on a busy machine), with `Retry-After`. Returns `Retry-After`
/// in seconds.
fn refused_after(allowed: usize, status: u16, what: &str, mut attempt: impl FnMut(usize) -> Reply) -> u64 {
    for i in 0..=allowed + 20 {
        let r = attempt(i);
        if r.status == status {
            assert!(i >= allowed.saturating_sub(1), "{what}: refused after only {i} of {allowed}: {}", r.body);
            assert_problem(&r, status, what);
            let secs: u64 = r.retry_after.as_deref().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                panic!("{what}: a {status} says when to retry ({:?})", r.retry_after);
            });
            assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
            return secs;
        }
        assert!(r.status < 500 && r.status != 429, "{what}: attempt {i} refused early: {} {}", r.status, r.body);
    }
    panic!("{what}: no {status} after {} attempts", allowed + 21);
}

/// Poll `attempt` until it is no longer refused with `status`, within `retry_after` + 2 s.
fn returns_within(retry_after: u64, status: u16, what: &str, mut attempt: impl FnMut() -> Reply) -> Reply {
    let started = Instant::now();
    let r = wait_until(Duration::from_secs(retry_after + 2), what, || {
        let r = attempt();
        (r.status != status).then_some(r)
    });
    eprintln!("{what}: service returned after {:?} (Retry-After {retry_after})", started.elapsed());
    r
}

/// An offer refused for its content (400) after every limit counted it.
const EMPTY_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

#[test]
fn offers_per_address() {
    let mut class = LiveClass::start(&[("ARDOISE__LIMITS__OFFERS_PER_IP_PER_MINUTE", "60")]);
    let tokens: Vec<String> = (0..62).map(|i| class.server.join("demo", &format!("P{i}"))).collect();
    let whep = class.url("/whep/demo");
    let retry = refused_after(60, 429, "offers from one address", |i| {
        from("198.51.100.1", "POST", &whep, Some(&tokens[i]), "application/sdp", EMPTY_OFFER)
    });
    let other = from("198.51.100.2", "POST", &whep, Some(&tokens[61]), "application/sdp", EMPTY_OFFER);
    assert_eq!(other.status, 400, "another address is not limited: {}", other.body);
    class.pupil_still_watches();
    let back = returns_within(retry, 429, "offers from the limited address", || {
        from("198.51.100.1", "POST", &whep, Some(&tokens[60]), "application/sdp", EMPTY_OFFER)
    });
    assert_eq!(back.status, 400, "{}", back.body);
}

#[test]
fn offers_per_token() {
    let mut class = LiveClass::start(&[("ARDOISE__LIMITS__OFFERS_PER_IP_PER_MINUTE", "60")]);
    let (token, other) = (class.server.join("demo", "Script"), class.server.join("demo", "Autre"));
    let whep = class.url("/whep/demo");
    // Each offer from its own address: only the token's bucket empties.
    let retry = refused_after(60, 429, "offers with one token", |i| {
        from(&format!("198.51.100.{}", 10 + i), "POST", &whep, Some(&token), "application/sdp", EMPTY_OFFER)
    });
    let r = from("198.51.100.200", "POST", &whep, Some(&other), "application/sdp", EMPTY_OFFER);
    assert_eq!(r.status, 400, "another token is not limited: {}", r.body);
    class.pupil_still_watches();
    returns_within(retry, 429, "offers with the limited token", || {
        from("198.51.100.201", "POST", &whep, Some(&token), "application/sdp", EMPTY_OFFER)
    });
}

#[test]
fn concurrent_sessions_per_address() {
    let mut class =
        LiveClass::start(&[("ARDOISE__LIMITS__SESSIONS_PER_IP", "3"), ("ARDOISE__MEDIA__CONNECT_TIMEOUT_SECS", "2")]);
    let whep = class.url("/whep/demo");
    let tokens: Vec<String> = (0..5).map(|i| class.server.join("demo", &format!("S{i}"))).collect();
    let mut resources = Vec::new();
    let retry = refused_after(3, 429, "sessions from one address", |i| {
        let r = from("198.51.100.1", "POST", &whep, Some(&tokens[i]), "application/sdp", &recv_offer());
        if r.status == 201 {
            resources.push(i);
        }
        r
    });
    assert_eq!(resources.len(), 3);
    let r = from("198.51.100.2", "POST", &whep, Some(&tokens[4]), "application/sdp", &recv_offer());
    assert_eq!(r.status, 201, "another address opens a session: {}", r.body);
    // The class's studio behind the same school address is not refused for its neighbours'
    // sessions: its offer reaches the media (which refuses this empty one for its content).
    let teacher = class.server.token("teacher", Some("demo"));
    let r = from("198.51.100.1", "POST", &class.url("/whip/demo"), Some(&teacher), "application/sdp", EMPTY_OFFER);
    assert_eq!(r.status, 400, "the studio is not counted against its address: {}", r.body);
    class.pupil_still_watches();
    // A place is freed when a session ends (here: its peer never connects and is dropped
    // after the connect timeout of 2 s).
    returns_within(retry.max(3), 429, "a session from the address, once one ended", || {
        from("198.51.100.1", "POST", &whep, Some(&tokens[3]), "application/sdp", &recv_offer())
    });
}

#[test]
fn sessions_on_the_server_and_connecting_in_a_class() {
    // Two places on the server beyond the teacher and the watching pupil.
    let mut class =
        LiveClass::start(&[("ARDOISE__LIMITS__SESSIONS", "4"), ("ARDOISE__MEDIA__CONNECT_TIMEOUT_SECS", "2")]);
    let whep = class.url("/whep/demo");
    let tokens: Vec<String> = (0..4).map(|i| class.server.join("demo", &format!("T{i}"))).collect();
    let retry = refused_after(2, 503, "sessions on the server", |i| {
        from(&format!("198.51.100.{}", 1 + i), "POST", &whep, Some(&tokens[i]), "application/sdp", &recv_offer())
    });
    class.pupil_still_watches();
    // The two silent sessions are dropped after the connect timeout: places come back.
    let r = returns_within(retry.max(3), 503, "a session once silent ones were dropped", || {
        from("198.51.100.9", "POST", &whep, Some(&tokens[3]), "application/sdp", &recv_offer())
    });
    assert_eq!(r.status, 201, "{}", r.body);
    drop(class);

    let mut class =
        LiveClass::start(&[("ARDOISE__LIMITS__PENDING_PER_CLASS", "2"), ("ARDOISE__MEDIA__CONNECT_TIMEOUT_SECS", "2")]);
    let whep = class.url("/whep/demo");
    let tokens: Vec<String> = (0..4).map(|i| class.server.join("demo", &format!("C{i}"))).collect();
    let retry = refused_after(2, 503, "sessions connecting in one class", |i| {
        from(&format!("198.51.100.{}", 1 + i), "POST", &whep, Some(&tokens[i]), "application/sdp", &recv_offer())
    });
    class.pupil_still_watches();
    let r = returns_within(retry.max(3), 503, "a connecting session once silent ones were dropped", || {
        from("198.51.100.9", "POST", &whep, Some(&tokens[3]), "application/sdp", &recv_offer())
    });
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Open a class-events socket from `ip`: the refusal's status and `Retry-After` if refused.
async fn socket_from(base: &str, ip: &str) -> Result<common::ws::Ws, (u16, u64)> {
    let mut req = format!("{}/ws/demo", base.replace("http://", "ws://")).into_client_request().unwrap();
    req.headers_mut().insert("x-forwarded-for", ip.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(r)) => {
            let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
            Err((r.status().as_u16(), retry))
        }
        Err(e) => panic!("websocket from {ip}: {e}"),
    }
}

#[test]
fn websockets_per_address() {
    let mut class = LiveClass::start(&[("ARDOISE__LIMITS__WEBSOCKETS_PER_IP", "3")]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let base = class.server.base.clone();
    let mut open = rt.block_on(async {
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(socket_from(&base, "198.51.100.1").await.unwrap_or_else(|e| panic!("refused early: {e:?}")));
        }
        open
    });
    let refused = rt.block_on(socket_from(&base, "198.51.100.1"));
    let Err((status, retry)) = refused else { panic!("a fourth socket from one address is refused") };
    assert_eq!(status, 429);
    assert!(retry >= 1, "the refusal says when to retry");
    assert!(rt.block_on(socket_from(&base, "198.51.100.2")).is_ok(), "another address opens a socket");
    class.pupil_still_watches();
    // Closing one gives its place back.
    drop(open.pop());
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(retry + 2);
        loop {
            match socket_from(&base, "198.51.100.1").await {
                Ok(_) => break,
                Err(e) => assert!(Instant::now() < deadline, "a socket once one closed: still {e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn websockets_per_token_in_a_class() {
    let mut class = LiveClass::start(&[("ARDOISE__LIMITS__WEBSOCKETS_PER_TOKEN", "2")]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let teacher = class.server.token("teacher", Some("demo"));
    let server = &class.server;
    let mut open = rt.block_on(async {
        let mut open = Vec::new();
        for _ in 0..2 {
            open.push(common::ws::hello(server, "demo", &teacher).await.0);
        }
        open
    });
    // A third socket with the same token: refused at its hello, and closed.
    let (code, closed) = rt.block_on(async {
        let mut ws = common::ws::open(server, "demo").await;
        common::ws::send(&mut ws, json!({"type": "hello", "token": teacher})).await;
        let m = common::ws::next(&mut ws).await.expect("an answer to the hello");
        (m["code"].clone(), common::ws::next(&mut ws).await.is_none())
    });
    assert_eq!(code, "rate_limited", "a third socket with one token");
    assert!(closed, "the refused socket is closed");
    // Another holder, and the token's open sockets, are not disturbed.
    let admin = server.token("admin", None);
    let (_admin_ws, welcome) = rt.block_on(common::ws::hello(server, "demo", &admin));
    assert_eq!(welcome["you"]["role"], "admin");
    rt.block_on(async {
        common::ws::send(&mut open[0], json!({"type": "ping"})).await;
        assert_eq!(common::ws::wait_for(&mut open[0], "pong").await["type"], "pong");
    });
    class.pupil_still_watches();
    // Closing one gives its place back.
    drop(open.pop());
    common::eventually(Duration::from_secs(5), || {
        rt.block_on(async {
            let mut ws = common::ws::open(&class.server, "demo").await;
            common::ws::send(&mut ws, json!({"type": "hello", "token": teacher})).await;
            let m = common::ws::next(&mut ws).await.unwrap_or_default();
            if m["type"] == "welcome" { Ok(()) } else { Err(format!("still refused: {m}")) }
        })
    });
}

fn join_from(base: &str, ip: &str, code: &str) -> Reply {
    let body = json!({"name": "Essai"}).to_string();
    from(ip, "POST", &format!("{base}/api/classes/{code}/join"), None, "application/json", &body)
}

#[test]
fn joins_per_address_and_per_class() {
    let mut class = LiveClass::start(&[
        ("ARDOISE__LIMITS__JOINS_PER_IP_PER_MINUTE", "30"),
        ("ARDOISE__LIMITS__JOINS_PER_CLASS_PER_MINUTE", "100"),
    ]);
    let base = class.server.base.clone();
    let retry = refused_after(30, 429, "joins from one address", |_| join_from(&base, "198.51.100.1", "demo"));
    assert_eq!(join_from(&base, "198.51.100.2", "demo").status, 200, "another address joins");
    class.pupil_still_watches();
    returns_within(retry, 429, "joins from the limited address", || join_from(&base, "198.51.100.1", "demo"));

    // A class's own bucket, whatever the addresses: a second class, fresh.
    let admin = class.server.token("admin", None);
    let body = json!({"id": "cm1-b", "title": "CM1 B"}).to_string();
    let r = send_with(
        "POST",
        &class.url("/api/classes"),
        &[("Authorization", &format!("Bearer {admin}")), ("Content-Type", "application/json")],
        &body,
    )
    .0;
    assert_eq!(r.status, 201, "{}", r.body);
    let code = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["code"].as_str().unwrap().to_owned();
    let retry = refused_after(100, 429, "joins into one class", |i| {
        join_from(&base, &format!("198.51.{}.{}", 101 + i / 200, 1 + i % 200), &code)
    });
    assert_eq!(join_from(&base, "198.51.120.1", "demo").status, 200, "another class is joined");
    class.pupil_still_watches();
    returns_within(retry, 429, "joins into the class", || join_from(&base, "198.51.110.1", &code));
}

fn login_from(base: &str, ip: &str, email: &str, password: &str) -> Reply {
    let body = json!({"email": email, "password": password}).to_string();
    from(ip, "POST", &format!("{base}/api/login"), None, "application/json", &body)
}

#[test]
fn logins_per_address_and_per_account() {
    let mut class = LiveClass::start(&[
        ("ARDOISE__ACCOUNTS__LOGINS_PER_IP_PER_MINUTE", "60"),
        ("ARDOISE__ACCOUNTS__LOGINS_PER_ACCOUNT_PER_MINUTE", "60"),
    ]);
    let password = "un mot de passe assez long";
    for email in ["a@ecole.fr", "b@ecole.fr"] {
        class
            .server
            .cli(&["user", "add", "--email", email, "--role", "admin", "--password-stdin"], &format!("{password}\n"))
            .unwrap();
    }
    let base = class.server.base.clone();
    // Guessing one account's password from many addresses.
    let retry = refused_after(60, 429, "logins for one account", |i| {
        login_from(&base, &format!("198.51.100.{}", 1 + i), "a@ecole.fr", "pas le bon mot de passe")
    });
    let r = login_from(&base, "198.51.100.250", "a@ecole.fr", password);
    assert_eq!(r.status, 429, "the right password waits too: {}", r.body);
    assert_eq!(login_from(&base, "198.51.100.251", "b@ecole.fr", password).status, 200, "another account logs in");
    class.pupil_still_watches();
    let r = returns_within(retry, 429, "logins for the limited account", || {
        login_from(&base, "198.51.100.252", "a@ecole.fr", password)
    });
    assert_eq!(r.status, 200, "{}", r.body);

    // Trying many accounts from one address.
    let retry = refused_after(60, 429, "logins from one address", |i| {
        login_from(&base, "203.0.113.1", &format!("x{i}@ecole.fr"), "pas le bon mot de passe")
    });
    assert_eq!(login_from(&base, "203.0.113.2", "b@ecole.fr", password).status, 200, "another address logs in");
    returns_within(retry, 429, "logins from the limited address", || {
        login_from(&base, "203.0.113.1", "b@ecole.fr", password)
    });
}

#[test]
fn offer_size_and_m_lines_are_capped() {
    let mut class = LiveClass::start(&[]);
    let whep = class.url("/whep/demo");
    let token = class.server.join("demo", "Gros");
    let offer = recv_offer();
    // More m-lines than any client needs: 400 before str0m parses it.
    let extra: String =
        (0..16).map(|i| format!("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:x{i}\r\na=recvonly\r\n")).collect();
    let many = format!("{offer}{extra}");
    let r = from("198.51.100.1", "POST", &whep, Some(&token), "application/sdp", &many);
    assert_problem(&r, 400, "an offer with 18 m-lines");
    assert!(r.body.contains("m-lines"), "{}", r.body);
    // Larger than an offer can be, within the body limit: 400 (beyond the 64 KiB body
    // limit it is 413 before the SFU sees it: tests/bad_input.rs).
    let big = format!("{offer}a=x-pad:{}\r\n", "x".repeat(40 * 1024));
    assert_problem(&from("198.51.100.1", "POST", &whep, Some(&token), "application/sdp", &big), 400, "a 40 KiB offer");
    class.pupil_still_watches();
    let r = from("198.51.100.1", "POST", &whep, Some(&token), "application/sdp", &offer);
    assert_eq!(r.status, 201, "the same pupil with a normal offer: {}", r.body);
}
