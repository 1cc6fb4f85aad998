//! The store's suite, on SQLite and on a real PostgreSQL server (`$DATABASE_URL`, else a
//! private cluster from Debian's `postgresql` started by the test): migrations from empty to
//! head and again, every table's round trip, unique keys, cascades, retention sweeps, and
//! SQL-injection attempts stored as plain text.

use ardoise_store::test_cluster::{database_url, fresh_database};
use ardoise_store::{
    ClassPolicies, ClassRow, NewUser, NodeRow, RecordingRow, Slot, Store, StoreError, UserRole, now_ms,
};

async fn suite(store: &Store) {
    // Migrations: applied at connect, again is a no-op, check agrees.
    store.migrate().await.unwrap();
    let n = store.check().await.unwrap();
    assert!(n >= 1);

    // The organisation tree.
    let dep = store.create_departement("02", "Aisne").await.unwrap();
    assert!(matches!(store.create_departement("02", "Encore").await, Err(StoreError::Duplicate(_))));
    let school = store.create_school(dep, "Collège Jean Racine").await.unwrap();
    let other_school = store.create_school(dep, "École du Centre").await.unwrap();
    assert_eq!(store.school(school).await.unwrap().name, "Collège Jean Racine");
    assert!(matches!(store.school(999_999).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.schools(Some(dep)).await.unwrap().len(), 2);

    // Users: unique email (case-insensitive), teacher's schools, injection as text.
    let evil = "x'); DROP TABLE users; --@ecole.fr";
    let admin = store
        .create_user(&NewUser {
            email: "Admin@Aisne.fr",
            password_hash: "h1",
            role: UserRole::Admin,
            departement: Some(dep),
            school: None,
        })
        .await
        .unwrap();
    let teacher = store
        .create_user(&NewUser {
            email: evil,
            password_hash: "h2",
            role: UserRole::Teacher,
            departement: None,
            school: Some(school),
        })
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_user(&NewUser {
                email: "admin@aisne.fr",
                password_hash: "x",
                role: UserRole::Teacher,
                departement: None,
                school: None
            })
            .await,
        Err(StoreError::Duplicate("email"))
    ));
    assert!(matches!(
        store
            .create_user(&NewUser {
                email: "t2@e.fr",
                password_hash: "x",
                role: UserRole::Teacher,
                departement: None,
                school: Some(424_242)
            })
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.user_by_email("ADMIN@aisne.fr").await.unwrap().unwrap().id, admin);
    assert_eq!(store.user(teacher).await.unwrap().email, evil.to_lowercase());
    assert_eq!(store.user_count().await.unwrap(), 2, "the users table is still there");
    store.add_teacher_school(teacher, other_school).await.unwrap();
    store.add_teacher_school(teacher, other_school).await.unwrap();
    assert_eq!(store.teacher_schools(teacher).await.unwrap(), vec![school, other_school]);
    assert_eq!(store.teachers(Some(other_school)).await.unwrap().len(), 1);
    store.set_password(teacher, "h3").await.unwrap();
    assert_eq!(store.user(teacher).await.unwrap().password_hash, "h3");

    // Login sessions.
    let later = now_ms() + 60_000;
    store.create_login("hash-a", teacher, "csrf-a", later).await.unwrap();
    store.create_login("hash-old", teacher, "csrf-b", now_ms() - 1).await.unwrap();
    assert_eq!(store.login("hash-a").await.unwrap().unwrap().csrf, "csrf-a");
    assert!(store.login("hash-old").await.unwrap().is_none(), "expired");
    assert!(store.login("' OR '1'='1").await.unwrap().is_none());
    assert_eq!(store.prune_logins().await.unwrap(), 1);
    store.delete_login("hash-a").await.unwrap();
    assert!(store.login("hash-a").await.unwrap().is_none());

    // Classes, timetables, codes.
    let class = ClassRow {
        id: "cm2-b".into(),
        school: Some(school),
        teacher: Some(teacher),
        title: "CM2 B'; --".into(),
        code: "abcd2345".into(),
        code_expires_at: Some(now_ms() + 3_600_000),
        policies: ClassPolicies { waiting_room: true, ..Default::default() },
        created_at: now_ms(),
        ended_at: None,
    };
    store.insert_class(&class).await.unwrap();
    assert!(matches!(store.insert_class(&class).await, Err(StoreError::Duplicate(_))));
    let back = store.class("cm2-b").await.unwrap();
    assert_eq!(back, class);
    store.set_class_code("cm2-b", "zzzz9999", None).await.unwrap();
    assert_eq!(store.class("cm2-b").await.unwrap().code, "zzzz9999");
    assert_eq!(store.class_by_code("zzzz9999").await.unwrap().map(|c| c.id), Some("cm2-b".to_owned()));
    assert_eq!(store.class_by_code("abcd2345").await.unwrap(), None, "the old code");
    let slots = [
        Slot { weekday: 1, start_min: 8 * 60 + 30, minutes: 55 },
        Slot { weekday: 4, start_min: 14 * 60, minutes: 60 },
    ];
    store.set_slots("cm2-b", &slots).await.unwrap();
    assert_eq!(store.slots("cm2-b").await.unwrap(), slots);
    store.set_class_settings("cm2-b", "CM2 B", ClassPolicies { recording: true, ..Default::default() }).await.unwrap();
    assert!(store.class("cm2-b").await.unwrap().policies.recording);
    assert_eq!(store.classes_of_teacher(teacher, 10).await.unwrap().len(), 1);
    assert_eq!(store.open_classes().await.unwrap().len(), 1);

    // Sessions and attendance, merged across reconnections.
    let t0 = now_ms();
    let s = store.start_session("cm2-b", t0).await.unwrap();
    assert_eq!(store.start_session("cm2-b", t0 + 5).await.unwrap(), s, "one open session at a time");
    store.attendance_join(s, "pupil-1", "Léa", t0 + 10).await.unwrap();
    store.attendance_link(s, "pupil-1", Some("tcp"), None).await.unwrap();
    store.attendance_leave(s, "pupil-1", t0 + 20).await.unwrap();
    store.attendance_join(s, "pupil-1", "Léa", t0 + 30).await.unwrap();
    store.attendance_link(s, "pupil-1", None, Some("weak")).await.unwrap();
    store.attendance_join(s, "pupil-2", "Noé", t0 + 40).await.unwrap();
    store.end_session(s, t0 + 100).await.unwrap();
    let rows = store.attendance_of_class("cm2-b", 100).await.unwrap();
    let lea = rows.iter().find(|r| r.pupil == "pupil-1").unwrap();
    assert_eq!((lea.joined_at, lea.left_at), (t0 + 10, Some(t0 + 100)), "first join, last leave");
    assert_eq!((lea.transport.as_deref(), lea.quality.as_deref()), (Some("tcp"), Some("weak")));
    assert!(store.open_session("cm2-b").await.unwrap().is_none());
    assert_eq!(store.attendance_of_pupil("pupil-2").await.unwrap().len(), 1);
    assert_eq!(store.erase_pupil("pupil-2").await.unwrap(), 1);
    assert!(store.attendance_of_pupil("pupil-2").await.unwrap().is_empty());
    assert_eq!(store.sweep_attendance(t0 + 11).await.unwrap(), 1);

    // Recordings: described, finished, set by the teacher, swept by retention.
    let rec = RecordingRow {
        class: "cm2-b".into(),
        id: "1000".into(),
        title: "CM2 B".into(),
        started_at: 1000,
        duration_ms: 0,
        state: "recording".into(),
        published: 1,
        downloadable: 0,
        expires_at: 5000,
    };
    store.insert_recording(&rec).await.unwrap();
    assert!(matches!(store.insert_recording(&rec).await, Err(StoreError::Duplicate(_))));
    store
        .insert_recording(&RecordingRow { id: "2000".into(), started_at: 2000, expires_at: 9000, ..rec.clone() })
        .await
        .unwrap();
    assert_eq!(store.unfinished_recordings().await.unwrap().len(), 2);
    store.finish_recording("cm2-b", "1000", "ready", 20_000).await.unwrap();
    store.set_recording("cm2-b", "1000", "Fractions", false, true).await.unwrap();
    let back = store.recording("cm2-b", "1000").await.unwrap();
    assert_eq!((back.title.as_str(), back.state.as_str(), back.duration_ms), ("Fractions", "ready", 20_000));
    assert_eq!((back.published, back.downloadable), (0, 1));
    assert!(matches!(store.set_recording("cm2-b", "404", "x", true, true).await, Err(StoreError::NotFound(_))));
    let listed = store.recordings_of_class("cm2-b").await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["2000", "1000"], "newest first");
    let expired = store.expired_recordings(6000).await.unwrap();
    assert_eq!(expired.len(), 1, "one past its retention");
    store.delete_recording("cm2-b", &expired[0].id).await.unwrap();
    assert!(matches!(store.recording("cm2-b", "1000").await, Err(StoreError::NotFound(_))));
    store.delete_recording("cm2-b", "2000").await.unwrap();

    // Audit.
    store.audit("user:1", "class.create", "class:cm2-b", "").await.unwrap();
    store.audit("user:1", "pupil.remove", "pupil:x", "'; DELETE FROM audit; --").await.unwrap();
    let log = store.audit_log(None, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action, "pupil.remove", "newest first");
    assert_eq!(store.audit_log(Some(log[0].id), 10).await.unwrap().len(), 1);
    assert_eq!(store.sweep_audit(now_ms() + 1).await.unwrap(), 2);

    // Revocations and signing keys.
    store.revoke_subject("sub-1", 1000).await.unwrap();
    store.revoke_subject("sub-1", 500).await.unwrap();
    assert_eq!(store.revoked_subjects(900).await.unwrap(), vec![("sub-1".to_owned(), 1000)], "the later expiry kept");
    assert_eq!(store.sweep_revocations(2000).await.unwrap(), 1);
    assert_eq!(store.bump_role_version("teacher").await.unwrap(), 1);
    assert_eq!(store.bump_role_version("teacher").await.unwrap(), 2);
    assert_eq!(store.role_versions().await.unwrap(), vec![("teacher".to_owned(), 2)]);
    store.add_signing_key("k1", "secret-1").await.unwrap();
    store.add_signing_key("k2", "secret-2").await.unwrap();
    assert_eq!(store.signing_keys().await.unwrap().len(), 2);
    store.retire_signing_keys(1).await.unwrap();
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);

    // Ending a class keeps it (and its attendance) until retention.
    store.end_class("cm2-b", now_ms()).await.unwrap();
    assert!(store.open_classes().await.unwrap().is_empty());
    assert!(store.class("cm2-b").await.unwrap().ended_at.is_some());

    cluster(store).await;
    assert_eq!(store.class_count().await.unwrap(), 1);
}

