//! This node's part in a cluster of nodes sharing one PostgreSQL: its heartbeat, and where
//! each class lives.
//!
//! Rules:
//! - the database is the only shared state (as Scalelite and LiveKit route through an
//!   existing store): no gossip, no consensus of our own. The `nodes` rows carry each node's
//!   registration and load, the `placements` rows say which node owns each live class;
//! - a registration is signed with a key derived from `cluster.secret` (which every node has,
//!   and the database does not: `auth.secret` is the database's first signing key): a row
//!   someone forged in the database, or one whose heartbeat is older than `dead_after_ms`,
//!   is not a node;
//! - a class is placed when a request first needs it, on the node [`ClusterView::choose`]
//!   picks; the placement row's primary key makes the first insert win, so two nodes can
//!   never both own a class. A class whose owner is dead moves, by an update conditional on
//!   that owner, to the next node asked for it;
//! - a node is dead when its heartbeat has not changed for `dead_after_ms` by the observer's
//!   own clock (nodes' clocks need not agree); a node judges another dead only after its own
//!   heartbeats have gone through for `dead_after_ms` (after a database outage nobody's
//!   classes move until the nodes have had the time to beat again);
//! - the database unreachable: a node keeps serving the classes it owns and answers 503 for
//!   the others (live classes keep flowing, new placements wait);
//! - every heartbeat, a node reads which classes it owns: a class it serves but no longer
//!   owns (moved while this node was cut off) is stopped here and its pages told `moved`;
//!   an owned class with nobody in it for `release_idle_secs` is released;
//! - a class's hub state (hands, floor, lock, layout, latest chat) is written to the
//!   database at each heartbeat where it changed, and taken up by the node that takes the
//!   class over: a node's death loses at most one heartbeat of it;
//! - every heartbeat, a node writes its mark in the recordings directory the nodes share
//!   and looks for the live nodes' ([`crate::recordings_share`]); every
//!   [`DEAD_WRITERS_EVERY`], once it may judge deaths, it closes as `interrupted` the
//!   recordings that nodes it judges dead left unfinished, so what they recorded replays at
//!   once through any node.

use crate::cluster_view::ClusterView;
use crate::config::ClusterConfig;
use crate::state::AppState;
use ardoise_proto::{Claims, ClassId};
use ardoise_store::{NodeRow, Store, StoreError, now_ms};
use aws_lc_rs::hmac;
use base64::Engine;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Where a request for a class goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This node owns the class.
    Here,
    /// This node has just become the class's node (it placed the class itself, or this is
    /// the first request since it learnt another node placed it here): it takes up the
    /// class's live state (what its previous node kept), then serves it.
    Taken,
    /// Another node does: send the client there (307).
    Elsewhere {
        /// Its id.
        node: String,
        /// Its origin.
        url: String,
    },
    /// No live node has room for a new class (503, `Retry-After`).
    Full,
    /// The database is unreachable, or the owner's death cannot be judged yet (503,
    /// `Retry-After`).
    Unavailable,
}

/// How often a node looks for the recordings dead nodes left unfinished.
pub const DEAD_WRITERS_EVERY: Duration = Duration::from_secs(5);

/// How long a pupil's pass to an edge is valid: the time its client takes to follow the
/// redirect.
pub const EDGE_PASS_TTL: Duration = Duration::from_secs(30);

/// How far ahead of the node that made a pass the clock of the node that reads it may be
/// (the only place two nodes' clocks are compared).
pub const PASS_CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// What a pass to an edge says.
#[derive(serde::Serialize, serde::Deserialize)]
struct EdgePass {
    #[serde(rename = "n")]
    node: String,
    #[serde(rename = "c")]
    class: String,
    #[serde(rename = "e")]
    expires_ms: i64,
    #[serde(rename = "k")]
    claims: Claims,
}

/// What a node reports of itself at each heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLoad {
    /// Pupils connected.
    pub pupils: i64,
    /// CPU since the last heartbeat, thousandths of a core.
    pub cpu_permille: i64,
    /// Media sent since the last heartbeat, kbit/s.
    pub kbps_out: i64,
}

