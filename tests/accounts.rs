//! Accounts, classes that last, attendance and the waiting room, against the real binary on
//! its embedded SQLite (the store's own suite runs on SQLite and PostgreSQL:
//! `crates/store/tests/store.rs`; one test here runs the server on PostgreSQL too).
//!
//! 1. bootstrap from the command line, logins, CSRF, scopes and bad input (400, 403, 404,
//!    409, SQL injection stored as text), rate limits with `Retry-After`, and a wrong password
//!    taking as long as an unknown email;
//! 2. the waiting room: a pupil waits, cannot watch, is admitted or refused;
//! 3. `kill -9` and a restart: users, schools, classes, codes, timetables, attendance,
//!    logins and revocations are all still there, tokens stay valid; one pupil's data
//!    exported and erased; the retention sweeper deletes attendance older than its limit;
//! 4. signing keys rotate; a corrupt or missing database stops the start with a clear error;
//!    the server on PostgreSQL; lists at a département's size.

mod common;

use common::ws::{hello, next, open, send as ws_send, wait_for};
use common::{Reply, TestServer, assert_problem, recv_offer, send, send_with, wait_until};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";

fn json_of(r: &Reply) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", r.status, r.body))
}

/// A logged-in browser: its cookie and CSRF token.
struct Login {
    base: String,
    cookie: String,
    csrf: String,
    me: Value,
}

fn login(base: &str, email: &str, password: &str) -> Result<Login, Reply> {
    let body = json!({"email": email, "password": password}).to_string();
    let (r, set_cookie) =
        send_with("POST", &format!("{base}/api/login"), &[("Content-Type", "application/json")], &body);
    if r.status != 200 {
        return Err(r);
    }
    let set_cookie = set_cookie.expect("login sets a cookie");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict") && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Secure"), "plain http: no Secure flag ({set_cookie})");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let me = json_of(&r);
    Ok(Login { base: base.to_owned(), cookie, csrf: me["csrf"].as_str().unwrap().to_owned(), me })
}

impl Login {
    /// A request with the cookie (and the CSRF token unless `csrf` is false).
    fn call(&self, method: &str, path: &str, body: Option<Value>, csrf: bool) -> Reply {
        let mut h: Vec<(&str, &str)> = vec![("Cookie", &self.cookie)];
        if csrf {
            h.push(("X-CSRF-Token", &self.csrf));
        }
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        send_with(method, &format!("{}{path}", self.base), &h, &body).0
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, false)
    }

    fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body), true)
    }
}

/// A school made with `ardoise school add`.
fn school(server: &TestServer, dep: &str, name: &str) -> i64 {
    server.cli(&["school", "add", "--departement", dep, "--name", name], "").unwrap().parse().unwrap()
}

