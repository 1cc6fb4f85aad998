//! Fault injection against the real binary, each with its effect on the other pupils measured
//! (the figures are printed as `FAULT …` lines and kept in benches/RESULTS.md):
//!
//! - the studio frozen by `kill -STOP` for 5 s, then `kill -CONT`;
//! - a pupil whose ICE-TCP socket stops reading;
//! - the server's data directory made read-only under it (root: a private mount namespace);
//! - a panic inside a str0m call for one peer (`media.fault_injection`);
//! - a tablet that vanishes without a goodbye, its UDP port then given to another pupil (a
//!   reused port, a carrier NAT's mapping): that pupil connects at once;
//! - the server restarted mid-lesson: a session id from before (the studio's DELETE of its
//!   old session, a page's close on reconnect) never closes a new session;
//! - a panic in a media worker's loop: the worker is replaced, its class told to reconnect,
//!   the class on the other worker never notices. (The pupil page reconnecting by itself is
//!   `tests/web_apps.rs`, step 9.)
//!
//! The pupils run on their own threads for the whole test, as real clients do.

mod common;

use ardoise_loadgen::{Publisher, PublisherConfig, Subscriber};
use common::{TestServer, bin, free_port, lo, metric, send, wait_until};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The faults share the machine one at a time: each measures delays.
static MACHINE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A pupil on its own thread until `stop`; `seen` counts its video packets.
struct Watcher {
    thread: JoinHandle<Subscriber>,
    seen: Arc<AtomicUsize>,
}

fn watch(mut pupil: Subscriber, stop: &Arc<AtomicBool>) -> Watcher {
    let (stop, seen) = (stop.clone(), Arc::new(AtomicUsize::new(0)));
    let count = seen.clone();
    let thread = std::thread::spawn(move || {
        // A session the server closed ends the loop; the gaps and rates measured tell.
        while !stop.load(Ordering::Relaxed) && pupil.run_for(Duration::from_millis(50)).is_ok() {
            count.store(pupil.report.video.len(), Ordering::Relaxed);
        }
        pupil
    });
    Watcher { thread, seen }
}

fn pupil(server: &TestServer, class: &str, code: &str, name: &str) -> Subscriber {
    let token = server.join(code, name);
    Subscriber::connect_with_layer(&server.base, class, &token, lo(), Some("low")).expect("WHEP")
}

/// The teacher publishing `class` on its own thread until `stop`.
fn publish(server: &TestServer, class: &str, token: &str, stop: &Arc<AtomicBool>) -> JoinHandle<()> {
    publish_at(server, class, token, stop).0
}

/// The same, with its WHIP resource URL.
fn publish_at(server: &TestServer, class: &str, token: &str, stop: &Arc<AtomicBool>) -> (JoinHandle<()>, String) {
    let config = PublisherConfig {
        server: server.base.clone(),
        class: class.into(),
        token: token.to_owned(),
        bind: lo(),
        simulcast: true,
        record_payloads: false,
    };
    let mut p = Publisher::connect(&config).expect("the teacher publishes");
    let resource = p.resource().to_owned();
    let stop = stop.clone();
    let thread = std::thread::spawn(move || {
        // After a worker panic the publisher's session is gone: it stops with an error then.
        let _ = p.run_until(|| stop.load(Ordering::Relaxed));
    });
    (thread, resource)
}

/// Whether the server still holds the WHIP/WHEP session at `resource`: an empty trickle
/// PATCH asks without changing anything (404 once it is gone).
fn session_held(server: &TestServer, resource: &str, token: &str) -> bool {
    let url = ardoise_client::http::resolve(&server.base, resource);
    let (r, _) = common::send_with(
        "PATCH",
        &url,
        &[("Authorization", &format!("Bearer {token}")), ("Content-Type", "application/trickle-ice-sdpfrag")],
        "",
    );
    r.status != 404
}