/// This node in its cluster.
pub struct Cluster {
    config: ClusterConfig,
    /// This process's holding of the node id.
    instance: String,
    started_at: i64,
    key: hmac::Key,
    /// Signs the passes of pupils sent to an edge ([`Cluster::edge_pass`]).
    pass_key: hmac::Key,
    store: Store,
    view: RwLock<Arc<ClusterView>>,
    /// Since when heartbeats have gone through without a failure.
    in_touch_since: Mutex<Option<Instant>>,
    /// The classes this node owns as far as it knows.
    owned: Mutex<HashMap<String, Owned>>,
    /// Each node's latest heartbeat value, and when (by this node's clock) it last changed:
    /// a node is alive while its heartbeat keeps changing, whatever its clock says.
    seen: Mutex<HashMap<String, (i64, Instant)>>,
    /// Set by [`Cluster::leave`]: no more heartbeats (the node is stopping).
    stopped: std::sync::atomic::AtomicBool,
}

/// One class this node owns.
#[derive(Debug, Clone, Copy)]
struct Owned {
    /// When this node learnt it owns it (a heartbeat's read that began before does not know).
    since: Instant,
    /// Since when nobody has been in it here.
    empty_since: Option<Instant>,
    /// Its kept live state not taken up yet (this node placed the class, or learnt from the
    /// database that another node placed it here, or restarted): requests are routed
    /// [`Route::Taken`], and its state is not saved over the kept one, until a take-up ends
    /// ([`Cluster::claimed`]).
    unclaimed: bool,
}

impl Owned {
    fn now() -> Owned {
        Owned { since: Instant::now(), empty_since: None, unclaimed: false }
    }

    fn learnt() -> Owned {
        Owned { unclaimed: true, ..Owned::now() }
    }
}

impl Cluster {
    /// Register this node (its first heartbeat), its registrations signed with `secret`
    /// (`cluster.secret`): refused when a live process holds the id.
    pub async fn join(config: &ClusterConfig, secret: &[u8], store: Store) -> Result<Arc<Cluster>, String> {
        let secret_key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let tag = hmac::sign(&secret_key, b"ardoise cluster nodes");
        let pass_tag = hmac::sign(&secret_key, b"ardoise edge passes");
        let cluster = Cluster {
            config: config.clone(),
            instance: format!("{:016x}", rand::random::<u64>()),
            started_at: now_ms(),
            key: hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()),
            pass_key: hmac::Key::new(hmac::HMAC_SHA256, pass_tag.as_ref()),
            store,
            view: RwLock::new(Arc::default()),
            in_touch_since: Mutex::new(None),
            owned: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            stopped: Default::default(),
        };
        // A node restarted just after a crash finds its own previous registration still
        // fresh: it waits until that one is dead rather than refuse to start.
        let patience = Instant::now() + Duration::from_millis(config.dead_after_ms + config.heartbeat_ms);
        loop {
            match cluster.beat(NodeLoad::default()).await {
                Ok(()) => break,
                Err(StoreError::Duplicate(_)) if Instant::now() < patience => {
                    tokio::time::sleep(Duration::from_millis(config.heartbeat_ms)).await;
                }
                Err(StoreError::Duplicate(_)) => {
                    return Err(format!(
                        "cluster.node_id '{}' is held by another live node: give each node its own id",
                        config.node_id
                    ));
                }
                Err(e) => return Err(format!("cluster: cannot register node '{}': {e}", config.node_id)),
            }
        }
        info!(node = %config.node_id, url = %config.public_url, "joined the cluster");
        Ok(Arc::new(cluster))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// This node's origin (`cluster.public_url`).
    pub fn public_url(&self) -> &str {
        &self.config.public_url
    }

    /// Pupils this node takes (`cluster.capacity`).
    pub fn capacity(&self) -> u32 {
        self.config.capacity
    }

