//! A département on several nodes, for the tests: `ardoise serve` nodes on loopback sharing
//! one real PostgreSQL (`$DATABASE_URL`, else a private server the test starts).

use super::{TestServer, eventually, free_port, send};
use ardoise_store::test_cluster::{PgCluster, database_url, fresh_database};
use serde_json::Value;
use std::time::Duration;

/// The token secret every node shares.
pub const SECRET: &str = "the-token-secret-of-the-test-0123456789abcdef";
/// The secret of the nodes' registrations.
pub const CLUSTER_SECRET: &str = "the-cluster-secret-of-the-test-0123456789abcdef";
/// Classes of [`config`].
pub const CLASSES: usize = 6;

/// The test configuration with classes `classe1…classe6` (each one's join code is its id).
pub fn config() -> String {
    let mut c = super::TEST_CONFIG.to_owned();
    for k in 1..=CLASSES {
        c.push_str(&format!("\n[[classes]]\nid = \"classe{k}\"\ncode = \"classe{k}\"\ntitle = \"Classe {k}\"\n"));
    }
    c
}

/// A database for one test, and the private server holding it (if `$DATABASE_URL` is not
/// set, or `own` asks for one).
pub fn database(own: bool) -> (String, Option<PgCluster>) {
    let (base, pg) = if own {
        let pg = PgCluster::start().unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
        (pg.url("postgres"), Some(pg))
    } else {
        database_url().unwrap_or_else(|e| panic!("PostgreSQL: {e}"))
    };
    let db = tokio::runtime::Runtime::new().unwrap().block_on(fresh_database(&base)).unwrap();
    (db, pg)
}

/// Node `id` of the cluster on `db`.
pub fn node(db: &str, id: &str, extra: &[(&str, &str)]) -> TestServer {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut env = vec![
        ("ARDOISE__DATABASE__URL", db),
        ("ARDOISE__AUTH__SECRET", SECRET),
        ("ARDOISE__CLUSTER__SECRET", CLUSTER_SECRET),
        ("ARDOISE__CLUSTER__NODE_ID", id),
        ("ARDOISE__CLUSTER__PUBLIC_URL", &url),
        ("ARDOISE__CLUSTER__HEARTBEAT_MS", "250"),
        ("ARDOISE__CLUSTER__DEAD_AFTER_MS", "2000"),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(&format!("127.0.0.1:{port}"), &config(), &env)
}

/// `n` nodes, once each sees all of them alive.
pub fn nodes(db: &str, n: usize) -> Vec<TestServer> {
    nodes_with(db, n, &[])
}

/// The heartbeat and death timings of `config/default.toml` (the tests' nodes beat faster).
pub const DEFAULT_TIMINGS: [(&str, &str); 2] =
    [("ARDOISE__CLUSTER__HEARTBEAT_MS", "1000"), ("ARDOISE__CLUSTER__DEAD_AFTER_MS", "5000")];

/// [`nodes`] with `extra` settings.
pub fn nodes_with(db: &str, n: usize, extra: &[(&str, &str)]) -> Vec<TestServer> {
    let nodes: Vec<TestServer> = (1..=n).map(|k| node(db, &format!("node-{k}"), extra)).collect();
    for node in &nodes {
        let admin = node.token("admin", None);
        eventually(Duration::from_secs(10), || {
            let seen = nodes_seen_by(node, &admin);
            let alive = seen["nodes"].as_array().unwrap().iter().filter(|n| n["alive"] == true).count();
            if alive == n { Ok(()) } else { Err(format!("{} sees {seen}", node.base)) }
        });
    }
    nodes
}

/// `GET /api/admin/nodes` of `node`.
pub fn nodes_seen_by(node: &TestServer, admin: &str) -> Value {
    let r = send("GET", &format!("{}/api/admin/nodes", node.base), Some(admin), None, "");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// An HTTP client that does not follow redirects.
pub fn no_redirects() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(10)).build()
}

/// `GET url` without following redirects: (status, Location).
pub fn get(url: &str) -> (u16, Option<String>) {
    let r = match no_redirects().get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    (r.status(), r.header("Location").map(String::from))
}

/// The origin of an absolute URL.
pub fn origin(url: &str) -> String {
    ardoise_client::http::resolve(url, "")
}

/// The origin `node` sends `class`'s requests to: another node's (its 307), or its own.
pub fn owner_seen_by(node: &TestServer, class: &str) -> String {
    match get(&format!("{}/whip/{class}", node.base)) {
        (307, Some(location)) => origin(&location),
        // A GET on a WHIP endpoint: the owner's router says it takes POST only.
        (405, _) => node.base.clone(),
        other => panic!("{} about {class}: {other:?}", node.base),
    }
}
