//! One class larger than a node: its owner (the origin) serves pupils up to its capacity,
//! then sends the next ones to edges that relay the class (`ardoise serve` nodes on
//! loopback sharing a real PostgreSQL; see `crates/server/src/cascade.rs`).

mod common;

use ardoise_client::Transports;
use ardoise_loadgen::Subscriber;
use ardoise_loadgen::subscriber::Feedback;
use common::cluster::*;
use common::publishing::Publishing;
use common::{TestServer, eventually, lo, send};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pupils a node serves itself in these tests (`cluster.capacity`).
const CAPACITY: usize = 3;

/// What a [`Pupil`] has seen.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Its current session's resource URL.
    resource: Option<String>,
    /// Sessions it made.
    sessions: usize,
    /// Video bytes and packets, audio packets, over all its sessions.
    video_bytes: u64,
    video_packets: u64,
    audio_packets: u64,
    /// When it last received video.
    last_video: Option<Instant>,
    /// End-to-end frame delays of its sessions, ms.
    frame_delays_ms: Vec<f32>,
}

/// A pupil that plays the class through the origin and, as the page's player does, makes a
/// new session through the origin when its video stops for 2 s.
struct Pupil {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pupil {
    fn join(origin: &str, class: &str, token: String, layer: Option<&'static str>, feedback: Feedback) -> Pupil {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (origin, class) = (origin.to_owned(), class.to_owned());
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let s =
                    Subscriber::connect_with_feedback(&origin, &class, &token, lo(), layer, Transports::UDP, feedback);
                let mut s = match s {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("pupil: {e:#}");
                        std::thread::sleep(Duration::from_millis(250));
                        continue;
                    }
                };
                {
                    let mut seen = seen2.lock().unwrap();
                    seen.resource = s.resource().map(String::from);
                    seen.sessions += 1;
                }
                let (started, mut video, mut audio, mut delays) = (Instant::now(), 0, 0, 0);
                let mut last = None;
                while !stop2.load(Ordering::Relaxed) {
                    if s.run_for(Duration::from_millis(50)).is_err() {
                        break;
                    }
                    let r = s.report();
                    let mut seen = seen2.lock().unwrap();
                    for p in &r.video[video..] {
                        seen.video_bytes += u64::from(p.len);
                        seen.video_packets += 1;
                        seen.last_video = Some(p.at);
                        last = Some(p.at);
                    }
                    seen.audio_packets += (r.audio_seqs.len() - audio) as u64;
                    seen.frame_delays_ms.extend_from_slice(&r.frame_delays_ms[delays..]);
                    (video, audio, delays) = (r.video.len(), r.audio_seqs.len(), r.frame_delays_ms.len());
                    if last.unwrap_or(started).elapsed() > Duration::from_secs(2) {
                        break;
                    }
                }
                let _ = s.close();
            }
        });
        Pupil { seen, stop, thread: Some(thread) }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// The origin of the node its session is on, once it has one.
    fn node(&self) -> String {
        let resource =
            eventually(Duration::from_secs(20), || self.seen().resource.ok_or_else(|| "no session yet".to_string()));
        origin(&resource)
    }

    /// Wait until it has had video since `since`.
    fn plays_since(&self, since: Instant) -> Duration {
        eventually(Duration::from_secs(30), || match self.seen().last_video {
            Some(at) if at > since => Ok(at - since),
            _ => Err(format!("no video since {:?} ago: {:?}", since.elapsed(), self.seen().resource)),
        })
    }
}

