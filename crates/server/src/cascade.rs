//! A class larger than a node: its owner (the origin) serves pupils up to the node's
//! capacity, then sends the next ones to edges, other nodes that relay the class
//! ([`crate::edge_relay`]). Class events (hands, chat, floor) stay with the origin: only
//! the pupils' WHEP sessions are on the edges.
//!
//! Rules:
//! - origin: a pupil's WHEP offer (the class's feed) is answered here while this node serves
//!   fewer than `cluster.capacity` pupils; past that it gets **307** to an edge, with a pass
//!   ([`crate::cluster::Cluster::edge_pass`]) that says the origin checked the class's rules
//!   for this pupil (a browser drops the token on a redirect to another origin);
//! - the edge is the class's live edge with the fewest pupils that has room (its heartbeat's
//!   pupils plus the passes given to it since, [`PASSES_COUNTED`]); none: a new edge, the
//!   live, non-draining node other than the origin with the fewest pupils that has room;
//!   none: the pupil is served by the origin all the same;
//! - a dead edge gets no pupil: its pupils come back through the origin (the page's player
//!   and the load generator make a new session) and go to another edge; the origin tells the
//!   pages of the pupils it sent there to reconnect at once (`reconnect`) as soon as it
//!   judges the edge dead, instead of letting them wait for their connection to time out;
//! - a draining edge gets no pupil either, and its pupils move: the origin tells their pages
//!   at once; the edge closes those still there after [`EDGE_DRAIN_GRACE`] (players with no
//!   class events); `ardoise node drain` returns once the node owns no class and serves no
//!   pupil, so a rolling upgrade cuts no class;
//! - edge: the first pass for a class starts its relay; the relay stops when no pupil has
//!   played the class here for [`RELAY_IDLE`]; the pupils the origin removed (its kept live
//!   state, read at each heartbeat) are closed here too;
//! - the nodes' own sessions (the relays') are not pupils: their subjects start with
//!   [`RELAY_PREFIX`] (only a node mints those); they are not counted, and nobody in the
//!   class sees them.

use crate::cluster_view::ClusterView;
use crate::edge_relay::EdgeRelay;
use crate::state::SharedState;
use ardoise_proto::ClassId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The subjects of a node's own sessions start with this.
pub const RELAY_PREFIX: &str = "relay-";

/// Whether `sub` is a node's own session (a relay), not a person.
pub fn is_relay(sub: &str) -> bool {
    sub.starts_with(RELAY_PREFIX)
}

/// An edge's relay stops after this long with no pupil of the class here.
pub const RELAY_IDLE: Duration = Duration::from_secs(20);

/// A draining edge closes the pupils still there this long after the drain began (the
/// class's owner tells their pages to move at once).
pub const EDGE_DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Passes given to an edge count against its room for this many heartbeats: its heartbeat
/// counts them once they have come and the origin has read it, which a loaded node may take
/// more than a beat or two to do (counting a pupil twice meanwhile only opens an edge early;
/// counting it not at all could overfill one).
pub const PASSES_COUNTED: u32 = 4;

/// Where a pupil goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeChoice {
    /// The edge's node id.
    pub node: String,
    /// Its origin.
    pub url: String,
}

/// One edge of a class, seen from the origin.
#[derive(Debug, Default)]
struct EdgeUse {
    node: String,
    /// When passes were given to it lately.
    given: VecDeque<Instant>,
    /// The pupils sent there last (token subjects).
    pupils: HashSet<String>,
}

/// This node's part in cascades: its classes' edges (as an origin) and the classes it
/// relays (as an edge).
#[derive(Default)]
pub struct Cascade {
    edges: Mutex<HashMap<ClassId, Vec<EdgeUse>>>,
    relays: Mutex<HashMap<ClassId, EdgeRelay>>,
    /// Since when this node has been draining (as an edge).
    draining_since: Mutex<Option<Instant>>,
}