    /// The heartbeat period.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.config.heartbeat_ms)
    }

    /// The cluster as of the last heartbeat.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn message(row: &NodeRow) -> String {
        format!("{}\n{}\n{}\n{}\n{}", row.node_id, row.public_url, row.instance, row.started_at, row.heartbeat_at)
    }

    fn sign(&self, row: &NodeRow) -> String {
        let tag = hmac::sign(&self.key, Self::message(row).as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    fn verify(&self, row: &NodeRow) -> bool {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&row.signature)
            .is_ok_and(|sig| hmac::verify(&self.key, Self::message(row).as_bytes(), &sig).is_ok())
    }

    /// A pass for a pupil the owner of `class` sends to the edge `node`: the owner checked
    /// the class's rules (removed, locked, waiting room) for these `claims`; the edge takes
    /// the pass in place of the token, for [`EDGE_PASS_TTL`]. An edge's relay proves itself
    /// to the class's owner with a pass too (its claims: a relay's).
    pub fn edge_pass(&self, node: &str, class: &str, claims: &Claims) -> String {
        let body = EdgePass {
            node: node.to_owned(),
            class: class.to_owned(),
            expires_ms: now_ms() + EDGE_PASS_TTL.as_millis() as i64,
            // The edge shows nobody the pupil's name: it stays out of the URL.
            claims: Claims { name: None, ..claims.clone() },
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = b64.encode(serde_json::to_vec(&body).unwrap_or_default());
        let tag = hmac::sign(&self.pass_key, body.as_bytes());
        format!("{body}.{}", b64.encode(tag.as_ref()))
    }

    /// The claims of a pass made for this node and `class`, if it verifies and has not
    /// expired (within [`PASS_CLOCK_LEEWAY`]).
    pub fn read_edge_pass(&self, pass: &str, class: &str) -> Option<Claims> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (body, tag) = pass.split_once('.')?;
        hmac::verify(&self.pass_key, body.as_bytes(), &b64.decode(tag).ok()?).ok()?;
        let pass: EdgePass = serde_json::from_slice(&b64.decode(body).ok()?).ok()?;
        let fresh = pass.expires_ms + PASS_CLOCK_LEEWAY.as_millis() as i64 >= now_ms();
        (pass.node == self.config.node_id && pass.class == class && fresh).then_some(pass.claims)
    }

    /// Write this node's heartbeat, then read the cluster.
    pub async fn beat(&self, load: NodeLoad) -> Result<(), StoreError> {
        if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let result = self.beat_once(load).await;
        let mut since = self.in_touch_since.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(()) => {
                since.get_or_insert_with(Instant::now);
            }
            Err(_) => *since = None,
        }
        result
    }

    async fn beat_once(&self, load: NodeLoad) -> Result<(), StoreError> {
        let mut row = NodeRow {
            node_id: self.config.node_id.clone(),
            public_url: self.config.public_url.clone(),
            instance: self.instance.clone(),
            capacity: i64::from(self.config.capacity),
            pupils: load.pupils,
            classes: self.owned.lock().unwrap_or_else(|e| e.into_inner()).len() as i64,
            cpu_permille: load.cpu_permille,
            kbps_out: load.kbps_out,
            started_at: self.started_at,
            heartbeat_at: now_ms(),
            signature: String::new(),
            draining: 0,
        };
        row.signature = self.sign(&row);
        self.store.heartbeat(&row, self.config.dead_after_ms as i64).await?;
        self.refresh().await
    }

    /// Read the nodes and their placement counts again.
    async fn refresh(&self) -> Result<(), StoreError> {
        let rows = self.store.nodes().await?;
        let counts = self.store.placement_counts().await?;
        for r in rows.iter().filter(|r| !self.verify(r)) {
            warn!(node = %r.node_id, url = %r.public_url, "cluster: a node registration that does not verify is ignored");
        }
        let now = Instant::now();
        let dead_after = Duration::from_millis(self.config.dead_after_ms);
        let changed: HashMap<String, Instant> = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|id, _| rows.iter().any(|r| r.node_id == *id));
            for r in &rows {
                // First seen: counted as changed now (a node just started judges nobody dead
                // before `dead_after` anyway: `may_judge`).
                let entry = seen.entry(r.node_id.clone()).or_insert((r.heartbeat_at, now));
                if entry.0 != r.heartbeat_at {
                    *entry = (r.heartbeat_at, now);
                }
            }
            seen.iter().map(|(id, (_, at))| (id.clone(), *at)).collect()
        };
        let alive = |r: &NodeRow| {
            r.node_id == self.config.node_id
                || changed.get(&r.node_id).is_some_and(|at| now.duration_since(*at) <= dead_after)
        };
        let view = ClusterView::from_rows(&rows, &counts, |r| self.verify(r), alive);
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
        Ok(())
    }

    /// Whether this node may judge another dead: its own heartbeats have gone through for
    /// `dead_after_ms`.
    fn may_judge(&self) -> bool {
        let since = *self.in_touch_since.lock().unwrap_or_else(|e| e.into_inner());
        since.is_some_and(|t| t.elapsed() >= Duration::from_millis(self.config.dead_after_ms))
    }

    /// The classes this node owned at the last look.
    pub fn owned_classes(&self) -> HashSet<String> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// Whether this node owned `class` at the last look.
    pub fn owns(&self, class: &str) -> bool {
        self.owned.lock().unwrap_or_else(|e| e.into_inner()).contains_key(class)
    }

    /// A take-up of `class`'s kept live state ended (taken up, or nothing to take): it is
    /// served here from now on, and its state saved.
    pub fn claimed(&self, class: &str) {
        if let Some(o) = self.owned.lock().unwrap_or_else(|e| e.into_inner()).get_mut(class) {
            o.unclaimed = false;
        }
    }

    /// Where a request for `class` goes: its owner, placing it first if nobody owns it, or
    /// moving it if its owner is dead.
    pub async fn route(&self, class: &str) -> Route {
        // Owned at the last look (at most a heartbeat ago): no database read, so the classes
        // here keep flowing while the database is away. A class moves off a live node only
        // when it is drained away or released, which this node does itself.
        if let Some(o) = self.owned.lock().unwrap_or_else(|e| e.into_inner()).get(class) {
            return if o.unclaimed { Route::Taken } else { Route::Here };
        }
        let placement = match self.store.placement(class).await {
            Ok(p) => p,
            Err(e) => {
                warn!(class, "cluster: placement unreadable: {e}");
                return Route::Unavailable;
            }
        };
        let owner = match placement {
            Some(p) if p.node_id == self.config.node_id || self.view().alive(&p.node_id).is_some() => p.node_id,
            Some(p) => {
                if !self.may_judge() {
                    return Route::Unavailable;
                }
                // Read the nodes again first: a node that joined since the last heartbeat is
                // not in the view yet, and its classes are not a dead node's.
                if let Err(e) = self.refresh().await {
                    warn!(class, "cluster: nodes unreadable: {e}");
                    return Route::Unavailable;
                }
                if self.view().alive(&p.node_id).is_some() {
                    p.node_id
                } else {
                    let Some(to) = self.choose().await else { return Route::Full };
                    match self.store.move_placement(class, &p.node_id, &to, now_ms()).await {
                        Ok(now) => {
                            if now.node_id == to {
                                info!(class, from = %p.node_id, to = %to, epoch = now.epoch, "cluster: class moved from a dead node");
                            }
                            now.node_id
                        }
                        Err(e) => {
                            warn!(class, "cluster: cannot move the class: {e}");
                            return Route::Unavailable;
                        }
                    }
                }
            }
            None => {
                let Some(to) = self.choose().await else { return Route::Full };
                match self.store.place(class, &to, now_ms()).await {
                    Ok(p) => {
                        if p.node_id == to {
                            info!(class, node = %to, "cluster: class placed");
                        }
                        p.node_id
                    }
                    Err(e) => {
                        warn!(class, "cluster: cannot place the class: {e}");
                        return Route::Unavailable;
                    }
                }
            }
        };
        if owner == self.config.node_id {
            let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
            let o = owned.entry(class.to_owned()).or_insert_with(Owned::learnt);
            return if o.unclaimed { Route::Taken } else { Route::Here };
        }
        match self.view().alive(&owner) {
            Some(n) => Route::Elsewhere { node: n.id.clone(), url: n.url.clone() },
            None => Route::Unavailable,
        }
    }

    /// The node a new class goes to, with the placement counts read now (a burst of new
    /// classes spreads).
    async fn choose(&self) -> Option<String> {
        let mut view = (*self.view()).clone();
        if let Ok(counts) = self.store.placement_counts().await {
            for n in &mut view.nodes {
                n.classes = counts.iter().find(|(id, _)| *id == n.id).map_or(0, |(_, c)| *c);
            }
        }
        view.choose(i64::from(self.config.class_weight)).map(|n| n.id.clone())
    }

    /// Leave the cluster (a clean stop): the registration and placements go.
    pub async fn leave(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
        self.owned.lock().unwrap_or_else(|e| e.into_inner()).clear();
        match self.store.leave_cluster(&self.config.node_id, &self.instance).await {
            Ok(()) => info!(node = %self.config.node_id, "left the cluster"),
            Err(e) => warn!("cluster: cannot leave cleanly: {e}"),
        }
    }

    /// Heart-beat until `state` is gone: report the load, stop serving classes this node no
    /// longer owns, release the ones that stayed empty.
    pub async fn run(self: Arc<Self>, state: Weak<AppState>) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.heartbeat_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut meter = LoadMeter::default();
        let mut failing = false;
        let mut saved: HashMap<String, String> = HashMap::new();
        let (mut beats, close_every) =
            (0u64, (DEAD_WRITERS_EVERY.as_millis() as u64 / self.config.heartbeat_ms).max(1));
        loop {
            tick.tick().await;
            if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let Some(state) = state.upgrade() else { return };
            let load = meter.measure(&state).await;
            if let Err(e) = self.beat(load).await {
                if !failing {
                    warn!("cluster: heartbeat failed (classes here keep flowing, new placements wait): {e}");
                }
                failing = true;
                continue;
            }
            if std::mem::take(&mut failing) {
                info!("cluster: heartbeat back");
            }
            let view = self.view();
            let others = view.nodes.iter().filter(|n| n.alive && n.id != self.config.node_id);
            state.recordings.share.check(others.map(|n| n.id.as_str()));
            state.recordings.share.mark(&self.config.node_id);
            // The recordings dead nodes were writing in the shared directory are closed, every
            // few seconds (a failure is tried again), and only once this node may judge deaths
            // (not just after an outage).
            beats += 1;
            if self.may_judge() && beats % close_every == 0 {
                state.recordings.recover(&state.store, Some(&self), true).await;
            }
            let read_at = Instant::now();
            match self.store.placements_of(&self.config.node_id).await {
                Ok(placements) => {
                    let now_owned = placements.into_iter().map(|p| p.class_id).collect();
                    self.follow_ownership(&state, now_owned, read_at).await
                }
                Err(e) => warn!("cluster: placements unreadable: {e}"),
            }
            self.save_live_states(&state, &mut saved).await;
            state.cascade.tick(&state, &self.owned_classes()).await;
        }
    }

    /// Write the live state of each class this node owns that changed since it was last
    /// written (`saved`: what was written, by class).
    async fn save_live_states(&self, state: &AppState, saved: &mut HashMap<String, String>) {
        // (Not a class whose kept state is still to be taken up: its room here, an edge's
        // pupils' sessions, would be saved over it.)
        let owned: Vec<String> = self
            .owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, o)| !o.unclaimed)
            .map(|(c, _)| c.clone())
            .collect();
        saved.retain(|c, _| owned.contains(c));
        for class in owned {
            let Some(live) = state.hub.live_state(&ClassId(class.clone())) else { continue };
            let Ok(json) = serde_json::to_string(&live) else { continue };
            if saved.get(&class) == Some(&json) {
                continue;
            }
            match self.store.save_live_state(&class, &json, now_ms()).await {
                Ok(()) => {
                    saved.insert(class, json);
                }
                Err(e) => warn!(class, "cluster: cannot keep the class's live state: {e}"),
            }
        }
    }

    /// Act on the classes the database says this node owns (`now_owned`, read from
    /// `read_at` on): a class placed here since that read began is left alone.
    async fn follow_ownership(&self, state: &Arc<AppState>, now_owned: HashSet<String>, read_at: Instant) {
        let busy = |class: &ClassId| state.hub.has_anyone(class) || !state.sessions_in(class).is_empty();
        let recent: HashSet<String> = {
            let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
            owned.retain(|c, o| now_owned.contains(c) || o.since >= read_at);
            for class in &now_owned {
                owned.entry(class.clone()).or_insert_with(Owned::learnt);
            }
            owned.iter().filter(|(_, o)| o.since >= read_at).map(|(c, _)| c.clone()).collect()
        };
        // Served here, owned elsewhere now: stop, and tell the pages to come back through
        // their owner.
        for info in state.classes.list() {
            let id = &info.id;
            if crate::check::is_check_class(id) || now_owned.contains(&id.0) || recent.contains(&id.0) || !busy(id) {
                continue;
            }
            if state.cascade.relays(id) {
                // An edge of the class: its pupils' sessions stay. Pages here are from when
                // this node owned it: they go to the owner.
                if state.hub.has_pages(id) {
                    warn!(class = %id, "cluster: this node relays a class it no longer owns: its pages here go to the owner");
                    state.hub.moved(id);
                }
                continue;
            }
            warn!(class = %id, "cluster: another node owns this class now: its sessions here stop");
            state.hand_over(id);
        }
        // Empty for `release_idle_secs`: released (out of `owned` first, so that no request
        // is served here meanwhile; back in if someone came after all).
        let idle_for = Duration::from_secs(self.config.release_idle_secs);
        let mut release = Vec::new();
        {
            let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
            for (class, o) in owned.iter_mut() {
                if busy(&ClassId(class.clone())) {
                    o.empty_since = None;
                } else if o.empty_since.get_or_insert_with(Instant::now).elapsed() >= idle_for {
                    release.push(class.clone());
                }
            }
            for class in &release {
                owned.remove(class);
            }
        }
        for class in release {
            if busy(&ClassId(class.clone())) {
                self.owned.lock().unwrap_or_else(|e| e.into_inner()).insert(class, Owned::now());
                continue;
            }
            match self.store.release(&class, &self.config.node_id).await {
                Ok(true) => {
                    if let Err(e) = self.store.forget_live_state(&class).await {
                        warn!(class, "cluster: {e}");
                    }
                    info!(class, "cluster: an empty class released");
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(class, "cluster: cannot release: {e}");
                    self.owned.lock().unwrap_or_else(|e| e.into_inner()).insert(class, Owned::now());
                }
            }
        }
    }
}

/// The load between two heartbeats.
#[derive(Default)]
struct LoadMeter {
    last: Option<(Instant, u64, u64)>,
}

impl LoadMeter {
    async fn measure(&mut self, state: &AppState) -> NodeLoad {
        let snaps = state.snapshots.get(&state.media).await;
        let pupils = state.pupils_here() as i64;
        let bytes_out: u64 = snaps.iter().map(|s| s.worker.bytes_out).sum();
        let cpu_us = crate::admin::process_stats().cpu_us;
        let now = Instant::now();
        let (mut cpu_permille, mut kbps_out) = (0, 0);
        if let Some((at, cpu, bytes)) = self.last {
            let us = now.duration_since(at).as_micros().max(1) as u64;
            cpu_permille = (cpu_us.saturating_sub(cpu) * 1000 / us) as i64;
            kbps_out = (bytes_out.saturating_sub(bytes) * 8 * 1000 / us) as i64;
        }
        self.last = Some((now, cpu_us, bytes_out));
        NodeLoad { pupils, cpu_permille, kbps_out }
    }
}