/// An admin of département 02 and two teachers in two schools; returns (admin, teacher A,
/// teacher B, school A, school B).
fn bootstrap(server: &TestServer) -> (Login, Login, Login, i64, i64) {
    let a = school(server, "02", "École Jean Macé");
    let b = school(server, "02", "Collège Condorcet");
    server
        .cli(
            &["user", "add", "--email", "Admin@Aisne.fr", "--role", "admin", "--departement", "02", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
        .unwrap();
    let admin = login(&server.base, "admin@aisne.fr", PASSWORD).unwrap_or_else(|r| panic!("{}", r.body));
    for (email, sc) in [("anne@ecole.fr", a), ("bruno@college.fr", b)] {
        let r = admin.post("/api/admin/teachers", json!({"email": email, "school": sc, "password": PASSWORD}));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let ta = login(&server.base, "anne@ecole.fr", PASSWORD).unwrap_or_else(|r| panic!("{}", r.body));
    let tb = login(&server.base, "bruno@college.fr", PASSWORD).unwrap_or_else(|r| panic!("{}", r.body));
    (admin, ta, tb, a, b)
}

#[test]
fn logins_scopes_and_bad_input() {
    let server = TestServer::start(&[
        ("ARDOISE__ACCOUNTS__LOGINS_PER_ACCOUNT_PER_MINUTE", "6"),
        ("ARDOISE__ACCOUNTS__LOGINS_PER_IP_PER_MINUTE", "1000"),
    ]);
    let (admin, ta, tb, school_a, school_b) = bootstrap(&server);
    assert_eq!(admin.me["role"], "admin");
    assert_eq!(ta.me["schools"][0]["id"], school_a);

    // The command line refuses a password on the command line and a weak one.
    assert!(server.cli(&["user", "add", "--email", "x@y.fr", "--role", "admin"], "").is_err());
    let weak = server.cli(&["user", "add", "--email", "x@y.fr", "--role", "admin", "--password-stdin"], "short\n");
    assert!(weak.is_err_and(|e| e.contains("12")), "a weak password is refused");

    // CSRF: a change with the cookie alone is refused and changes nothing.
    let r = admin.call(
        "POST",
        "/api/admin/teachers",
        Some(json!({"email": "c@d.fr", "school": school_a, "password": PASSWORD})),
        false,
    );
    assert_problem(&r, 403, "no CSRF token");
    assert!(login(&server.base, "c@d.fr", PASSWORD).is_err(), "nobody was created");
    // Without a login at all.
    assert_problem(&send("GET", &format!("{}/api/admin/teachers", server.base), None, None, ""), 401, "no cookie");

    // Bad input on teacher creation: 409, 404, 400, and SQL kept as text.
    let mk = |email: &str, school: i64, pw: &str| {
        admin.post("/api/admin/teachers", json!({"email": email, "school": school, "password": pw}))
    };
    assert_problem(&mk("ANNE@ecole.fr", school_a, PASSWORD), 409, "duplicate email (case-insensitive)");
    assert_problem(&mk("zoe@ecole.fr", 999_999, PASSWORD), 404, "unknown school");
    assert_problem(&mk("", school_a, PASSWORD), 400, "empty email");
    assert_problem(&mk(&format!("{}@x.fr", "a".repeat(300)), school_a, PASSWORD), 400, "oversized email");
    assert_problem(&mk("zoe@ecole.fr", school_a, ""), 400, "empty password");
    assert_problem(&mk("zoe@ecole.fr", school_a, &"p".repeat(5000)), 400, "oversized password");
    let r =
        admin.post("/api/admin/teachers", json!({"email": "zoe@ecole.fr", "school": "1 OR 1=1", "password": PASSWORD}));
    assert_problem(&r, 400, "a school id that is SQL");
    let sqli = "o'brien'--@ecole.fr";
    assert_eq!(mk(sqli, school_a, PASSWORD).status, 201, "quotes are data");
    assert!(login(&server.base, sqli, PASSWORD).is_ok(), "and log in as themselves");
    assert!(login(&server.base, "' OR '1'='1", "' OR '1'='1").is_err(), "SQL in a login is just a wrong login");
    let r = admin.post("/api/admin/schools", json!({"departement": "02", "name": "x'); DROP TABLE schools;--"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let schools = json_of(&admin.get("/api/admin/schools"));
    assert!(schools["schools"].as_array().unwrap().iter().any(|s| s["name"] == "x'); DROP TABLE schools;--"));
    assert_problem(
        &admin.post("/api/admin/schools", json!({"departement": "02", "name": ""})),
        400,
        "empty school name",
    );
    assert_problem(
        &admin.post("/api/admin/schools", json!({"departement": "02", "name": "n".repeat(500)})),
        400,
        "long name",
    );
    assert_problem(
        &admin.post("/api/admin/schools", json!({"departement": "03", "name": "Ailleurs"})),
        404,
        "a département out of reach",
    );

    // A teacher's class, made with the cookie: owner, school, policies, timetable.
    let title = "Robert'); DROP TABLE classes;--";
    let body = json!({"title": title, "policies": {"waiting_room": true}, "slots": [{"weekday": 1, "start_min": 510, "minutes": 55}]});
    assert_problem(&ta.call("POST", "/api/classes", Some(body.clone()), false), 403, "class without CSRF");
    let r = ta.post("/api/classes", body);
    assert_eq!(r.status, 201, "{}", r.body);
    let class = json_of(&r);
    let id = class["id"].as_str().unwrap().to_owned();
    let mine = json_of(&ta.get("/api/my/classes"));
    assert_eq!(mine[0]["title"], title, "stored as typed");
    assert_eq!(mine[0]["school"], school_a);
    assert_eq!(mine[0]["policies"]["waiting_room"], true);
    assert_eq!(mine[0]["slots"][0]["start_min"], 510);
    assert!(json_of(&tb.get("/api/my/classes")).as_array().unwrap().is_empty(), "B sees none of A's classes");
    assert_problem(
        &ta.post("/api/classes", json!({"title": "x", "school": school_b})),
        403,
        "a school A does not teach in",
    );
    assert_problem(&ta.post("/api/classes", json!({"title": "x", "school": 424_242})), 404, "an unknown school");
    assert_problem(
        &ta.post("/api/classes", json!({"title": "x", "slots": [{"weekday": 9, "start_min": 0, "minutes": 10}]})),
        400,
        "bad slot",
    );
    assert_problem(&ta.post("/api/classes", json!({"title": "t".repeat(121)})), 400, "long title");
    assert_problem(&ta.post("/api/classes", json!({"title": "x", "id": "a/../b"})), 400, "bad id");
    assert_problem(&ta.post("/api/classes", json!({"title": "x", "id": id})), 409, "an id taken");

    // Teacher B touching A's class: 403 everywhere, and nothing changes.
    let settings = json!({"title": "pris", "policies": {}, "slots": []});
    assert_problem(
        &tb.call("PUT", &format!("/api/classes/{id}/settings"), Some(settings.clone()), true),
        403,
        "B's settings",
    );
    assert_problem(&tb.get(&format!("/api/classes/{id}/attendance")), 403, "B reads attendance");
    assert_problem(&tb.get(&format!("/api/classes/{id}/attendance.csv")), 403, "B exports attendance");
    assert_problem(&tb.post(&format!("/api/classes/{id}/tokens"), json!({"for": "console"})), 403, "B mints a token");
    assert_problem(&tb.post(&format!("/api/classes/{id}/code"), json!({})), 403, "B rotates the code");
    assert_problem(&tb.call("DELETE", &format!("/api/classes/{id}"), None, true), 403, "B ends it");
    let mine = json_of(&ta.get("/api/my/classes"));
    assert_eq!(mine[0]["title"], title, "unchanged");
    assert_eq!(mine[0]["code"], class["code"], "unchanged");
    assert_problem(&ta.call("PUT", "/api/classes/nope/settings", Some(settings.clone()), true), 404, "unknown class");
    let r = ta.call(
        "PUT",
        &format!("/api/classes/{id}/settings"),
        Some(json!({"title": "Maths CM2", "policies": {"autolock": true}, "slots": []})),
        true,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(json_of(&ta.get("/api/my/classes"))[0]["title"], "Maths CM2");

    // The admin of the département resets B's password; B's logins end.
    let b_id = tb.me["id"].as_i64().unwrap();
    let r = admin.post(&format!("/api/admin/users/{b_id}/password"), json!({"password": "another long password"}));
    assert_eq!(r.status, 204, "{}", r.body);
    assert_problem(&tb.get("/api/me"), 401, "B's old login");
    assert!(login(&server.base, "bruno@college.fr", "another long password").is_ok());

    // The audit log holds who did what.
    let audit = json_of(&admin.get("/api/admin/audit"));
    let actions: Vec<&str> = audit.as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    for a in ["user.create", "school.create", "class.create", "class.settings", "user.password.reset"] {
        assert!(actions.contains(&a), "audit has {a}: {actions:?}");
    }
    assert_problem(&ta.get("/api/admin/audit"), 403, "a teacher reads no audit");

    // Logout ends the session.
    assert_eq!(ta.call("POST", "/api/logout", None, true).status, 204);
    assert_problem(&ta.get("/api/me"), 401, "after logout");

    // A wrong password and an unknown email take the same time (argon2id both ways).
    let time = |email: &str| {
        let t = Instant::now();
        let r = login(&server.base, email, "wrong password!!");
        assert!(r.is_err_and(|r| r.status == 401));
        t.elapsed()
    };
    // Alternated, so that the load of a shared machine weighs on both alike.
    let (mut known, mut unknown): (Vec<Duration>, Vec<Duration>) =
        (0..5).map(|i| (time("admin@aisne.fr"), time(&format!("nobody{i}@nowhere.fr")))).unzip();
    known.sort();
    unknown.sort();
    let (k, u) = (known[2].as_secs_f64(), unknown[2].as_secs_f64());
    assert!(k / u < 2.0 && u / k < 2.0, "median wrong password {k:.3} s vs unknown email {u:.3} s");

    // Per account: the 7th attempt in a minute is refused with Retry-After, even with the
    // right password. (Give or take a place that came back meanwhile, one per 10 s: the
    // attempts above take argon2's time each, on a shared machine. Without the limit, the
    // right password would always be let in.)
    let r = (0..3)
        .find_map(|_| login(&server.base, "admin@aisne.fr", PASSWORD).err())
        .expect("the right password refused after the account's attempts");
    assert_problem(&r, 429, "login attempts per account");
    assert!(r.retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s > 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_lets_pupils_in_one_by_one() {
    let server = TestServer::start(&[]);
    let (_admin, ta, _tb, _, _) = tokio::task::block_in_place(|| bootstrap(&server));
    let (id, code, console) = tokio::task::block_in_place(|| {
        let r = ta.post("/api/classes", json!({"title": "Salle d'attente", "policies": {"waiting_room": true}}));
        assert_eq!(r.status, 201, "{}", r.body);
        let c = json_of(&r);
        let t =
            json_of(&ta.post(&format!("/api/classes/{}/tokens", c["id"].as_str().unwrap()), json!({"for": "console"})));
        (
            c["id"].as_str().unwrap().to_owned(),
            c["code"].as_str().unwrap().to_owned(),
            t["token"].as_str().unwrap().to_owned(),
        )
    });
    let (mut teacher, welcome) = hello(&server, &id, &console).await;
    assert_eq!(welcome["you"]["role"], "teacher");
    let joined = |name: &str| {
        let r = send(
            "POST",
            &format!("{}/api/classes/{code}/join", server.base),
            None,
            Some("application/json"),
            &json!({"name": name}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        json_of(&r)
    };
    let lea = tokio::task::block_in_place(|| joined("Léa"));
    assert_eq!(lea["waiting_room"], true, "the join tells the page");
    let lea_token = lea["token"].as_str().unwrap();
    let mut pupil = open(&server, &id).await;
    ws_send(&mut pupil, json!({"type": "hello", "token": lea_token})).await;
    let first = next(&mut pupil).await.expect("an answer");
    assert_eq!(first["type"], "waiting", "{first}");
    let list = waiting_list(&mut teacher, 1).await;
    assert_eq!(list[0]["name"], "Léa");
    // Waiting: no chat, no hand, no picture.
    ws_send(&mut pupil, json!({"type": "raise_hand"})).await;
    assert_eq!(wait_for(&mut pupil, "error").await["code"], "forbidden");
    let r = tokio::task::block_in_place(|| {
        send("POST", &format!("{}/whep/{id}", server.base), Some(lea_token), Some("application/sdp"), &recv_offer())
    });
    assert_problem(&r, 403, "WHEP while waiting");

    ws_send(&mut teacher, json!({"type": "admit", "pupil": subject_of(lea_token)})).await;
    let w = wait_for(&mut pupil, "welcome").await;
    assert_eq!(w["you"]["name"], "Léa");
    waiting_list(&mut teacher, 0).await;
    let r = tokio::task::block_in_place(|| {
        send("POST", &format!("{}/whep/{id}", server.base), Some(lea_token), Some("application/sdp"), &recv_offer())
    });
    assert_eq!(r.status, 201, "admitted: WHEP works ({})", r.body);

    // Another pupil is refused from the waiting room: told so, and its token stops working.
    let tom = tokio::task::block_in_place(|| joined("Tom"));
    let tom_token = tom["token"].as_str().unwrap();
    let mut tom_ws = open(&server, &id).await;
    ws_send(&mut tom_ws, json!({"type": "hello", "token": tom_token})).await;
    assert_eq!(next(&mut tom_ws).await.unwrap()["type"], "waiting");
    waiting_list(&mut teacher, 1).await;
    ws_send(&mut teacher, json!({"type": "remove", "pupil": subject_of(tom_token)})).await;
    assert_eq!(wait_for(&mut tom_ws, "removed").await["id"], subject_of(tom_token));
    let mut again = open(&server, &id).await;
    ws_send(&mut again, json!({"type": "hello", "token": tom_token})).await;
    assert_eq!(next(&mut again).await.unwrap()["code"], "unauthorized", "a refused pupil's token is revoked");
}

/// The next waiting-room list of `n` pupils the teacher hears.
async fn waiting_list(teacher: &mut common::ws::Ws, n: usize) -> Vec<Value> {
    loop {
        let l = wait_for(teacher, "waiting_room").await["pupils"].as_array().unwrap().clone();
        if l.len() == n {
            return l;
        }
    }
}

/// Part `i` of a JWT (0: header, 1: claims), decoded.
fn jwt_part(token: &str, i: usize) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(i).unwrap()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The `sub` claim of a token (its pseudonym).
fn subject_of(token: &str) -> String {
    jwt_part(token, 1)["sub"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_kill_9() {
    let mut server = TestServer::start(&[]);
    let (admin, ta, _tb, school_a, _) = tokio::task::block_in_place(|| bootstrap(&server));
    let (id, code, console) = tokio::task::block_in_place(|| {
        let body = json!({"title": "Histoire", "slots": [{"weekday": 3, "start_min": 600, "minutes": 50}]});
        let c = json_of(&ta.post("/api/classes", body));
        let t =
            json_of(&ta.post(&format!("/api/classes/{}/tokens", c["id"].as_str().unwrap()), json!({"for": "console"})));
        (
            c["id"].as_str().unwrap().to_owned(),
            c["code"].as_str().unwrap().to_owned(),
            t["token"].as_str().unwrap().to_owned(),
        )
    });
    let (mut teacher, _) = hello(&server, &id, &console).await;
    let nina = server.join(&code, "Nina");
    let (_nina_ws, _) = hello(&server, &id, &nina).await;
    let spy = server.join(&code, "Spy");
    let (_spy_ws, _) = hello(&server, &id, &spy).await;
    ws_send(&mut teacher, json!({"type": "remove", "pupil": subject_of(&spy)})).await;
    let new_code = wait_for(&mut teacher, "code").await["code"].as_str().unwrap().to_owned();
    assert_ne!(new_code, code, "the removal rotated the code");
    // The records are written off the request path: wait for them.
    let att = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), "Nina's attendance", || {
            let a = json_of(&ta.get(&format!("/api/classes/{id}/attendance")));
            a.as_array().unwrap().iter().any(|r| r["name"] == "Nina").then_some(a)
        })
    });
    let joined_at =
        att.as_array().unwrap().iter().find(|r| r["name"] == "Nina").unwrap()["joined_at"].as_i64().unwrap();
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), "the new code stored", || {
            json_of(&admin.get(&format!("/api/admin/schools/{school_a}/classes")))
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["code"] == new_code.as_str())
                .then_some(())
        })
    });

    server.restart(); // SIGKILL, then the same data directory

    // Users, schools, logins: the same cookie still works.
    let me = json_of(&ta.get("/api/me"));
    assert_eq!(me["email"], "anne@ecole.fr");
    assert_eq!(json_of(&admin.get("/api/admin/schools"))["schools"].as_array().unwrap().len(), 2);
    // The class, its new code and its timetable.
    let mine = json_of(&ta.get("/api/my/classes"));
    assert_eq!(mine[0]["id"], id.as_str());
    assert_eq!(mine[0]["code"], new_code.as_str());
    assert_eq!(mine[0]["slots"][0]["weekday"], 3);
    let r = send("GET", &format!("{}/api/classes/{new_code}", server.base), None, None, "");
    assert_eq!(r.status, 200, "the code still finds the class: {}", r.body);
    assert_problem(&send("GET", &format!("{}/api/classes/{code}", server.base), None, None, ""), 404, "the old code");
    // Attendance: Nina's join time kept, her leave set by the restart.
    let a = json_of(&ta.get(&format!("/api/classes/{id}/attendance")));
    let row = a.as_array().unwrap().iter().find(|r| r["name"] == "Nina").expect("Nina's row").clone();
    assert_eq!(row["joined_at"].as_i64(), Some(joined_at));
    assert!(row["left_at"].as_i64().is_some_and(|l| l >= joined_at), "{row}");
    // Tokens stay valid: the teacher's console and Nina come back by themselves; the removed
    // pupil's token is still refused.
    let (_t, w) = hello(&server, &id, &console).await;
    assert_eq!(w["class"]["code"], new_code.as_str());
    let (_n, w) = hello(&server, &id, &nina).await;
    assert_eq!(w["you"]["name"], "Nina");
    let mut s = open(&server, &id).await;
    ws_send(&mut s, json!({"type": "hello", "token": spy})).await;
    assert_eq!(next(&mut s).await.unwrap()["code"], "unauthorized", "revocations last");
    // Nina came back in the same session: one row, joined at her first join, present again.
    let a = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), "Nina present again", || {
            let a = json_of(&ta.get(&format!("/api/classes/{id}/attendance")));
            a.as_array().unwrap().iter().any(|r| r["name"] == "Nina" && r["left_at"].is_null()).then_some(a)
        })
    });
    assert_eq!(a.as_array().unwrap().iter().filter(|r| r["name"] == "Nina").count(), 1, "merged: {a}");
    // CSV export: one line per pupil and session, with the join time.
    let csv = ta.get(&format!("/api/classes/{id}/attendance.csv"));
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    assert!(csv.body.lines().any(|l| l.contains(",Nina,") && l.contains('T') && l.contains('Z')), "{}", csv.body);

    // RGPD: an admin exports then erases one pupil's pseudonymous data; a teacher may not.
    let nina_id = subject_of(&nina);
    assert_problem(&ta.call("DELETE", &format!("/api/admin/pupils/{nina_id}"), None, true), 403, "a teacher erases");
    let export = json_of(&admin.get(&format!("/api/admin/pupils/{nina_id}")));
    assert!(export.as_array().unwrap().iter().all(|r| r["name"] == "Nina") && !export.as_array().unwrap().is_empty());
    assert_eq!(admin.call("DELETE", &format!("/api/admin/pupils/{nina_id}"), None, true).status, 204);
    assert!(json_of(&admin.get(&format!("/api/admin/pupils/{nina_id}"))).as_array().unwrap().is_empty());
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), "the export and erasure audited", || {
            let audit = json_of(&admin.get("/api/admin/audit"));
            let has = |a: &str| audit.as_array().unwrap().iter().any(|e| e["action"] == a);
            (has("pupil.export") && has("pupil.erase") && has("attendance.export")).then_some(())
        })
    });
    // Retention (30 days by default): a session of 40 days ago, written while the server is
    // down, is swept at the next start; this week's attendance stays.
    drop((_t, _n, s));
    let _ = server.child.kill();
    let _ = server.child.wait();
    let db = format!("sqlite://{}", server.data_dir.join("ardoise.db").display());
    let old = ardoise_store::now_ms() - 40 * 86_400_000;
    let store = ardoise_store::Store::open(&db).await.unwrap();
    let session = store.start_session(&id, old).await.unwrap();
    store.attendance_join(session, "p-old", "Ancienne", old).await.unwrap();
    store.end_session(session, old + 3_000_000).await.unwrap();
    let recent = store.start_session(&id, ardoise_store::now_ms() - 3_600_000).await.unwrap();
    store.attendance_join(recent, "p-new", "Récente", ardoise_store::now_ms() - 3_600_000).await.unwrap();
    store.close().await;
    server.restart();
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), "old attendance swept", || {
            let a = json_of(&ta.get(&format!("/api/classes/{id}/attendance")));
            let names: Vec<&str> = a.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
            assert!(names.contains(&"Récente"), "recent attendance stays: {names:?}");
            (!names.contains(&"Ancienne")).then_some(())
        })
    });
}

