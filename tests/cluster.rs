//! A département on several nodes: three `ardoise serve` on loopback sharing one real
//! PostgreSQL (`$DATABASE_URL`, else a private server the test starts; the outage test always
//! starts its own, since it stops it).

mod common;

use common::cluster::*;
use common::{TestServer, bin, eventually, send};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

/// A loadgen run of `pupils` pupils (and the teacher, with `teacher`) of `class` through
/// `server`: its JSON report.
fn loadgen(server: &str, class: &str, pupils: usize, teacher: Option<&str>, dir: &std::path::Path) -> Value {
    let json = dir.join(format!("load-{class}-{}.json", rand_u32()));
    let mut cmd = Command::new(bin());
    cmd.args(["loadgen", "--server", server, "--class", class, "--pupils", &pupils.to_string()])
        .args(["--ramp", "20", "--duration", "3", "--json"])
        .arg(&json);
    if let Some(t) = teacher {
        cmd.args(["--token", t]);
    }
    let out = cmd.output().expect("run loadgen");
    assert!(out.status.success(), "loadgen through {server}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

#[test]
fn six_classes_spread_over_three_nodes_and_every_node_sends_to_the_owner() {
    let (db, _pg) = database(false);
    let nodes = nodes(&db, 3);
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    // The classes start one after the other, each asked of the first node.
    let owners: Vec<String> = (1..=CLASSES).map(|k| owner_seen_by(&nodes[0], &format!("classe{k}"))).collect();
    println!("owners: {owners:?} (nodes {bases:?})");
    for base in &bases {
        let n = owners.iter().filter(|o| *o == base).count();
        assert_eq!(n, 2, "two classes on {base}: {owners:?}");
    }
    // Every node agrees, for every class, and a redirect names the node that gave it.
    for (k, owner) in owners.iter().enumerate() {
        let class = format!("classe{}", k + 1);
        for n in &nodes {
            assert_eq!(&owner_seen_by(n, &class), owner, "{} about {class}", n.base);
            if &n.base != owner {
                let (_, location) = get(&format!("{}/api/classes/{class}/recordings?x=1", n.base));
                let location = location.unwrap();
                assert!(
                    location.starts_with(&format!("{owner}/api/classes/{class}/recordings?x=1&via=node-")),
                    "{location}"
                );
            }
        }
    }
    // A request that already went through a node and would be sent back: 508, not a loop.
    let (class, owner) = ("classe1", &owners[0]);
    let other = nodes.iter().position(|n| &n.base != owner).unwrap();
    let (status, location) = get(&format!("{}/whip/{class}?via=node-{}", nodes[other].base, other + 1));
    assert_eq!((status, location), (508, None));
    // Real media through nodes that own nothing of it: the teacher publishes through one,
    // the pupils join through another, each following the redirects.
    let not_owner: Vec<&TestServer> = nodes.iter().filter(|n| &n.base != owner).collect();
    let teacher = nodes[0].token("teacher", Some(class));
    let _studio = common::publishing_studio(not_owner[0], class, &teacher, |_| {});
    let report = loadgen(&not_owner[1].base, class, 3, None, &nodes[0].data_dir);
    println!("pupils through {}: {report}", not_owner[1].base);
    assert_eq!(report["pupils_ok"], 3, "{report}");
    // The admin sees the cluster from any node.
    let admin = nodes[2].token("admin", None);
    let seen: Value =
        serde_json::from_str(&send("GET", &format!("{}/api/admin/nodes", nodes[2].base), Some(&admin), None, "").body)
            .unwrap();
    assert_eq!(seen["this_node"], "node-3", "{seen}");
    let listed = seen["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{seen}");
    assert!(listed.iter().all(|n| n["alive"] == true && n["classes"] == 2), "{seen}");
    // Every node's /metrics (what Prometheus scrapes) says the same.
    for n in &nodes {
        assert_eq!(common::metric(n, "ardoise_cluster_nodes_alive"), 3.0, "{}", n.base);
        assert_eq!(common::metric(n, "ardoise_cluster_classes_owned"), 2.0, "{}", n.base);
    }
}

/// A pupil through `server` until one gets the picture: the time from `since` to its first
/// frame.
fn picture_back(server: &str, class: &str, since: Instant, dir: &std::path::Path) -> Duration {
    eventually(Duration::from_secs(40), || {
        let joined = since.elapsed();
        let json = dir.join(format!("back-{}.json", rand_u32()));
        let out = Command::new(bin())
            .args(["loadgen", "--server", server, "--class", class, "--pupils", "1", "--ramp", "20"])
            .args(["--duration", "1", "--settle", "0", "--json"])
            .arg(&json)
            .output()
            .expect("run loadgen");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default()).unwrap_or_default();
        match v["per_pupil"][0]["time_to_first_frame_ms"].as_f64() {
            Some(ms) if v["pupils_ok"] == 1 => Ok(joined + Duration::from_secs_f64(ms / 1000.0)),
            _ => Err(format!("no picture yet: {v} {}", String::from_utf8_lossy(&out.stderr))),
        }
    })
}

/// The studio on test sources publishing `class`, knowing every node of `nodes` (it uses
/// whichever answers), once it publishes.
fn studio_on_every_node(nodes: &[TestServer], class: &str, teacher: &str) -> ardoise_studio::Studio {
    let servers = nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>().join(",");
    common::publishing_studio(&nodes[0], class, teacher, |c| c.server = servers)
}

/// A Chromium pupil page of `tests/browser/cluster.mjs`, opened on `wrong` (a node that does
/// not own `class`), with `extra` arguments; it plays, then waits for [`ClusterPage::signal`].
struct ClusterPage {
    child: std::process::Child,
    signal: std::path::PathBuf,
}

impl ClusterPage {
    fn open(wrong: &str, class: &str, signal: std::path::PathBuf, extra: &[&str]) -> ClusterPage {
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/cluster.mjs");
        let child = Command::new("node")
            .arg(script)
            .args([wrong, class])
            .arg(&signal)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run node");
        ClusterPage { child, signal }
    }

    /// Once the page plays: the origin it was sent to.
    fn landed(&self) -> String {
        let ready = self.signal.with_extension("ready");
        common::wait_until(Duration::from_secs(60), "the page plays", || {
            std::fs::read_to_string(&ready).ok().filter(|s| s.starts_with("http"))
        })
    }

    /// Tell the page its node was just killed or its class moved; its result once it plays
    /// again.
    fn signal(self) -> Value {
        std::fs::write(&self.signal, ardoise_store::now_ms().to_string()).unwrap();
        let out = self.child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("cluster.mjs: {stdout}");
        let v: Value = serde_json::from_str(stdout.lines().last().expect("a result")).unwrap();
        assert!(v["error"].is_null() && out.status.success(), "{v}");
        v
    }
}

#[test]
fn a_killed_node_s_class_is_back_on_another_node_within_15_s() {
    let (db, _pg) = database(false);
    // The default timings: a node silent for 5 s is dead.
    let mut nodes = nodes_with(&db, 3, &DEFAULT_TIMINGS);
    let class = "classe1";
    let teacher = nodes[0].token("teacher", Some(class));
    let studio = studio_on_every_node(&nodes, class, &teacher);
    let connected = |studio: &ardoise_studio::Studio| studio.stats.connected.load(std::sync::atomic::Ordering::Relaxed);
    let owner = owner_seen_by(&nodes[1], class);
    let dead = nodes.iter().position(|n| n.base == owner).unwrap();
    let survivor = nodes.iter().position(|n| n.base != owner).unwrap();
    let before = picture_back(&nodes[survivor].base, class, Instant::now(), &nodes[0].data_dir);
    println!("before: a pupil through {} had the picture in {before:?}", nodes[survivor].base);
    let sessions = studio.stats.sessions.load(std::sync::atomic::Ordering::Relaxed);
    // A pupil raises her hand and asks in the chat: the class's state the next node takes up.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r =
        send("POST", &format!("{owner}/api/classes/{class}/join"), None, Some("application/json"), r#"{"name":"Léa"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let lea: String = serde_json::from_str::<Value>(&r.body).unwrap()["token"].as_str().unwrap().to_owned();
    let owner_node = &nodes[dead];
    // (Her socket stays open until her node dies: a pupil who leaves lowers her hand.)
    let _lea_socket = rt.block_on(async {
        let (mut ws, _) = common::ws::hello(owner_node, class, &lea).await;
        common::ws::send(&mut ws, serde_json::json!({"type": "raise_hand"})).await;
        common::ws::send(&mut ws, serde_json::json!({"type": "chat", "text": "Une question sur l'exercice"})).await;
        common::ws::wait_for(&mut ws, "chat").await;
        ws
    });
    let store = rt.block_on(ardoise_store::Store::open(&db)).unwrap();
    common::wait_until(Duration::from_secs(5), "the class's state kept in the database", || {
        rt.block_on(store.live_state(class, 0)).unwrap().filter(|s| s.contains("Une question") && s.contains("hands"))
    });

    let _ = nodes[dead].child.kill(); // SIGKILL
    let killed = Instant::now();
    let republished = eventually(Duration::from_secs(30), || {
        let s = studio.stats.sessions.load(std::sync::atomic::Ordering::Relaxed);
        if s > sessions && connected(&studio) { Ok(killed.elapsed()) } else { Err(format!("sessions {s}")) }
    });
    let back = picture_back(&nodes[survivor].base, class, killed, &nodes[0].data_dir);
    let new_owner = owner_seen_by(&nodes[survivor], class);
    println!(
        "kill -9 of {owner}: the studio published again to {new_owner} after {republished:?}; a pupil had the picture {back:?} after the kill"
    );
    assert_ne!(new_owner, owner, "the class moved");
    assert!(back < Duration::from_secs(15), "pictures back {back:?} after the kill (target 15 s)");
    // Léa comes back (her page does so by itself): her hand and the chat are there.
    let again = nodes.iter().find(|n| n.base == new_owner).unwrap();
    let welcome = rt.block_on(async { common::ws::hello(again, class, &lea).await.1 });
    assert_eq!(welcome["you"]["hand"], true, "her hand is still raised: {welcome}");
    let chat = welcome["chat"].as_array().unwrap();
    assert!(chat.iter().any(|l| l["text"] == "Une question sur l'exercice"), "the chat is kept: {welcome}");
}

/// `node`'s own latest heartbeat and class count, as it sees them.
fn own_view(node: &TestServer, admin: &str) -> (i64, i64) {
    let seen = nodes_seen_by(node, admin);
    let me = seen["this_node"].clone();
    let n = seen["nodes"].as_array().unwrap().iter().find(|n| n["id"] == me).expect("itself").clone();
    (n["heartbeat_at"].as_i64().unwrap(), n["classes"].as_i64().unwrap())
}

#[test]
fn a_class_another_node_placed_here_takes_up_its_kept_state_even_when_a_heartbeat_learnt_it_first() {
    let (db, _pg) = database(false);
    let nodes = nodes(&db, 2);
    let class = "classe2";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(ardoise_store::Store::open(&db)).unwrap();
    // What the class's previous node kept (it died): the class locked, the document camera
    // on. Then another node places the class on node-2, as when it moves it off a dead node.
    let kept = r#"{"hands":[],"floor":null,"locked":true,"layout":"document","chat":[],"expelled":[],"admitted":[]}"#;
    rt.block_on(store.save_live_state(class, kept, ardoise_store::now_ms())).unwrap();
    let admin = nodes[1].token("admin", None);
    let (before, _) = own_view(&nodes[1], &admin);
    rt.block_on(store.place(class, "node-2", ardoise_store::now_ms())).unwrap();
    // node-2's heartbeat learns it owns the class before any request for it arrives: a
    // heartbeat counted it, and the next one began (the beats run one after the other).
    let counted = common::wait_until(Duration::from_secs(5), "node-2 to count the class", || {
        let (at, classes) = own_view(&nodes[1], &admin);
        (at > before && classes == 1).then_some(at)
    });
    common::wait_until(Duration::from_secs(5), "node-2's next heartbeat", || {
        (own_view(&nodes[1], &admin).0 > counted).then_some(())
    });
    // The teacher's console comes back: the class is as its previous node left it.
    let teacher = nodes[1].token("teacher", Some(class));
    let welcome = rt.block_on(async { common::ws::hello(&nodes[1], class, &teacher).await.1 });
    assert_eq!(welcome["locked"], true, "the class's kept state taken up: {welcome}");
    assert_eq!(welcome["layout"], "document", "{welcome}");
}

#[test]
fn forged_and_duplicate_registrations_are_refused() {
    let (db, _pg) = database(false);
    let nodes = nodes(&db, 2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(ardoise_store::Store::open(&db)).unwrap();
    // Someone who can write to the database, but has no auth.secret, registers a node of
    // theirs and puts a class on it.
    let forged = ardoise_store::NodeRow {
        node_id: "rogue".into(),
        public_url: "http://127.0.0.1:9".into(),
        instance: "x".into(),
        capacity: 10_000,
        pupils: 0,
        classes: 0,
        cpu_permille: 0,
        kbps_out: 0,
        started_at: 1,
        heartbeat_at: ardoise_store::now_ms() + 3_600_000,
        signature: "forged".into(),
        draining: 0,
    };
    rt.block_on(store.heartbeat(&forged, 2_000)).unwrap();
    rt.block_on(store.place("classe2", "rogue", ardoise_store::now_ms())).unwrap();
    // Nobody is sent there: the class moves to a real node.
    let owner = eventually(Duration::from_secs(10), || match get(&format!("{}/whip/classe2", nodes[0].base)) {
        (503, _) => Err("503: the owner's death not judged yet".into()),
        _ => {
            let o = owner_seen_by(&nodes[0], "classe2");
            if nodes.iter().any(|n| n.base == o) { Ok(o) } else { Err(format!("sent to {o}")) }
        }
    });
    assert_eq!(owner_seen_by(&nodes[1], "classe2"), owner);
    // Both nodes asked at once about a class nobody owns yet: one placement, both agree.
    let racers: Vec<_> = nodes
        .iter()
        .map(|n| {
            let url = format!("{}/whip/classe5", n.base);
            let base = n.base.clone();
            std::thread::spawn(move || match get(&url) {
                (307, Some(location)) => origin(&location),
                (405, _) => base,
                other => panic!("{url}: {other:?}"),
            })
        })
        .collect();
    let seen: Vec<String> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(seen.iter().all(|o| *o == seen[0]), "one owner for a class placed by two nodes at once: {seen:?}");
    let admin = nodes[0].token("admin", None);
    let seen = nodes_seen_by(&nodes[0], &admin);
    assert!(seen["nodes"].as_array().unwrap().iter().all(|n| n["id"] != "rogue"), "{seen}");
    // A second process claiming a live node's id does not start.
    let mut env = nodes[1].env.clone();
    env.retain(|(k, _)| k != "ARDOISE__DATA__DIR");
    let dir = std::env::temp_dir().join(format!("ardoise-dup-{}", rand_u32()));
    let out = Command::new(bin())
        .args(["serve", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--config"])
        .arg(nodes[1].data_dir.join("test.toml"))
        .envs(env)
        .env("ARDOISE__DATA__DIR", &dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("held by another live node"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_drained_node_takes_no_new_class_and_drains_when_its_classes_end() {
    let (db, _pg) = database(false);
    let nodes: Vec<TestServer> =
        (1..=2).map(|k| node(&db, &format!("node-{k}"), &[("ARDOISE__CLUSTER__RELEASE_IDLE_SECS", "1")])).collect();
    let admin = nodes[0].token("admin", None);
    eventually(Duration::from_secs(10), || {
        let seen = nodes_seen_by(&nodes[0], &admin);
        if seen["nodes"].as_array().unwrap().len() == 2 { Ok(()) } else { Err(format!("{seen}")) }
    });
    // A class live on node-1 (a studio publishing through it).
    let teacher = nodes[0].token("teacher", Some("classe1"));
    let first = owner_seen_by(&nodes[0], "classe1");
    let on1 = nodes.iter().position(|n| n.base == first).unwrap();
    let studio = common::publishing_studio(&nodes[on1], "classe1", &teacher, |_| {});
    let id = format!("node-{}", on1 + 1);
    // Drained: from the command line, which waits.
    let drain = Command::new(bin())
        .args(["node", "drain", &id, "--wait-secs", "60", "--config"])
        .arg(nodes[0].data_dir.join("test.toml"))
        .envs(nodes[0].env.iter().cloned())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), || {
        let seen = nodes_seen_by(&nodes[0], &admin);
        let n = seen["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id.as_str()).cloned().unwrap();
        if n["draining"] == true { Ok(()) } else { Err(format!("{n}")) }
    });
    // New classes go elsewhere; the live one stays where it is.
    for k in 2..=5 {
        let o = owner_seen_by(&nodes[0], &format!("classe{k}"));
        assert_ne!(o, first, "classe{k} placed on the draining node");
    }
    assert_eq!(owner_seen_by(&nodes[1 - on1], "classe1"), first, "a live class is not cut");
    // The class ends: the node is drained.
    drop(studio);
    let out = drain.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("drained"), "{said}");
    // The same from the admin API: undrain, then drain.
    let url = format!("{}/api/admin/nodes/{id}/drain", nodes[1].base);
    let r = send("POST", &url, Some(&admin), Some("application/json"), r#"{"draining": false}"#);
    assert_eq!(r.status, 204, "{}", r.body);
    let r = send("POST", &url.replace(&id, "node-9"), Some(&admin), Some("application/json"), r#"{"draining": true}"#);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = send("POST", &url, Some(&teacher), Some("application/json"), r#"{"draining": true}"#);
    assert_eq!(r.status, 403, "{}", r.body);
}

#[test]
fn a_database_outage_keeps_live_classes_and_delays_new_ones() {
    let (db, pg) = database(true);
    let pg = pg.unwrap();
    let nodes = nodes(&db, 2);
    let teacher = nodes[0].token("teacher", Some("classe1"));
    let owner = owner_seen_by(&nodes[0], "classe1");
    let on = nodes.iter().position(|n| n.base == owner).unwrap();
    let _studio = common::publishing_studio(&nodes[on], "classe1", &teacher, |_| {});
    picture_back(&owner, "classe1", Instant::now(), &nodes[0].data_dir);
    pg.pause().unwrap();
    let down = Instant::now();
    // Live: a pupil of the live class still gets the picture from its node.
    let during = picture_back(&owner, "classe1", Instant::now(), &nodes[0].data_dir);
    // New: a class not placed yet cannot be, and says so.
    let (status, _) = get(&format!("{}/whip/classe3", nodes[0].base));
    assert_eq!(status, 503, "a new class with the database down");
    let r = send("GET", &format!("{}/whip/classe3", nodes[0].base), None, None, "");
    assert!(r.retry_after.is_some(), "503 says when to try again");
    // Ten seconds of outage, then back.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(down.elapsed())); // the outage's length
    pg.resume().unwrap();
    let back = eventually(Duration::from_secs(20), || match get(&format!("{}/whip/classe3", nodes[0].base)).0 {
        307 | 405 => Ok(down.elapsed()),
        s => Err(format!("classe3: {s}")),
    });
    assert_eq!(owner_seen_by(&nodes[1 - on], "classe1"), owner, "the live class stayed on its node");
    println!(
        "database down 10 s: a pupil of the live class had the picture in {during:?}; new classes placed again {back:?} after the outage began"
    );
}

#[test]
fn a_chromium_pupil_sent_to_the_owner_comes_back_by_itself_when_it_dies() {
    let (db, _pg) = database(false);
    let mut nodes = nodes_with(&db, 3, &DEFAULT_TIMINGS);
    let class = "classe4";
    let teacher = nodes[0].token("teacher", Some(class));
    let _studio = studio_on_every_node(&nodes, class, &teacher);
    let owner = owner_seen_by(&nodes[0], class);
    let wrong = nodes.iter().find(|n| n.base != owner).unwrap().base.clone();
    let admin = nodes[0].token("admin", None);
    let page = ClusterPage::open(&wrong, class, nodes[0].data_dir.join("killed"), &[&teacher, &admin]);
    assert_eq!(page.landed(), owner, "the page was sent to the class's owner");
    let dead = nodes.iter().position(|n| n.base == owner).unwrap();
    let _ = nodes[dead].child.kill(); // SIGKILL
    let v = page.signal();
    println!(
        "a Chromium pupil asked {wrong}, played on {owner} ({} ms to the first frame), and had the picture again on {} {} ms after the kill -9",
        v["first_frame_ms"], v["back_origin"], v["back_ms"]
    );
    assert!(v["back_ms"].as_f64().unwrap() < 15_000.0, "pictures back within 15 s: {v}");
    let unshared = v["recordings_unshared"].as_str().unwrap_or_default();
    assert_eq!(unshared.matches("node-").count(), 2, "the dashboard names the two other nodes: {v}");
}

#[test]
fn a_node_that_no_longer_owns_a_class_stops_it_and_sends_its_clients_on() {
    let (db, _pg) = database(false);
    let nodes = nodes(&db, 2);
    let class = "classe3";
    let owner = owner_seen_by(&nodes[0], class);
    let (on, other) = if nodes[0].base == owner { (0, 1) } else { (1, 0) };
    let r =
        send("POST", &format!("{owner}/api/classes/{class}/join"), None, Some("application/json"), r#"{"name":"Noé"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let token = serde_json::from_str::<Value>(&r.body).unwrap()["token"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut ws = rt.block_on(async { common::ws::hello(&nodes[on], class, &token).await.0 });
    // The class moves under the node's feet (as when another node took it over while this
    // one was cut off from the database).
    let store = rt.block_on(ardoise_store::Store::open(&db)).unwrap();
    let (from, to) = (format!("node-{}", on + 1), format!("node-{}", other + 1));
    rt.block_on(store.move_placement(class, &from, &to, ardoise_store::now_ms())).unwrap();
    // Within a heartbeat, the node stops the class: its page hears `moved`, and the class's
    // doors there send to the new owner.
    let moved = rt.block_on(async { common::ws::wait_for(&mut ws, "moved").await });
    assert_eq!(moved["type"], "moved");
    assert_eq!(owner_seen_by(&nodes[on], class), nodes[other].base, "sent on to the new owner");
    assert_eq!(owner_seen_by(&nodes[other], class), nodes[other].base);
}

#[test]
fn codes_sprayed_at_a_node_hit_the_look_up_limit_not_the_database() {
    let (db, _pg) = database(false);
    let node = node(&db, "node-1", &[("ARDOISE__LIMITS__JOINS_PER_IP_PER_MINUTE", "5")]);
    let statuses: Vec<u16> = (0..8).map(|i| get(&format!("{}/c/nope-{i:04}", node.base)).0).collect();
    assert_eq!(&statuses[..5], &[200; 5], "unknown codes: the page, which says so ({statuses:?})");
    assert!(statuses[5..].iter().all(|s| *s == 429), "then the limit: {statuses:?}");
    // A class this node knows costs no look-up.
    assert_eq!(get(&format!("{}/c/classe1", node.base)).0, 200);
}

#[test]
fn a_chromium_pupil_follows_its_class_when_it_moves_to_another_node() {
    let (db, _pg) = database(false);
    let nodes = nodes(&db, 2);
    let class = "classe6";
    let teacher = nodes[0].token("teacher", Some(class));
    let _studio = studio_on_every_node(&nodes, class, &teacher);
    let owner = owner_seen_by(&nodes[0], class);
    let (on, other) = if nodes[0].base == owner { (0, 1) } else { (1, 0) };
    let page = ClusterPage::open(&nodes[other].base, class, nodes[0].data_dir.join("moved"), &[]);
    assert_eq!(page.landed(), owner);
    // The class moves (as when its node was cut off and another took it over).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(ardoise_store::Store::open(&db)).unwrap();
    let (from, to) = (format!("node-{}", on + 1), format!("node-{}", other + 1));
    rt.block_on(store.move_placement(class, &from, &to, ardoise_store::now_ms())).unwrap();
    let v = page.signal();
    assert_eq!(v["back_origin"].as_str(), Some(nodes[other].base.as_str()), "{v}");
    println!("the class moved: the Chromium page played again on {} {} ms later", v["back_origin"], v["back_ms"]);
}

/// `class`'s recordings as `token` sees them through the node at `base` (following its
/// redirect to the class's node; an error while that node is dead and not yet replaced).
fn try_recordings_via(base: &str, class: &str, token: &str) -> Result<Value, String> {
    let r = ardoise_client::trust::agent()
        .get(&format!("{base}/api/classes/{class}/recordings"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| format!("{base}: {e}"))?;
    serde_json::from_str(&r.into_string().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// [`try_recordings_via`], which must answer.
fn recordings_via(base: &str, class: &str, token: &str) -> Value {
    try_recordings_via(base, class, token).unwrap()
}

/// Start recording `class` on the node at `base` (its studio publishing there), and wait
/// until every layer closed a segment: the recording's id.
fn record_until_every_layer_closed_a_segment(base: &str, class: &str, teacher: &str) -> String {
    let r = send("POST", &format!("{base}/api/classes/{class}/recording/start"), Some(teacher), None, "");
    assert_eq!(r.status, 201, "{}", r.body);
    eventually(Duration::from_secs(40), || {
        let listed = recordings_via(base, class, teacher);
        let closed = listed[0]["layers"].as_array().map_or(0, |ls| {
            ls.iter()
                .filter(|l| l["files"].as_array().is_some_and(|fs| fs.iter().any(|f| !f["end_s"].is_null())))
                .count()
        });
        if closed == 3 { Ok(()) } else { Err(format!("layers with a closed segment: {listed}")) }
    });
    serde_json::from_str::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_owned()
}

/// A pupil's fetch of a recording's first segment through the node at `base`: the listing
/// it saw and the bytes it got.
fn replay_first_segment(base: &str, class: &str, pupil: &str) -> (Value, Vec<u8>) {
    let listed = recordings_via(base, class, pupil);
    let file = &listed[0]["layers"][0]["files"][0];
    assert!(file["size"].as_u64().unwrap_or(0) > 1000, "its files are listed through {base}: {listed}");
    let response = no_redirects()
        .get(&format!("{base}{}", file["url"].as_str().unwrap()))
        .set("Authorization", &format!("Bearer {pupil}"))
        .call()
        .unwrap_or_else(|e| panic!("a segment through {base}: {e}"));
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
    (listed, body)
}

/// Two nodes sharing a recordings directory (short segments: the studio's keyframes close
/// them), and that directory.
fn nodes_sharing_recordings(db: &str) -> (Vec<TestServer>, std::path::PathBuf) {
    let shared = std::env::temp_dir().join(format!("ardoise-shared-recordings-{}", rand_u32()));
    let dir = shared.to_str().unwrap();
    (nodes_with(db, 2, &[("ARDOISE__RECORDING__DIR", dir), ("ARDOISE__RECORDING__SEGMENT_SECS", "2")]), shared)
}

#[test]
fn a_class_recorded_on_one_node_replays_through_another_that_shares_the_recordings_dir() {
    let (db, _pg) = database(false);
    let (mut nodes, shared) = nodes_sharing_recordings(&db);
    let class = "classe2";
    let admin = nodes[0].token("admin", None);
    let teacher = nodes[0].token("teacher", Some(class));
    let owner = owner_seen_by(&nodes[0], class);
    let (on, other) = if nodes[0].base == owner { (0, 1) } else { (1, 0) };
    // The lesson on its node, recorded until every layer closed a segment.
    let studio = common::publishing_studio(&nodes[on], class, &teacher, |_| {});
    let id = record_until_every_layer_closed_a_segment(&nodes[on].base, class, &teacher);
    let written = shared.join(class).join(&id);
    assert_eq!(
        std::fs::read_to_string(written.join("writer.node")).unwrap(),
        format!("node-{}", on + 1),
        "the recording says which node writes it"
    );
    // The other node restarts meanwhile: the recording it finds unfinished in the shared
    // directory is a live node's, and is left to it (not called interrupted).
    nodes[other].restart();
    assert_eq!(
        recordings_via(&owner, class, &teacher)[0]["state"],
        "recording",
        "another node's recording, left alone"
    );
    let r = send("POST", &format!("{owner}/api/classes/{class}/recording/stop"), Some(&teacher), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(studio);
    // The class's next lesson is on the other node.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(ardoise_store::Store::open(&db)).unwrap();
    let (from, to) = (format!("node-{}", on + 1), format!("node-{}", other + 1));
    rt.block_on(store.move_placement(class, &from, &to, ardoise_store::now_ms())).unwrap();
    eventually(Duration::from_secs(10), || {
        let seen = owner_seen_by(&nodes[on], class);
        if seen == nodes[other].base { Ok(()) } else { Err(format!("the class is still on {seen}")) }
    });
    // A pupil who missed the lesson replays it through the other node.
    let pupil = nodes[other].join(class, "Absente");
    let (listed, body) = replay_first_segment(&nodes[other].base, class, &pupil);
    assert_eq!(listed[0]["state"], "ready", "{listed}");
    let name = listed[0]["layers"][0]["files"][0]["name"].as_str().unwrap();
    assert_eq!(body, std::fs::read(written.join(name)).unwrap(), "the segment as written");
    // Both nodes see each other's marks; a third node with a directory of its own says it
    // cannot see theirs, and they say so of it.
    for node in &nodes {
        assert_eq!(nodes_seen_by(node, &admin)["recordings_unseen"], serde_json::json!([]), "{}", node.base);
    }
    let third = node(&db, "node-3", &[]);
    eventually(Duration::from_secs(10), || {
        let (theirs, its) = (nodes_seen_by(&nodes[0], &admin), nodes_seen_by(&third, &admin));
        if theirs["recordings_unseen"] == serde_json::json!(["node-3"])
            && its["recordings_unseen"] == serde_json::json!(["node-1", "node-2"])
        {
            Ok(())
        } else {
            Err(format!("node-1 misses {}, node-3 misses {}", theirs["recordings_unseen"], its["recordings_unseen"]))
        }
    });
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn what_a_dead_node_was_recording_replays_through_another_node_even_one_restarted_since() {
    let (db, _pg) = database(false);
    let (mut nodes, shared) = nodes_sharing_recordings(&db);
    let class = "classe5";
    let teacher = nodes[0].token("teacher", Some(class));
    let owner = owner_seen_by(&nodes[0], class);
    let (on, other) = if nodes[0].base == owner { (0, 1) } else { (1, 0) };
    let _studio = common::publishing_studio(&nodes[on], class, &teacher, |_| {});
    let id = record_until_every_layer_closed_a_segment(&owner, class, &teacher);
    // A power cut mid-lesson: the class's node dies with its recording unfinished, and the
    // other node comes back alone. At its start the dead node's row still looks alive (a
    // node first seen counts as beating); once it may judge deaths, it closes the
    // recording, and what was recorded replays.
    let _ = nodes[on].child.kill(); // SIGKILL
    nodes[other].restart();
    let back = Instant::now();
    let listed = eventually(Duration::from_secs(30), || {
        let listed = try_recordings_via(&nodes[other].base, class, &teacher)?;
        if listed[0]["state"] == "interrupted" { Ok(listed) } else { Err(format!("the recording, closed: {listed}")) }
    });
    println!("a dead node's recording closed by another {:?} after that one restarted: {listed}", back.elapsed());
    assert_eq!(listed[0]["id"].as_str(), Some(id.as_str()));
    assert!(listed[0]["duration_s"].as_f64().unwrap_or(0.0) >= 2.0, "its length is what its files reach: {listed}");
    let pupil = nodes[other].join(class, "Absente");
    let (seen, body) = replay_first_segment(&nodes[other].base, class, &pupil);
    assert_eq!(seen[0]["id"].as_str(), Some(id.as_str()), "the pupils see what was kept: {seen}");
    assert!(body.len() > 1000, "a segment of {} bytes", body.len());
    let _ = std::fs::remove_dir_all(&shared);
}