fn node(id: &str, instance: &str, at: i64) -> NodeRow {
    NodeRow {
        node_id: id.into(),
        public_url: format!("http://127.0.0.1:80{}", &id[id.len() - 2..]),
        instance: instance.into(),
        capacity: 100,
        pupils: 3,
        classes: 1,
        cpu_permille: 120,
        kbps_out: 900,
        started_at: 1,
        heartbeat_at: at,
        signature: "sig".into(),
        draining: 0,
    }
}

/// Nodes and placements: a live node's id is never shared, a class is placed once, and of
/// many nodes racing to place or move it, exactly one wins.
async fn cluster(store: &Store) {
    store.heartbeat(&node("node-01", "a", 1_000), 5_000).await.unwrap();
    store.heartbeat(&node("node-01", "a", 2_000), 5_000).await.unwrap();
    let e = store.heartbeat(&node("node-01", "b", 3_000), 5_000).await.unwrap_err();
    assert!(matches!(e, StoreError::Duplicate(_)), "a second process on a live node's id: {e}");
    store.set_draining("node-01", true).await.unwrap();
    store.heartbeat(&node("node-01", "a", 4_000), 5_000).await.unwrap();
    assert_eq!(store.nodes().await.unwrap()[0].draining, 1, "its own heartbeat keeps the drain");
    store.heartbeat(&node("node-01", "b", 9_001), 5_000).await.unwrap();
    let rows = store.nodes().await.unwrap();
    assert_eq!((rows[0].instance.as_str(), rows[0].draining, rows[0].heartbeat_at), ("b", 0, 9_001), "taken over");
    assert!(matches!(store.set_draining("node-99", true).await, Err(StoreError::NotFound(_))));

    assert_eq!(store.placement("cm1").await.unwrap(), None);
    let p = store.place("cm1", "node-01", 10).await.unwrap();
    assert_eq!((p.node_id.as_str(), p.epoch), ("node-01", 1));
    assert_eq!(store.place("cm1", "node-02", 11).await.unwrap().node_id, "node-01", "the first placement holds");
    let moved = store.move_placement("cm1", "node-01", "node-02", 12).await.unwrap();
    assert_eq!((moved.node_id.as_str(), moved.epoch), ("node-02", 2));
    let late = store.move_placement("cm1", "node-01", "node-03", 13).await.unwrap();
    assert_eq!(late.node_id, "node-02", "a move from an owner that no longer owns it changes nothing");
    assert!(!store.release("cm1", "node-01").await.unwrap());
    assert!(store.release("cm1", "node-02").await.unwrap());

    // Eight nodes race to place one class, then to move it away from its dead owner.
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        racers.spawn(async move { store.place("race", &format!("node-{i}"), 20).await.unwrap().node_id });
    }
    let placed = racers.join_all().await;
    assert!(placed.iter().all(|n| *n == placed[0]), "every racer sees one owner: {placed:?}");
    let dead = placed[0].clone();
    let mut heirs = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (store, dead) = (store.clone(), dead.clone());
        heirs.spawn(async move { store.move_placement("race", &dead, &format!("heir-{i}"), 30).await.unwrap() });
    }
    let moved = heirs.join_all().await;
    assert!(moved.iter().all(|p| p.node_id == moved[0].node_id && p.epoch == 2), "one heir: {moved:?}");
    assert_eq!(store.placements_of(&moved[0].node_id).await.unwrap().len(), 1);
    assert_eq!(store.placement_counts().await.unwrap(), vec![(moved[0].node_id.clone(), 1)]);

    store.heartbeat(&node("node-02", "c", 9_100), 5_000).await.unwrap();
    store.place("cm2", "node-02", 40).await.unwrap();
    store.leave_cluster("node-02", "someone else").await.unwrap();
    assert_eq!(store.nodes().await.unwrap().len(), 2, "only the holder leaves");
    store.leave_cluster("node-02", "c").await.unwrap();
    assert_eq!(store.nodes().await.unwrap().len(), 1);
    assert_eq!(store.placement("cm2").await.unwrap(), None, "a node leaving releases its classes");

    assert_eq!(store.live_state("cm2", 0).await.unwrap(), None);
    store.save_live_state("cm2", r#"{"hands":["p1"]}"#, 50).await.unwrap();
    store.save_live_state("cm2", r#"{"hands":["p1","p2"]}"#, 51).await.unwrap();
    assert_eq!(store.live_state("cm2", 51).await.unwrap().as_deref(), Some(r#"{"hands":["p1","p2"]}"#));
    assert_eq!(store.live_state("cm2", 52).await.unwrap(), None, "kept before the time asked");
    store.forget_live_state("cm2").await.unwrap();
    assert_eq!(store.live_state("cm2", 0).await.unwrap(), None);
}

#[tokio::test]
async fn sqlite() {
    let dir = std::env::temp_dir().join(format!("ardoise-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = Store::default_url(&dir);
    let store = Store::connect(&url).await.unwrap();
    suite(&store).await;
    store.close().await;
    // Reopened: everything is there.
    let again = Store::connect(&url).await.unwrap();
    assert_eq!(again.user_count().await.unwrap(), 2);
    again.close().await;
    // A missing file that existed before is an error, never a silent reset.
    std::fs::remove_file(dir.join("ardoise.db")).unwrap();
    let e = Store::connect(&url).await.unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
    // A corrupt file is an error too.
    std::fs::write(dir.join("ardoise.db"), vec![0x42u8; 8192]).unwrap();
    let e = Store::connect(&url).await.unwrap_err().to_string();
    assert!(e.contains("database"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres() {
    let (base, _cluster) = database_url().unwrap_or_else(|e| panic!("no PostgreSQL for the store's suite: {e}"));
    let url = fresh_database(&base).await.unwrap();
    let store = Store::open(&url).await.unwrap();
    assert!(store.check().await.is_err(), "an empty database is not at head");
    store.migrate().await.unwrap();
    suite(&store).await;
    store.close().await;
}