#[test]
fn the_server_runs_on_postgresql() {
    let (url, _cluster) = ardoise_store::test_cluster::database_url().unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let db =
        tokio::runtime::Runtime::new().unwrap().block_on(ardoise_store::test_cluster::fresh_database(&url)).unwrap();
    let mut server = TestServer::start(&[("ARDOISE__DATABASE__URL", &db)]);
    let (_admin, ta, _, _, _) = bootstrap(&server);
    let r = ta.post("/api/classes", json!({"title": "Sur PostgreSQL"}));
    assert_eq!(r.status, 201, "{}", r.body);
    server.restart();
    assert_eq!(json_of(&ta.get("/api/my/classes"))[0]["title"], "Sur PostgreSQL");
    let check = server.cli(&["db", "check"], "").unwrap_or_else(|e| panic!("db check: {e}"));
    assert!(check.contains("database ok") && check.contains("Postgres"), "{check}");
}

/// Issue 13's measure: "my classes", the admin's class list and a class's attendance with
/// 1,000 classes and 10,000 attendance rows. Under 100 ms each (p95 of 20) in a release
/// build; a debug build (make test) is held to 1 s. `cargo test --release --test accounts
/// lists -- --nocapture` prints the figures for benches/RESULTS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_with_1000_classes_and_10000_attendance_rows_answer_fast() {
    let mut server = TestServer::start(&[]);
    let (admin, ta, _tb, school_a, _) = tokio::task::block_in_place(|| bootstrap(&server));
    let teacher = ta.me["id"].as_i64().unwrap();
    let _ = server.child.kill();
    let _ = server.child.wait();
    let store = ardoise_store::Store::open(&format!("sqlite://{}", server.data_dir.join("ardoise.db").display()))
        .await
        .unwrap();
    let t0 = Instant::now();
    let now = ardoise_store::now_ms();
    for i in 0..1000 {
        let row = ardoise_store::ClassRow {
            id: format!("classe-{i:04}"),
            school: Some(school_a),
            teacher: Some(teacher),
            title: format!("Classe {i}"),
            code: format!("CODE{i:04}"),
            code_expires_at: None,
            policies: Default::default(),
            created_at: now - i,
            ended_at: None,
        };
        store.insert_class(&row).await.unwrap();
        store
            .set_slots(&row.id, &[ardoise_proto::Slot { weekday: 1 + i % 5, start_min: 480, minutes: 55 }])
            .await
            .unwrap();
    }
    // 10,000 rows: 40 sessions of 250 pupils in the first class.
    for s in 0..40 {
        let at = now - (40 - s) * 86_400_000 / 2;
        let session = store.start_session("classe-0000", at).await.unwrap();
        for p in 0..250 {
            store.attendance_join(session, &format!("p{s}-{p}"), &format!("Élève {p}"), at + p).await.unwrap();
        }
        store.end_session(session, at + 3_300_000).await.unwrap();
    }
    store.close().await;
    println!("seeded 1,000 classes and 10,000 attendance rows in {:?}", t0.elapsed());
    server.restart();
    let bound = if cfg!(debug_assertions) { 1000.0 } else { 100.0 };
    let lists: [(&str, &Login, String, usize); 5] = [
        ("my classes", &ta, "/api/my/classes".into(), 1000),
        ("a school's classes", &admin, format!("/api/admin/schools/{school_a}/classes"), 1000),
        ("attendance", &ta, "/api/classes/classe-0000/attendance".into(), 10_000),
        ("attendance CSV", &ta, "/api/classes/classe-0000/attendance.csv".into(), 10_001),
        ("teachers", &admin, "/api/admin/teachers".into(), 2),
    ];
    tokio::task::block_in_place(|| {
        for (what, who, path, n) in lists {
            let mut ms: Vec<f64> = (0..20)
                .map(|_| {
                    let t = Instant::now();
                    let r = who.get(&path);
                    let e = t.elapsed().as_secs_f64() * 1000.0;
                    assert_eq!(r.status, 200, "{what}: {}", r.body);
                    let len = if path.ends_with(".csv") {
                        r.body.lines().count()
                    } else {
                        json_of(&r).as_array().unwrap().len()
                    };
                    assert_eq!(len, n, "{what}: every row");
                    e
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            let (p50, p95) = (ms[10], ms[18]);
            println!("LISTS {what}: {n} rows, p50 {p50:.1} ms, p95 {p95:.1} ms");
            assert!(p95 < bound, "{what}: p95 {p95:.1} ms (bound {bound} ms)");
        }
        for page in ["/my", "/admin/schools", "/login"] {
            let t = Instant::now();
            assert_eq!(admin.get(page).status, 200);
            assert!(t.elapsed().as_secs_f64() * 1000.0 < bound, "{page}");
        }
    });
}

/// The `kid` in a token's header.
fn kid_of(token: &str) -> String {
    jwt_part(token, 0)["kid"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn signing_keys_rotate_and_retired_keys_are_refused() {
    let server = TestServer::start(&[]);
    let overview = |t: &str| send("GET", &format!("{}/api/admin/classes", server.base), Some(t), None, "").status;
    let t0 = server.token("admin", None);
    let k0 = kid_of(&t0);
    assert!(!k0.is_empty(), "tokens name their key");
    assert_eq!(overview(&t0), 200);
    let k1 = server.cli(&["keys", "rotate"], "").unwrap();
    // The running server takes the new key within seconds (it re-reads them every 5 s).
    let t1 = wait_until(Duration::from_secs(15), "a token signed with the new key accepted", || {
        let t = server.token("admin", None);
        (kid_of(&t) == k1 && overview(&t) == 200).then_some(t)
    });
    assert_eq!(overview(&t0), 200, "the previous key still verifies");
    server.cli(&["keys", "rotate"], "").unwrap();
    wait_until(Duration::from_secs(15), "the oldest key retired", || (overview(&t0) == 401).then_some(()));
    assert_eq!(overview(&t1), 200, "the second newest key still verifies");
    let r = send("GET", &format!("{}/api/admin/classes", server.base), Some(&t0), None, "");
    assert_problem(&r, 401, "a token of a retired key");
}

#[test]
fn a_corrupt_or_missing_database_is_a_clear_error_never_a_reset() {
    let mut server = TestServer::start(&[]);
    let (_admin, _ta, _tb, _, _) = bootstrap(&server);
    let _ = server.child.kill();
    let _ = server.child.wait();
    let db = server.data_dir.join("ardoise.db");
    let serve = |server: &TestServer| {
        std::process::Command::new(common::bin())
            .args(["serve", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--config"])
            .arg(server.data_dir.join("test.toml"))
            .envs(server.env.iter().cloned())
            .output()
            .unwrap()
    };
    // Missing: the marker left at creation says it existed.
    std::fs::rename(&db, server.data_dir.join("moved.db")).unwrap();
    let _ = std::fs::remove_file(server.data_dir.join("ardoise.db-wal"));
    let _ = std::fs::remove_file(server.data_dir.join("ardoise.db-shm"));
    let out = serve(&server);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("missing but was created before"), "{err}");
    assert!(!db.exists(), "no empty database made in its place");
    // Corrupt: garbage where the file was.
    std::fs::write(&db, vec![0x5a; 64 * 1024]).unwrap();
    let out = serve(&server);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not a usable SQLite database"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5a; 64 * 1024], "left as it was");
    let check = server.cli(&["db", "check"], "");
    assert!(check.is_err_and(|e| e.contains("not a usable SQLite database")));
}