/// The edge a pupil goes to, among the class's `edges` (node id, passes given lately), or
/// a new edge (`true`): see the module's rules. `me` is the origin.
pub fn pick_edge(view: &ClusterView, me: &str, edges: &[(String, i64)]) -> Option<(String, bool)> {
    let room = |pupils: i64, capacity: i64| pupils < capacity;
    let current = edges
        .iter()
        .filter_map(|(id, given)| view.alive(id).map(|n| (n, n.pupils + given)))
        .filter(|(n, load)| !n.draining && room(*load, n.capacity))
        .min_by(|(a, la), (b, lb)| la.cmp(lb).then(a.id.cmp(&b.id)));
    if let Some((n, _)) = current {
        return Some((n.id.clone(), false));
    }
    view.nodes
        .iter()
        .filter(|n| n.alive && !n.draining && n.id != me && !edges.iter().any(|(id, _)| *id == n.id))
        .filter(|n| room(n.pupils, n.capacity))
        .min_by(|a, b| a.pupils.cmp(&b.pupils).then(a.cpu_permille.cmp(&b.cpu_permille)).then(a.id.cmp(&b.id)))
        .map(|n| (n.id.clone(), true))
}

impl Cascade {
    /// The edge `class`'s pupil `sub` goes to, if this node is full (see the module's rules).
    pub fn edge_for(&self, s: &SharedState, class: &ClassId, sub: &str) -> Option<EdgeChoice> {
        let cluster = s.cluster.as_ref()?;
        if s.pupils_here() < cluster.capacity() as usize {
            self.served_here(class, sub);
            return None;
        }
        let view = cluster.view();
        let window = cluster.heartbeat() * PASSES_COUNTED;
        let now = Instant::now();
        let mut edges = self.edges.lock().unwrap_or_else(|e| e.into_inner());
        let uses = edges.entry(class.clone()).or_default();
        for u in uses.iter_mut() {
            while u.given.front().is_some_and(|t| now.duration_since(*t) > window) {
                u.given.pop_front();
            }
        }
        let counts: Vec<(String, i64)> = uses.iter().map(|u| (u.node.clone(), u.given.len() as i64)).collect();
        let Some((node, new)) = pick_edge(&view, cluster.node_id(), &counts) else {
            drop(edges);
            self.served_here(class, sub);
            return None;
        };
        let url = view.alive(&node)?.url.clone();
        if new {
            info!(class = %class, edge = %node, "cascade: the class gets an edge");
            uses.push(EdgeUse { node: node.clone(), ..Default::default() });
        }
        for u in uses.iter_mut() {
            if u.node == node {
                u.given.push_back(now);
                u.pupils.insert(sub.to_owned());
            } else {
                u.pupils.remove(sub);
            }
        }
        Some(EdgeChoice { node, url })
    }

    /// `sub` is served by this node, on none of `class`'s edges.
    fn served_here(&self, class: &ClassId, sub: &str) {
        if let Some(uses) = self.edges.lock().unwrap_or_else(|e| e.into_inner()).get_mut(class) {
            for u in uses {
                u.pupils.remove(sub);
            }
        }
    }

    /// The edges of the classes this node owns (an edge of two classes counts twice).
    pub fn edges(&self) -> usize {
        self.edges.lock().unwrap_or_else(|e| e.into_inner()).values().map(Vec::len).sum()
    }