/// Wait until every watcher received `more` video packets beyond what it had.
fn all_receive(watchers: &[Watcher], more: usize, within: Duration, what: &str) {
    let base: Vec<usize> = watchers.iter().map(|w| w.seen.load(Ordering::Relaxed)).collect();
    wait_until(within, what, || {
        watchers.iter().zip(&base).all(|(w, b)| w.seen.load(Ordering::Relaxed) >= b + more).then_some(())
    });
}

/// The longest time without a video packet between `from` and `to`.
fn longest_gap(p: &Subscriber, from: Instant, to: Instant) -> Duration {
    let mut times: Vec<Instant> = p.report.video.iter().map(|v| v.at).filter(|&t| t >= from && t <= to).collect();
    times.sort();
    let mut gap = times.first().map_or(to - from, |&t| t - from);
    for w in times.windows(2) {
        gap = gap.max(w[1] - w[0]);
    }
    gap.max(times.last().map_or(Duration::ZERO, |&t| to - t))
}

/// Video packets per second between `from` and `to`.
fn rate(p: &Subscriber, from: Instant, to: Instant) -> f64 {
    p.report.video.iter().filter(|v| v.at >= from && v.at < to).count() as f64 / (to - from).as_secs_f64()
}

fn admin_overview(server: &TestServer, admin: &str) -> Value {
    let r = send("GET", &format!("{}/api/admin/classes", server.base), Some(admin), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

fn participants(server: &TestServer, admin: &str, class: &str) -> Vec<u64> {
    admin_overview(server, admin)["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == class)
        .map(|c| c["participants"].as_array().unwrap().iter().filter_map(|p| p["id"].as_u64()).collect())
        .unwrap_or_default()
}

fn stop_all(stop: &Arc<AtomicBool>, watchers: Vec<Watcher>) -> Vec<Subscriber> {
    stop.store(true, Ordering::Relaxed);
    watchers.into_iter().map(|w| w.thread.join().expect("a pupil thread")).collect()
}

struct StudioProcess(Child);

impl Drop for StudioProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0.id().to_string()]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill");
    assert!(ok.success(), "kill {sig} {pid}");
}

#[test]
fn the_studio_frozen_for_5_s_comes_back_and_no_pupil_is_dropped() {
    let _alone = alone();
    let server = TestServer::start(&[]);
    let (teacher, admin) = (server.token("teacher", Some("demo")), server.token("admin", None));
    let control = format!("127.0.0.1:{}", free_port());
    let studio = StudioProcess(
        Command::new(bin())
            .args(["studio", "--server", &server.base, "--class", "demo", "--token", &teacher])
            .env("ARDOISE__STUDIO__CONTROL", &control)
            .env("ARDOISE__STUDIO__SPEAKER", "none")
            .env("ARDOISE__STUDIO__LAYERS", r#"["h:640x360@30:500", "l:320x180@15:150"]"#)
            .env("ARDOISE__STUDIO__CONTENT_LAYERS", r#"["h:640x360@30:500", "l:320x180@15:150"]"#)
            .env("ARDOISE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the studio"),
    );
    let state = format!("http://{control}/state");
    wait_until(Duration::from_secs(20), "the studio to publish", || {
        let v: Value = serde_json::from_str(&ureq::get(&state).call().ok()?.into_string().ok()?).ok()?;
        (v["connected"] == true).then_some(())
    });
    let stop = Arc::new(AtomicBool::new(false));
    let watchers: Vec<Watcher> =
        (0..3).map(|i| watch(pupil(&server, "demo", "demo", &format!("P{i}")), &stop)).collect();
    all_receive(&watchers, 20, Duration::from_secs(10), "the pupils to receive the studio");
    let before = participants(&server, &admin, "demo");

    let frozen = Instant::now();
    signal(studio.0.id(), "-STOP");
    std::thread::sleep(Duration::from_secs(5)); // the fault itself: 5 s frozen
    let thawed = Instant::now();
    signal(studio.0.id(), "-CONT");
    all_receive(&watchers, 10, Duration::from_secs(15), "the pupils to receive the studio again");
    let back_all = thawed.elapsed();
    let after = participants(&server, &admin, "demo");
    let pupils = stop_all(&stop, watchers);
    let back: Vec<Duration> = pupils
        .iter()
        .map(|p| p.report.video.iter().map(|v| v.at).filter(|&t| t > thawed).min().map_or(back_all, |t| t - thawed))
        .collect();
    let during = pupils.iter().map(|p| rate(p, frozen + Duration::from_millis(500), thawed)).fold(0.0, f64::max);
    println!(
        "FAULT studio_stop_5s: pupils' video back {:?} after SIGCONT (all 3 within {back_all:?}); \
         video during the freeze {during:.1} pkt/s; pupils' sessions kept: {}",
        back,
        pupils.iter().all(|p| p.participant().is_some_and(|id| after.contains(&id)))
    );
    assert!(back_all < Duration::from_secs(5), "the pupils have the picture back within 5 s: {back_all:?}");
    for p in &pupils {
        let id = p.participant().expect("a participant id");
        assert!(before.contains(&id) && after.contains(&id), "pupil {id} kept its session through the freeze");
    }
}

#[test]
fn a_pupil_that_stops_reading_costs_the_others_nothing() {
    let _alone = alone();
    let server = TestServer::start(&[]);
    let (teacher, admin) = (server.token("teacher", Some("demo")), server.token("admin", None));
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = publish(&server, "demo", &teacher, &stop);
    let watchers: Vec<Watcher> =
        (0..3).map(|i| watch(pupil(&server, "demo", "demo", &format!("P{i}")), &stop)).collect();
    // The stalled pupil: over ICE-TCP, on the top layer (the most bytes to queue).
    let token = server.join("demo", "Bloque");
    let mut stalled =
        Subscriber::connect_over(&server.base, "demo", &token, lo(), Some("high"), ardoise_client::Transports::TCP)
            .expect("WHEP over TCP");
    stalled.run_for(Duration::from_secs(2)).unwrap();
    assert!(stalled.report.video.len() > 50, "the TCP pupil received video before it stalled");
    let stalled_id = stalled.participant().unwrap();
    let calm = Instant::now();
    all_receive(&watchers, 30, Duration::from_secs(5), "the pupils before the stall");
    let stall = Instant::now();
    // From here the TCP pupil never reads its socket again; the server closes it (a write
    // blocked 10 s) while the others go on.
    wait_until(Duration::from_secs(30), "the server to close the stalled pupil", || {
        (!participants(&server, &admin, "demo").contains(&stalled_id)).then_some(())
    });
    let closed_after = stall.elapsed();
    let dropped = metric(&server, "ardoise_tcp_dropped_total");
    let end = Instant::now();
    let pupils = stop_all(&stop, watchers);
    publishing.join().unwrap();
    drop(stalled);
    let before: f64 = pupils.iter().map(|p| rate(p, calm, stall)).sum::<f64>() / 3.0;
    let during: f64 = pupils.iter().map(|p| rate(p, stall, end)).sum::<f64>() / 3.0;
    let gap = pupils.iter().map(|p| longest_gap(p, stall, end)).max().unwrap();
    println!(
        "FAULT pupil_not_reading: closed after {closed_after:?}, {dropped} packets dropped toward it; \
         other pupils {before:.1} → {during:.1} video pkt/s, longest gap {gap:?}"
    );
    assert!(dropped > 0.0, "the stall was real: packets were dropped toward the stalled pupil");
    assert!(during >= 0.8 * before, "the others' video rate held: {before:.1} → {during:.1} pkt/s");
    assert!(gap < Duration::from_millis(500), "no pupil went 500 ms without video: {gap:?}");
}

#[test]
fn a_read_only_data_dir_never_stops_the_class() {
    let _alone = alone();
    assert!(common::is_root(), "this test mounts over the data directory: it runs as root (make test)");
    // Logins are polled below: the per-account limit must not be what refuses them.
    let server = TestServer::start(&[
        ("ARDOISE_TEST_MOUNTNS", "1"),
        ("ARDOISE__ACCOUNTS__LOGINS_PER_ACCOUNT_PER_MINUTE", "10000"),
        ("ARDOISE__ACCOUNTS__LOGINS_PER_IP_PER_MINUTE", "10000"),
    ]);
    let (teacher, admin) = (server.token("teacher", Some("demo")), server.token("admin", None));
    let password = "un mot de passe assez long";
    server
        .cli(
            &["user", "add", "--email", "admin@ecole.fr", "--role", "admin", "--password-stdin"],
            &format!("{password}\n"),
        )
        .unwrap();
    let login = || {
        let body = json!({"email": "admin@ecole.fr", "password": password}).to_string();
        send("POST", &format!("{}/api/login", server.base), None, Some("application/json"), &body)
    };
    let create = |id: &str| {
        let body = json!({"id": id, "title": "CE1"}).to_string();
        send("POST", &format!("{}/api/classes", server.base), Some(&admin), Some("application/json"), &body)
    };
    assert_eq!(login().status, 200, "a login while the disk is writable");
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = publish(&server, "demo", &teacher, &stop);
    let watchers: Vec<Watcher> =
        (0..3).map(|i| watch(pupil(&server, "demo", "demo", &format!("P{i}")), &stop)).collect();
    all_receive(&watchers, 20, Duration::from_secs(5), "the pupils before the fault");

    let read_only = Instant::now();
    server.data_dir_read_only(true);
    // What needs the disk either works (files already open) or says to retry: never a 500,
    // never a hang.
    let mut answers: Vec<(&str, common::Reply)> = vec![("login", login()), ("class creation", create("ce1-a"))];
    // Logins at once: the database pool opens connections of its own while the disk is
    // read-only (SQLite would open them read-only, for good, were they not refused).
    std::thread::scope(|s| {
        let many: Vec<_> = (0..8).map(|_| s.spawn(login)).collect();
        answers.extend(many.into_iter().map(|h| ("concurrent login", h.join().unwrap())));
    });
    for (what, r) in &answers {
        assert!(
            matches!(r.status, 200 | 201) || (r.status == 503 && r.retry_after.is_some()),
            "{what} on a read-only disk: {} {}",
            r.status,
            r.body
        );
    }
    // Pupils still join and watch: the class never waits for the disk.
    let late_token = server.join("demo", "Tard");
    let late = Subscriber::connect_with_layer(&server.base, "demo", &late_token, lo(), Some("low")).expect("WHEP");
    let mut watchers = watchers;
    watchers.push(watch(late, &stop));
    all_receive(&watchers, 20, Duration::from_secs(5), "every pupil, the late one too, on a read-only disk");
    // The teacher removes a pupil: the revocation file cannot be written, the removal holds
    // (and the join code is replaced, as after every removal).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let removed = server.join("demo", "Renvoye");
    let _sockets = rt.block_on(async {
        let (mut console, _) = common::ws::hello(&server, "demo", &teacher).await;
        let (page, w) = common::ws::hello(&server, "demo", &removed).await;
        common::ws::send(&mut console, json!({"type": "remove", "pupil": w["you"]["id"]})).await;
        common::ws::wait_for(&mut console, "removed").await;
        (console, page)
    });
    let whep = format!("{}/whep/demo", server.base);
    let removed_refused = send("POST", &whep, Some(&removed), Some("application/sdp"), &common::recv_offer()).status;
    assert_eq!(removed_refused, 401, "the removed pupil is refused although its revocation was not written");
    let writable = Instant::now();
    server.data_dir_read_only(false);
    let back = wait_until(Duration::from_secs(10), "logins and creations to work again", || {
        (login().status == 200 && create(&format!("ce1-{}", writable.elapsed().as_millis())).status == 201)
            .then_some(writable.elapsed())
    });
    // The late pupil's attendance, refused by the disk while it was read-only, was retried
    // and written: an admin's export of its pseudonym finds it.
    let cookie = {
        let body = json!({"email": "admin@ecole.fr", "password": password}).to_string();
        let (r, set_cookie) = common::send_with(
            "POST",
            &format!("{}/api/login", server.base),
            &[("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        set_cookie.unwrap().split(';').next().unwrap().to_owned()
    };
    let late_sub = {
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(late_token.split('.').nth(1).unwrap());
        serde_json::from_slice::<Value>(&claims.unwrap()).unwrap()["sub"].as_str().unwrap().to_owned()
    };
    let recorded = common::eventually(Duration::from_secs(20), || {
        let (r, _) = common::send_with(
            "GET",
            &format!("{}/api/admin/pupils/{late_sub}", server.base),
            &[("Cookie", cookie.as_str())],
            "",
        );
        let rows: Value = serde_json::from_str(&r.body).map_err(|e| format!("{}: {e}", r.body))?;
        match rows.as_array() {
            Some(a) if !a.is_empty() => Ok(writable.elapsed()),
            _ => Err(format!("the late pupil's attendance is not written yet: {}", r.body)),
        }
    });
    let end = Instant::now();
    let pupils = stop_all(&stop, watchers);
    publishing.join().unwrap();
    let gap = pupils[..3].iter().map(|p| longest_gap(p, read_only, end)).max().unwrap();
    let said: Vec<String> = answers.iter().map(|(w, r)| format!("{w} {}", r.status)).collect();
    println!(
        "FAULT data_dir_read_only: while read-only {}, a removal held (401) without its file; both work \
         again {back:?} after; a pupil joined meanwhile, its attendance written {recorded:?} after; \
         the others' longest video gap {gap:?}",
        said.join(", ")
    );
    assert!(gap < Duration::from_millis(500), "no pupil went 500 ms without video: {gap:?}");
}

#[test]
fn a_pupil_given_the_port_of_a_vanished_tablet_connects_at_once() {
    let _alone = alone();
    let server = TestServer::start(&[]);
    let teacher = server.token("teacher", Some("demo"));
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = publish(&server, "demo", &teacher, &stop);
    let watchers = vec![watch(pupil(&server, "demo", "demo", "Voisin"), &stop)];
    let mut vanished = pupil(&server, "demo", "demo", "Eteinte");
    wait_until(Duration::from_secs(5), "the first tablet's picture", || {
        vanished.run_for(Duration::from_millis(50)).ok()?;
        (!vanished.report.video.is_empty()).then_some(())
    });
    // The tablet loses power: no DELETE, its session stays until it times out. Its address
    // goes to another tablet once it has been silent a while (a carrier NAT recycles a
    // mapping after 30 s or more; the server moves an address silent for 1 s).
    let address = vanished.local();
    drop(vanished);
    std::thread::sleep(Duration::from_secs(1)); // the silence (ADDRESS_MOVES_AFTER), not synchronisation
    let token = server.join("demo", "Suivante");
    let mut next = Subscriber::connect_from(&server.base, "demo", &token, address).expect("WHEP");
    // A first picture in the time the other pupils of a burst take (about 100 ms), with margin.
    wait_until(Duration::from_secs(3), "a picture for the pupil on the vanished tablet's port", || {
        next.run_for(Duration::from_millis(50)).ok()?;
        (!next.report.video.is_empty()).then_some(())
    });
    all_receive(&watchers, 20, Duration::from_secs(5), "the class meanwhile");
    stop_all(&stop, watchers);
    publishing.join().unwrap();
    println!(
        "FAULT port reused: the new pupil's first picture {:?} after its WHEP POST",
        next.report.first_picture().unwrap()
    );
}

#[test]
fn a_session_id_from_before_a_restart_never_closes_a_new_session() {
    let _alone = alone();
    let mut server = TestServer::start(&[]);
    let before = pupil(&server, "demo", "demo", "Avant");
    let old = before.resource().expect("a session resource").to_owned();
    drop(before);
    server.restart();
    // The pupils reconnect first, in the same order; then the studio, coming back, closes
    // what it held before the restart.
    let token = server.join("demo", "Apres");
    let after = Subscriber::connect(&server.base, "demo", &token, lo()).expect("WHEP after the restart");
    let new = after.resource().expect("a session resource").to_owned();
    let teacher = server.token("teacher", Some("demo"));
    let url = ardoise_client::http::resolve(&server.base, &old);
    let r = send("DELETE", &url, Some(&teacher), None, "");
    println!("FAULT restart: the session before {old}, after {new}; a DELETE of the old one answers {}", r.status);
    assert_eq!(r.status, 404, "the old session's id names no session now: {}", r.body);
    assert!(session_held(&server, &new, &token), "the new session is still held");
}

#[test]
fn a_panic_inside_str0m_removes_one_peer_only() {
    let _alone = alone();
    let server = TestServer::start(&[("ARDOISE__MEDIA__FAULT_INJECTION", "true"), ("RUST_BACKTRACE", "0")]);
    let (teacher, admin) = (server.token("teacher", Some("demo")), server.token("admin", None));
    let stop = Arc::new(AtomicBool::new(false));
    let publishing = publish(&server, "demo", &teacher, &stop);
    let victim = pupil(&server, "demo", "demo", "Victime");
    let victim_id = victim.participant().unwrap();
    let victim_stop = Arc::new(AtomicBool::new(false));
    let victim = {
        let stop = victim_stop.clone();
        let mut v = victim;
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if v.run_for(Duration::from_millis(50)).is_err() {
                    break; // its session was closed by the server
                }
            }
        })
    };
    let watchers: Vec<Watcher> =
        (0..3).map(|i| watch(pupil(&server, "demo", "demo", &format!("P{i}")), &stop)).collect();
    all_receive(&watchers, 20, Duration::from_secs(5), "the pupils before the fault");

    let faulted = Instant::now();
    let body = json!({"fault": "str0m_panic", "class": "demo", "participant": victim_id}).to_string();
    let r = send("POST", &format!("{}/api/admin/faults", server.base), Some(&admin), Some("application/json"), &body);
    assert_eq!(r.status, 204, "{}", r.body);
    wait_until(Duration::from_secs(5), "the faulty peer to be removed", || {
        (!participants(&server, &admin, "demo").contains(&victim_id)).then_some(())
    });
    all_receive(&watchers, 30, Duration::from_secs(5), "the other pupils after the fault");
    // The pupil comes back (a page reconnects by itself) and watches again.
    let again = pupil(&server, "demo", "demo", "Victime");
    let mut watchers = watchers;
    watchers.push(watch(again, &stop));
    all_receive(&watchers, 10, Duration::from_secs(5), "the removed pupil back with a new session");
    let end = Instant::now();
    victim_stop.store(true, Ordering::Relaxed);
    victim.join().unwrap();
    let faults = metric(&server, "ardoise_peer_faults_total");
    let pupils = stop_all(&stop, watchers);
    publishing.join().unwrap();
    let gap = pupils[..3].iter().map(|p| longest_gap(p, faulted, end)).max().unwrap();
    println!("FAULT str0m_panic: one peer removed ({faults} fault counted); the others' longest video gap {gap:?}");
    assert_eq!(faults, 1.0, "the fault is counted");
    assert!(gap < Duration::from_millis(500), "no other pupil went 500 ms without video: {gap:?}");
}

#[test]
fn a_worker_panic_replaces_the_worker_and_spares_the_other_workers_class() {
    let _alone = alone();
    let server = TestServer::start(&[("ARDOISE__MEDIA__FAULT_INJECTION", "true"), ("RUST_BACKTRACE", "0")]);
    let admin = server.token("admin", None);
    let stop = Arc::new(AtomicBool::new(false));
    // Class A ("demo") and class B, on the two workers.
    let a_teacher = server.token("teacher", Some("demo"));
    let (a_publishing, a_resource) = publish_at(&server, "demo", &a_teacher, &stop);
    let body = json!({"id": "cm2-b", "title": "CM2 B"}).to_string();
    let r = send("POST", &format!("{}/api/classes", server.base), Some(&admin), Some("application/json"), &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let created: Value = serde_json::from_str(&r.body).unwrap();
    let b_code = created["code"].as_str().unwrap().to_owned();
    let b_publishing = publish(&server, "cm2-b", created["teacher_token"].as_str().unwrap(), &stop);
    let a_pupil = pupil(&server, "demo", "demo", "A");
    let a_token = server.join("demo", "Page");
    let b_watchers = vec![watch(pupil(&server, "cm2-b", &b_code, "B"), &stop)];
    let a_watchers = vec![watch(a_pupil, &stop)];
    all_receive(&b_watchers, 20, Duration::from_secs(5), "class B's pupil");
    all_receive(&a_watchers, 20, Duration::from_secs(5), "class A's pupil");
    let overview = admin_overview(&server, &admin);
    let worker_of = |id: &str| {
        overview["classes"].as_array().unwrap().iter().find(|c| c["id"] == id).and_then(|c| c["worker"].as_u64())
    };
    let (wa, wb) = (worker_of("demo").unwrap(), worker_of("cm2-b").unwrap());
    assert_ne!(wa, wb, "the two classes are on different workers");
    // Class A's page listens to its class events.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (mut page, _) = rt.block_on(common::ws::hello(&server, "demo", &a_token));

    let panicked = Instant::now();
    let body = json!({"fault": "worker_panic", "worker": wa}).to_string();
    let r = send("POST", &format!("{}/api/admin/faults", server.base), Some(&admin), Some("application/json"), &body);
    assert_eq!(r.status, 204, "{}", r.body);
    rt.block_on(common::ws::wait_for(&mut page, "reconnect"));
    let told = panicked.elapsed();
    // The HTTP side released the lost sessions (their places count again).
    wait_until(Duration::from_secs(5), "the server to release the teacher's lost session", || {
        (!session_held(&server, &a_resource, &a_teacher)).then_some(())
    });
    // The admin sees it (metrics come from a snapshot at most 500 ms old).
    wait_until(Duration::from_secs(3), "the restart in /metrics", || {
        (metric(&server, "ardoise_worker_restarts_total") == 1.0).then_some(())
    });
    // Class A comes back on the fresh worker: the teacher republishes, the page plays again.
    let a_publishing_again = publish(&server, "demo", &a_teacher, &stop);
    let again = Subscriber::connect_with_layer(&server.base, "demo", &a_token, lo(), Some("low")).expect("WHEP");
    let a_again = vec![watch(again, &stop)];
    all_receive(&a_again, 20, Duration::from_secs(10), "class A's pupil on the fresh worker");
    let back = panicked.elapsed();
    all_receive(&b_watchers, 20, Duration::from_secs(5), "class B's pupil after the panic");
    let end = Instant::now();
    let b = stop_all(&stop, b_watchers);
    let _ = stop_all(&stop, a_again);
    let _ = stop_all(&stop, a_watchers);
    for p in [a_publishing, b_publishing, a_publishing_again] {
        p.join().unwrap();
    }
    let gap = longest_gap(&b[0], panicked, end);
    println!(
        "FAULT worker_panic: class A told to reconnect {told:?} after, playing on the fresh worker {back:?} after; \
         class B (other worker) longest video gap {gap:?}"
    );
    assert!(gap < Duration::from_millis(500), "class B's pupil went {gap:?} without video");
}