impl Drop for Pupil {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The subscribers `node`'s media workers hold for `class`, by session id.
fn subscribers(node: &TestServer, class: &str) -> Vec<Value> {
    let admin = node.token("admin", None);
    let r = send("GET", &format!("{}/api/admin/classes", node.base), Some(&admin), None, "");
    let v: Value = serde_json::from_str(&r.body).unwrap_or_default();
    v["classes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["id"] == class)
        .flat_map(|c| c["participants"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["kind"] == "subscriber")
        .collect()
}

/// The layer `node` sends to the session of `resource`.
fn layer_of(node: &TestServer, class: &str, resource: &str) -> Option<String> {
    let id: u64 = resource.rsplit('/').next()?.parse().ok()?;
    subscribers(node, class).iter().find(|p| p["id"] == id).and_then(|p| p["layer"].as_str().map(String::from))
}

/// Video bitrate of each of `pupils` over `window`, kbit/s.
fn kbps(pupils: &[&Pupil], window: Duration) -> Vec<f64> {
    let before: Vec<u64> = pupils.iter().map(|p| p.seen().video_bytes).collect();
    std::thread::sleep(window);
    pupils
        .iter()
        .zip(before)
        .map(|(p, b)| (p.seen().video_bytes - b) as f64 * 8.0 / window.as_secs_f64() / 1000.0)
        .collect()
}

/// Four nodes of capacity [`CAPACITY`]; `class`'s origin.
fn cascade_nodes(db: &str, class: &str) -> (Vec<TestServer>, usize) {
    let capacity = CAPACITY.to_string();
    let ns = nodes_with(db, 4, &[("ARDOISE__CLUSTER__CAPACITY", &capacity), ("ARDOISE__CLUSTER__CLASS_WEIGHT", "1")]);
    let owner = owner_seen_by(&ns[0], class);
    let o = ns.iter().position(|n| n.base == owner).expect("the owner is a node");
    (ns, o)
}

#[test]
fn a_class_larger_than_a_node_is_relayed_by_edges_that_switch_layers_and_survive_an_edge_s_death() {
    let (db, _pg) = database(false);
    let class = "classe1";
    let (ns, o) = cascade_nodes(&db, class);
    let origin_url = ns[o].base.clone();
    let _teacher = Publishing::class(&origin_url, class, ns[o].token("teacher", Some(class)));
    let pupil = |layer, feedback| Pupil::join(&origin_url, class, ns[o].join(class, "Élève"), layer, feedback);

    // The origin serves its capacity itself.
    let at_origin: Vec<Pupil> = (0..CAPACITY).map(|_| pupil(None, Feedback::Twcc)).collect();
    for p in &at_origin {
        assert_eq!(p.node(), origin_url, "the first {CAPACITY} pupils are the origin's");
        p.plays_since(Instant::now() - Duration::from_secs(60));
    }

    // The next go to edges: every layer, and two adaptive pupils, one of which says its link
    // carries 300 kbit/s.
    let asked: [(Option<&'static str>, Feedback); 5] = [
        (Some("low"), Feedback::Twcc),
        (Some("medium"), Feedback::Twcc),
        (Some("high"), Feedback::Twcc),
        (None, Feedback::Remb(300_000)),
        (None, Feedback::Twcc),
    ];
    let edged: Vec<Pupil> = asked
        .iter()
        .map(|(layer, feedback)| {
            let p = pupil(*layer, *feedback);
            p.node();
            p
        })
        .collect();
    let start = Instant::now() - Duration::from_secs(60);
    for p in &edged {
        p.plays_since(start);
    }
    let on: Vec<String> = edged.iter().map(Pupil::node).collect();
    println!("edge pupils on {on:?} (origin {origin_url})");
    assert!(on.iter().all(|n| *n != origin_url), "the origin is full: its next pupils are on edges: {on:?}");
    let mut edges: Vec<&String> = on.iter().collect();
    edges.sort();
    edges.dedup();
    assert!(edges.len() >= 2, "{} pupils over edges of {CAPACITY}: {on:?}", edged.len());
    for e in &edges {
        assert!(on.iter().filter(|n| **n == **e).count() <= CAPACITY, "an edge holds at most its capacity: {on:?}");
    }
    // Every layer reaches the edges, each at its own rate, with the voice.
    let rates = kbps(&[&edged[0], &edged[1], &edged[2]], Duration::from_secs(3));
    println!("edge pupils on fixed layers low, medium, high: {rates:?} kbit/s");
    assert!(rates[0] > 20.0 && rates[0] < rates[1] && rates[1] < rates[2], "{rates:?}");
    for p in edged.iter().chain(&at_origin) {
        assert!(p.seen().audio_packets > 50, "{:?}", p.seen());
    }
    // The edges adapt as one node does: the 300 kbit/s pupil gets the lowest layer, the other
    // climbs to the highest.
    let node_of = |url: &str| ns.iter().find(|n| n.base == url).expect("a node");
    let (remb, twcc) = (&edged[3], &edged[4]);
    eventually(Duration::from_secs(20), || {
        let l = layer_of(node_of(&remb.node()), class, &remb.seen().resource.unwrap_or_default());
        if l.as_deref() == Some("low") { Ok(()) } else { Err(format!("the REMB pupil is on {l:?}")) }
    });
    eventually(Duration::from_secs(30), || {
        let l = layer_of(node_of(&twcc.node()), class, &twcc.seen().resource.unwrap_or_default());
        if l.as_deref() == Some("high") { Ok(()) } else { Err(format!("the adaptive pupil is on {l:?}")) }
    });
    // Each node says what it relays.
    let relayed: f64 = ns.iter().map(|n| common::metric(n, "ardoise_cluster_classes_relayed")).sum();
    assert_eq!(relayed, edges.len() as f64, "the edges each relay the class");
    assert_eq!(common::metric(&ns[o], "ardoise_cluster_edges"), edges.len() as f64);
    // Nobody sees the relays: the class's members on the origin are its pupils and teacher.
    let overview = send("GET", &format!("{origin_url}/api/admin/classes"), Some(&ns[o].token("admin", None)), None, "");
    assert_eq!(overview.status, 200);
    assert!(!overview.body.contains("relay"), "{}", overview.body);

    // An edge drains (a rolling upgrade): its pupils move to another edge, and the command
    // returns once it serves nobody.
    let quietest = edges.iter().min_by_key(|e| on.iter().filter(|n| **n == ***e).count()).unwrap().to_string();
    let drained = ns.iter().position(|n| n.base == quietest).unwrap();
    let leaving: Vec<&Pupil> = edged.iter().filter(|p| p.node() == quietest).collect();
    let began = Instant::now();
    let out = std::process::Command::new(common::bin())
        .args(["node", "drain", &format!("node-{}", drained + 1), "--wait-secs", "60", "--config"])
        .arg(ns[o].data_dir.join("test.toml"))
        .envs(ns[o].env.iter().cloned())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    println!("{said} (node-{} is {quietest})", drained + 1);
    assert!(out.status.success() && said.contains("drained"), "{said} {}", String::from_utf8_lossy(&out.stderr));
    let mut moved_in = Vec::new();
    for p in &leaving {
        let t = eventually(Duration::from_secs(30), || {
            let seen = p.seen();
            match seen.last_video {
                Some(at) if origin(&seen.resource.clone().unwrap_or_default()) != quietest && at > began => {
                    Ok(at - began)
                }
                _ => Err(format!("not moved yet: {:?}", seen.resource)),
            }
        });
        let now = p.node();
        assert!(now != origin_url, "a drained edge's pupil goes to another edge, not the full origin: {now}");
        moved_in.push(t);
    }
    println!(
        "an edge drained in {:?}: its {} pupils played on another edge after {moved_in:?}",
        began.elapsed(),
        leaving.len()
    );
    // Upgraded, it takes pupils again.
    let reopened = std::process::Command::new(common::bin())
        .args(["node", "undrain", &format!("node-{}", drained + 1), "--config"])
        .arg(ns[o].data_dir.join("test.toml"))
        .envs(ns[o].env.iter().cloned())
        .output()
        .unwrap();
    assert!(reopened.status.success(), "{}", String::from_utf8_lossy(&reopened.stderr));
    let on: Vec<String> = edged.iter().map(Pupil::node).collect();
    let mut edges: Vec<&String> = on.iter().collect();
    edges.sort();
    edges.dedup();

    // An edge dies: its pupils come back through the origin, on another edge.
    let busiest = edges.iter().max_by_key(|e| on.iter().filter(|n| **n == ***e).count()).unwrap().to_string();
    let dead = ns.iter().position(|n| n.base == busiest).unwrap();
    let moved: Vec<&Pupil> = edged.iter().filter(|p| p.node() == busiest).collect();
    let mut ns = ns;
    let _ = ns[dead].child.kill(); // SIGKILL
    let killed = Instant::now();
    let mut back = Vec::new();
    for p in &moved {
        let t = eventually(Duration::from_secs(30), || {
            let seen = p.seen();
            let now = origin(&seen.resource.clone().unwrap_or_default());
            match seen.last_video {
                Some(at) if now != busiest && at > killed => Ok(at - killed),
                _ => Err(format!("no video since the kill: {seen:?}")),
            }
        });
        back.push(t);
        let now = p.node();
        assert!(now != origin_url && now != busiest, "a dead edge's pupil goes to another edge: {now}");
    }
    println!("an edge killed: its {} pupils had video again after {back:?}", moved.len());
    assert!(back.iter().all(|t| *t < Duration::from_secs(15)), "{back:?}");
    for p in &at_origin {
        assert_eq!(p.seen().sessions, 1, "the origin's pupils are not touched by an edge's death");
    }
}

/// CPU time of process `pid` so far, clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// `q` quantile of `v` (sorted in place).
fn quantile(v: &mut [f32], q: f64) -> f64 {
    v.sort_by(f32::total_cmp);
    f64::from(v[((v.len() - 1) as f64 * q).round() as usize])
}

/// The benchmark of `benches/cascade.sh`: the forwarding delay one cascade hop adds. `PUPILS`
/// pupils (default 10) on the top layer at the origin and as many on an edge, for `SECS`
/// seconds (default 30) after a 3 s warm-up; each frame's end-to-end delay (the teacher's
/// capture time, carried in abs-capture-time, to its first packet at the pupil), compared.
#[test]
#[ignore = "a benchmark (benches/cascade.sh): minutes of media, run in release"]
fn cascade_hop_delay() {
    let n: usize = std::env::var("PUPILS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let secs: u64 = std::env::var("SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let (db, _pg) = database(false);
    let class = "classe1";
    let capacity = n.to_string();
    let ns = nodes_with(&db, 3, &[("ARDOISE__CLUSTER__CAPACITY", &capacity), ("ARDOISE__CLUSTER__CLASS_WEIGHT", "1")]);
    let origin_url = owner_seen_by(&ns[0], class);
    let o = ns.iter().position(|x| x.base == origin_url).unwrap();
    let _teacher = Publishing::class(&origin_url, class, ns[o].token("teacher", Some(class)));
    let pupils: Vec<Pupil> = (0..2 * n)
        .map(|_| {
            let p = Pupil::join(&origin_url, class, ns[o].join(class, "Élève"), Some("high"), Feedback::Twcc);
            p.node();
            p
        })
        .collect();
    let since = Instant::now();
    for p in &pupils {
        p.plays_since(since - Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_secs(3));
    let skip: Vec<usize> = pupils.iter().map(|p| p.seen().frame_delays_ms.len()).collect();
    let cpu_before: Vec<u64> = ns.iter().map(|x| cpu_ticks(x.child.id())).collect();
    std::thread::sleep(Duration::from_secs(secs));
    let cpu: Vec<f64> = ns
        .iter()
        .zip(cpu_before)
        .map(|(x, b)| (cpu_ticks(x.child.id()) - b) as f64 / secs as f64) // ticks of 10 ms: % of a core
        .collect();
    let (mut here, mut edge) = (Vec::new(), Vec::new());
    for (p, skip) in pupils.iter().zip(skip) {
        let seen = p.seen();
        assert_eq!(seen.sessions, 1, "a pupil lost its session during the run");
        let to = if p.node() == origin_url { &mut here } else { &mut edge };
        to.extend_from_slice(&seen.frame_delays_ms[skip..]);
    }
    assert!(
        !here.is_empty() && !edge.is_empty(),
        "pupils on both: {} at the origin, {} on edges",
        here.len(),
        edge.len()
    );
    let mut row = serde_json::Map::new();
    for (name, v) in [("origin", &mut here), ("edge", &mut edge)] {
        row.insert(format!("{name}_frames"), v.len().into());
        for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p999")] {
            row.insert(format!("{name}_{label}_ms"), quantile(v, q).into());
        }
    }
    // The node that served the edge's pupils, and the origin: their CPU over the window.
    let edge_node = pupils.iter().map(Pupil::node).find(|u| *u != origin_url).unwrap();
    let e = ns.iter().position(|x| x.base == edge_node).unwrap();
    row.insert("origin_cpu_pct".into(), cpu[o].into());
    row.insert("edge_cpu_pct".into(), cpu[e].into());
    for label in ["p50", "p99", "p999"] {
        let hop =
            row[&format!("edge_{label}_ms")].as_f64().unwrap() - row[&format!("origin_{label}_ms")].as_f64().unwrap();
        row.insert(format!("hop_{label}_ms"), ((hop * 1000.0).round() / 1000.0).into());
    }
    println!("CASCADE {}", Value::Object(row));
}

#[test]
fn a_chromium_pupil_plays_on_an_edge_across_origins_and_moves_when_it_dies() {
    common::browser_prerequisites().unwrap_or_else(|e| panic!("{e}"));
    let (db, _pg) = database(false);
    let class = "classe2";
    // The default heartbeat and death timings: the time back is what a pupil would see.
    let mut settings = vec![("ARDOISE__CLUSTER__CAPACITY", "1"), ("ARDOISE__CLUSTER__CLASS_WEIGHT", "1")];
    settings.extend_from_slice(&DEFAULT_TIMINGS);
    let ns = nodes_with(&db, 3, &settings);
    let origin_url = owner_seen_by(&ns[0], class);
    let o = ns.iter().position(|x| x.base == origin_url).unwrap();
    let _teacher = Publishing::class(&origin_url, class, ns[o].token("teacher", Some(class)));
    // A pupil fills the origin.
    let lea = ns[o].join(class, "Léa");
    let first = Pupil::join(&origin_url, class, lea.clone(), None, Feedback::Twcc);
    assert_eq!(first.node(), origin_url);
    let signal = ns[o].data_dir.join("edge-killed");
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/cascade.mjs");
    let child = std::process::Command::new("node")
        .arg(script)
        .args([&origin_url, class])
        .arg(&signal)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    let edge = common::wait_until(Duration::from_secs(60), "the page plays on an edge", || {
        std::fs::read_to_string(signal.with_extension("ready")).ok().filter(|s| s.starts_with("http"))
    });
    let dead = ns.iter().position(|x| x.base == edge).expect("the page's edge is a node");
    assert_ne!(dead, o, "the page plays on an edge");
    // Léa, on the origin, gets the floor with her camera and speaks: the page on the edge
    // hears her.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let teacher = ns[o].token("teacher", Some(class));
    let (mut teacher_ws, _) = rt.block_on(common::ws::hello(&ns[o], class, &teacher));
    let (mut lea_ws, welcome) = rt.block_on(common::ws::hello(&ns[o], class, &lea));
    let lea_id = welcome["you"]["id"].as_str().expect("her id").to_owned();
    rt.block_on(common::ws::send(
        &mut teacher_ws,
        serde_json::json!({"type": "grant_floor", "pupil": lea_id, "camera": true}),
    ));
    rt.block_on(common::ws::wait_for(&mut lea_ws, "floor"));
    let speaking = Publishing::floor(&origin_url, class, lea);
    std::fs::write(signal.with_extension("floor"), "").unwrap();
    common::wait_until(Duration::from_secs(40), "the page hears the floor", || {
        std::fs::read_to_string(signal.with_extension("heard")).ok()
    });
    drop(speaking);
    let mut ns = ns;
    let _ = ns[dead].child.kill(); // SIGKILL
    std::fs::write(&signal, ardoise_store::now_ms().to_string()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.lines().last().expect("a result")).unwrap();
    println!(
        "a Chromium pupil on {origin_url}'s class: played on the edge {edge} ({} ms to the first frame), heard the floor ({} packets), then played on {} {} ms after the kill -9",
        v["first_frame_ms"], v["floor_audio_packets"], v["back_edge"], v["back_ms"]
    );
    assert!(v["error"].is_null() && out.status.success(), "{v}");
    assert!(v["floor_audio_packets"].as_u64().unwrap_or(0) > 25, "the floor's voice reached the edge: {v}");
    assert_ne!(v["back_edge"].as_str(), Some(origin_url.as_str()), "another edge: {v}");
    assert!(v["back_ms"].as_f64().unwrap() < 15_000.0, "pictures back within 15 s: {v}");
    assert_eq!(first.seen().sessions, 1, "the origin's pupil is not touched");
}

#[test]
fn a_pass_opens_one_class_on_one_edge_and_only_the_cluster_s_pages_may_use_it() {
    let (db, _pg) = database(false);
    let class = "classe3";
    let ns = nodes_with(&db, 3, &[("ARDOISE__CLUSTER__CAPACITY", "1"), ("ARDOISE__CLUSTER__CLASS_WEIGHT", "1")]);
    let origin_url = owner_seen_by(&ns[0], class);
    let o = ns.iter().position(|x| x.base == origin_url).unwrap();
    let first = Pupil::join(&origin_url, class, ns[o].join(class, "Léa"), None, Feedback::Twcc);
    assert_eq!(first.node(), origin_url);
    // The next pupil's offer is sent to an edge, with a pass.
    let noe = ns[o].join(class, "Noé");
    let offer = common::recv_offer();
    let sent = no_redirects()
        .post(&format!("{origin_url}/whep/{class}?quality=auto"))
        .set("Authorization", &format!("Bearer {noe}"))
        .set("Content-Type", "application/sdp")
        .send_string(&offer)
        .expect("a redirect");
    assert_eq!(sent.status(), 307);
    let location = sent.header("Location").expect("Location").to_owned();
    let edge = origin(&location);
    assert_ne!(edge, origin_url);
    assert!(location.contains("quality=auto&pass="), "the pupil's query goes along: {location}");
    let post = |url: &str| send("POST", url, None, Some("application/sdp"), &offer);
    // Altered, for another class, or taken to another node: refused, and the player asks
    // the class's server again (503, not a final 401).
    let altered = location.replacen("pass=", "pass=A", 1);
    let r = post(&altered);
    assert_eq!((r.status, r.retry_after.as_deref()), (503, Some("1")), "{}", r.body);
    assert_eq!(post(&location.replace(&format!("/whep/{class}?"), "/whep/classe4?")).status, 503);
    let third = ns.iter().find(|x| x.base != origin_url && x.base != edge).unwrap();
    assert_eq!(post(&location.replace(&edge, &third.base)).status, 503, "a pass is for one edge");
    // The pass itself: a session on the edge, which only its pupil (or the teacher) changes.
    let r = post(&location);
    assert_eq!(r.status, 201, "{}", r.body);
    let ids: Vec<u64> = eventually(Duration::from_secs(5), || {
        let ids: Vec<u64> = subscribers(ns.iter().find(|x| x.base == edge).unwrap(), class)
            .iter()
            .filter_map(|p| p["id"].as_u64())
            .collect();
        if ids.len() == 1 { Ok(ids) } else { Err(format!("subscribers on the edge: {ids:?}")) }
    });
    let session = format!("{edge}/whep/{class}/{}", ids[0]);
    let other = ns[o].join(class, "Zoé");
    assert_eq!(send("DELETE", &session, Some(&other), None, "").status, 403, "another pupil's session");
    assert_eq!(send("DELETE", &session, Some(&noe), None, "").status, 200, "her own, with her token");
    // CORS: the cluster's pages only.
    let preflight = |from: &str| {
        let r = ardoise_client::trust::agent()
            .request("OPTIONS", &location)
            .set("Origin", from)
            .set("Access-Control-Request-Method", "POST")
            .set("Access-Control-Request-Headers", "content-type")
            .call();
        let r = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("OPTIONS: {e}"),
        };
        r.header("Access-Control-Allow-Origin").map(String::from)
    };
    assert_eq!(preflight(&origin_url), Some(origin_url.clone()));
    assert_eq!(preflight("http://127.0.0.9:1"), None, "a page from elsewhere");
}