    /// The classes this node relays (an edge).
    pub fn relayed(&self) -> usize {
        self.relays.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// A pupil of `class` was sent here by its owner: relay the class if this node does not
    /// yet.
    pub fn serve(&self, s: &SharedState, class: &ClassId) {
        let mut relays = self.relays.lock().unwrap_or_else(|e| e.into_inner());
        match relays.get_mut(class) {
            Some(r) if !r.ended() => r.idle_since = None,
            _ => {
                info!(class = %class, "edge: relaying a class another node owns");
                let relay = EdgeRelay::start(Arc::downgrade(s), class.clone(), tokio::runtime::Handle::current());
                relays.insert(class.clone(), relay);
            }
        }
    }

    /// Whether this node relays `class` (an edge of it).
    pub fn relays(&self, class: &ClassId) -> bool {
        self.relays.lock().unwrap_or_else(|e| e.into_inner()).contains_key(class)
    }

    /// At each heartbeat: forget the edges of classes this node no longer owns (`owned`);
    /// stop the relays nobody plays, close the sessions of the pupils the origin removed.
    pub async fn tick(&self, s: &SharedState, owned: &HashSet<String>) {
        let lost: Vec<(ClassId, String, HashSet<String>)> = {
            let mut edges = self.edges.lock().unwrap_or_else(|e| e.into_inner());
            edges.retain(|c, _| owned.contains(&c.0));
            let view = s.cluster.as_ref().map(|c| c.view()).unwrap_or_default();
            let mut lost = Vec::new();
            for (class, uses) in edges.iter_mut() {
                for u in uses.extract_if(.., |u| view.alive(&u.node).is_none_or(|n| n.draining)) {
                    lost.push((class.clone(), u.node, u.pupils));
                }
            }
            lost
        };
        // A dead or draining edge's pupils reconnect now, through this node, to another edge
        // (their pages would notice a death only when their connection times out).
        for (class, node, pupils) in lost {
            warn!(class = %class, edge = %node, pupils = pupils.len(), "cascade: an edge of the class died or drains: its pupils reconnect");
            s.hub.media_lost_for(&class, &pupils);
        }
        self.drain_edge(s).await;
        let mut over = Vec::new();
        let classes: Vec<ClassId> = {
            let mut relays = self.relays.lock().unwrap_or_else(|e| e.into_inner());
            for (class, relay) in relays.iter_mut() {
                let played = s.pupils_in(class) > 0;
                if owned.contains(&class.0) {
                    // The class moved here: its own publication comes here now.
                    info!(class = %class, "edge: this node owns the class now: its relay stops");
                    relay.stop();
                    over.push(class.clone());
                } else if relay.ended() {
                    over.push(class.clone());
                } else if played {
                    relay.idle_since = None;
                } else if relay.idle_since.get_or_insert_with(Instant::now).elapsed() >= RELAY_IDLE {
                    info!(class = %class, "edge: nobody plays the class here: its relay stops");
                    relay.stop();
                    over.push(class.clone());
                }
            }
            for class in &over {
                relays.remove(class);
            }
            relays.keys().cloned().collect()
        };
        for class in over {
            // The class ended at its owner, or this node owns it now (then its own
            // publication comes here).
            if !owned.contains(&class.0) {
                s.close_pids(s.sessions_in(&class)).await;
            }
        }
        let since = ardoise_store::now_ms() - crate::class_routing::LIVE_STATE_FRESH.as_millis() as i64;
        for class in classes {
            let live = match s.store.live_state(&class.0, since).await {
                Ok(Some(json)) => serde_json::from_str::<crate::class_hub::LiveState>(&json).ok(),
                Ok(None) => None,
                Err(e) => {
                    warn!(class = %class, "edge: the class's live state unreadable: {e}");
                    None
                }
            };
            for pupil in live.map(|l| l.expelled).unwrap_or_default() {
                let pids = s.sessions_of(&class, &pupil, false);
                if !pids.is_empty() {
                    info!(class = %class, "edge: a pupil the teacher removed is closed here too");
                    s.close_pids(pids).await;
                }
            }
        }
    }

    /// This node draining: the pupils it serves as an edge that are still here
    /// [`EDGE_DRAIN_GRACE`] after the drain began (no class events: their origin could not
    /// tell them) are closed; their players make a new session through the class's owner.
    async fn drain_edge(&self, s: &SharedState) {
        let Some(cluster) = &s.cluster else { return };
        let draining = cluster.view().alive(cluster.node_id()).is_some_and(|n| n.draining);
        let due = {
            let mut since = self.draining_since.lock().unwrap_or_else(|e| e.into_inner());
            if !draining {
                *since = None;
                return;
            }
            since.get_or_insert_with(Instant::now).elapsed() >= EDGE_DRAIN_GRACE
        };
        if !due {
            return;
        }
        let relayed: Vec<ClassId> = self.relays.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        for class in relayed {
            let pupils: Vec<_> = s
                .sessions_in(&class)
                .into_iter()
                .filter(|pid| s.session_of(*pid).is_some_and(|r| r.role == ardoise_proto::Role::Pupil))
                .collect();
            if !pupils.is_empty() {
                info!(class = %class, pupils = pupils.len(), "edge: draining: the pupils still here are closed");
                s.close_pids(pupils).await;
            }
        }
    }

    /// Stop every relay (the node is stopping).
    pub fn stop_all(&self) {
        let mut relays = self.relays.lock().unwrap_or_else(|e| e.into_inner());
        for r in relays.values() {
            r.stop();
        }
        relays.clear();
    }
}

/// CORS for the WHEP doors: a pupil's page comes from the class's owner, and plays on an
/// edge. Only the cluster's live nodes are allowed origins (no cluster: none).
pub fn cors(s: SharedState) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method, header};
    let allowed = tower_http::cors::AllowOrigin::predicate(move |origin, _| {
        let Some(cluster) = &s.cluster else { return false };
        let Ok(origin) = origin.to_str() else { return false };
        // A node's origin: its URL without a path (the browser sends no default port).
        let of = |url: &str| {
            let url = ardoise_client::http::resolve(url, "");
            url.strip_suffix(":443").filter(|_| url.starts_with("https://")).map(str::to_owned).unwrap_or(url)
        };
        cluster.view().nodes.iter().any(|n| n.alive && of(&n.url) == origin)
    });
    tower_http::cors::CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::IF_MATCH])
        .expose_headers([header::LOCATION, header::ETAG, HeaderName::from_static("link")])
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_view::NodeView;

    fn node(id: &str, pupils: i64, alive: bool, draining: bool) -> NodeView {
        NodeView {
            id: id.into(),
            url: format!("http://{id}"),
            capacity: 10,
            pupils,
            classes: 0,
            cpu_permille: 0,
            kbps_out: 0,
            draining,
            heartbeat_at: 0,
            alive,
        }
    }

    #[test]
    fn pupils_fill_the_class_s_edges_then_a_new_one() {
        let view = ClusterView {
            nodes: vec![
                node("origin", 10, true, false),
                node("a", 4, true, false),
                node("b", 2, true, false),
                node("c", 0, true, false),
            ],
        };
        // No edge yet: the least loaded node that is not the origin.
        assert_eq!(pick_edge(&view, "origin", &[]), Some(("c".into(), true)));
        // The class's edges first, the fewest pupils (passes given counted) first.
        assert_eq!(pick_edge(&view, "origin", &[("a".into(), 0), ("b".into(), 3)]), Some(("a".into(), false)));
        assert_eq!(pick_edge(&view, "origin", &[("a".into(), 0), ("b".into(), 1)]), Some(("b".into(), false)));
        // Its edges full: a new one.
        assert_eq!(pick_edge(&view, "origin", &[("a".into(), 6), ("b".into(), 8)]), Some(("c".into(), true)));
    }

    #[test]
    fn dead_draining_and_full_nodes_are_no_edge() {
        let view = ClusterView {
            nodes: vec![
                node("origin", 10, true, false),
                node("dead", 0, false, false),
                node("draining", 0, true, true),
                node("full", 10, true, false),
            ],
        };
        assert_eq!(pick_edge(&view, "origin", &[]), None);
        assert_eq!(pick_edge(&view, "origin", &[("dead".into(), 0), ("draining".into(), 0)]), None);
        let with_room = ClusterView { nodes: vec![node("origin", 3, true, false)] };
        assert_eq!(pick_edge(&with_room, "origin", &[]), None, "the origin is never its own edge");
    }
}
