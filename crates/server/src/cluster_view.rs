//! What a node knows of its cluster at one moment, and where a new class goes: pure values,
//! no I/O (the [`crate::cluster::Cluster`] reads the rows and the clock).
//!
//! Rules:
//! - a node counts only if its registration's signature verifies with the cluster key (a
//!   row forged by someone who can write to the database but has no `cluster.secret` is
//!   ignored); it is alive while its heartbeat keeps changing (the caller judges, by its own
//!   clock: nodes' clocks need not agree);
//! - a class is placed on the live, non-draining node with the least expected load that has
//!   room for one more class: expected load is the larger of its pupils and its classes ×
//!   `class_weight` (a class counts before its pupils come); ties go to the lower CPU, then
//!   the smaller id.

use ardoise_store::NodeRow;
use serde::Serialize;

/// One node as seen from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// Its id.
    pub id: String,
    /// Its origin.
    pub url: String,
    /// Pupils it takes.
    pub capacity: i64,
    /// Pupils connected.
    pub pupils: i64,
    /// Classes it owns (the placements, counted when the view was made).
    pub classes: i64,
    /// CPU, thousandths of a core.
    pub cpu_permille: i64,
    /// Media sent, kbit/s.
    pub kbps_out: i64,
    /// No new class goes there.
    pub draining: bool,
    /// Its latest heartbeat (ms since the epoch).
    pub heartbeat_at: i64,
    /// Heart-beating: its heartbeat is recent enough.
    pub alive: bool,
}

impl NodeView {
    /// The load a new class is judged against: the larger of pupils and classes × weight.
    pub fn expected_load(&self, class_weight: i64) -> i64 {
        self.pupils.max(self.classes * class_weight)
    }

    /// Whether one more class fits.
    pub fn has_room(&self, class_weight: i64) -> bool {
        self.expected_load(class_weight) + class_weight <= self.capacity
    }
}

/// The verified nodes of the cluster, alive or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// By id.
    pub nodes: Vec<NodeView>,
}

impl ClusterView {
    /// The view of `rows`: rows that fail `verify` are left out, `alive` says which nodes
    /// heart-beat; `classes` gives each node's placements count.
    pub fn from_rows(
        rows: &[NodeRow],
        classes: &[(String, i64)],
        verify: impl Fn(&NodeRow) -> bool,
        alive: impl Fn(&NodeRow) -> bool,
    ) -> ClusterView {
        let nodes = rows
            .iter()
            .filter(|r| verify(r))
            .map(|r| NodeView {
                id: r.node_id.clone(),
                url: r.public_url.clone(),
                capacity: r.capacity,
                pupils: r.pupils,
                classes: classes.iter().find(|(n, _)| *n == r.node_id).map_or(0, |(_, c)| *c),
                cpu_permille: r.cpu_permille,
                kbps_out: r.kbps_out,
                draining: r.draining != 0,
                heartbeat_at: r.heartbeat_at,
                alive: alive(r),
            })
            .collect();
        ClusterView { nodes }
    }

    /// The node `id` if it is alive.
    pub fn alive(&self, id: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id && n.alive)
    }

    /// The origins of the live nodes.
    pub fn live_urls(&self) -> Vec<String> {
        self.nodes.iter().filter(|n| n.alive).map(|n| n.url.clone()).collect()
    }

    /// Where a new class goes, if anywhere has room.
    pub fn choose(&self, class_weight: i64) -> Option<&NodeView> {
        self.nodes.iter().filter(|n| n.alive && !n.draining && n.has_room(class_weight)).min_by(|a, b| {
            a.expected_load(class_weight)
                .cmp(&b.expected_load(class_weight))
                .then(a.cpu_permille.cmp(&b.cpu_permille))
                .then(a.id.cmp(&b.id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, pupils: i64, heartbeat_at: i64, draining: bool) -> NodeRow {
        NodeRow {
            node_id: id.into(),
            public_url: format!("http://{id}"),
            instance: "i".into(),
            capacity: 100,
            pupils,
            classes: 0,
            cpu_permille: 0,
            kbps_out: 0,
            started_at: 0,
            heartbeat_at,
            signature: if id == "forged" { "bad".into() } else { "good".into() },
            draining: i64::from(draining),
        }
    }

    fn view(rows: &[NodeRow], classes: &[(&str, i64)]) -> ClusterView {
        let classes: Vec<(String, i64)> = classes.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        ClusterView::from_rows(rows, &classes, |r| r.signature == "good", |r| 10_000 - r.heartbeat_at <= 5_000)
    }

    #[test]
    fn a_new_class_goes_to_the_least_loaded_live_node_with_room() {
        let rows = [row("a", 40, 9_000, false), row("b", 10, 9_500, false), row("c", 0, 9_900, false)];
        assert_eq!(view(&rows, &[]).choose(25).unwrap().id, "c", "no pupils");
        assert_eq!(view(&rows, &[("c", 1)]).choose(25).unwrap().id, "b", "a class counts before its pupils come");
        // Six classes at once spread two by two.
        let mut placed: Vec<(&str, i64)> = vec![];
        let rows = [row("a", 0, 9_000, false), row("b", 0, 9_000, false), row("c", 0, 9_000, false)];
        for _ in 0..6 {
            let v = view(&rows, &placed);
            let id = v.choose(25).unwrap().id.clone();
            let id: &str = ["a", "b", "c"].into_iter().find(|n| *n == id).unwrap();
            match placed.iter_mut().find(|(n, _)| *n == id) {
                Some(p) => p.1 += 1,
                None => placed.push((id, 1)),
            }
        }
        placed.sort();
        assert_eq!(placed, vec![("a", 2), ("b", 2), ("c", 2)]);
    }

    #[test]
    fn dead_draining_forged_and_full_nodes_get_no_class() {
        let rows = [
            row("dead", 0, 4_999, false),
            row("draining", 0, 9_000, true),
            row("forged", 0, 9_000, false),
            row("full", 80, 9_000, false),
        ];
        let v = view(&rows, &[]);
        assert_eq!(v.choose(25), None, "{v:?}");
        assert!(v.alive("dead").is_none() && v.alive("draining").is_some() && v.alive("full").is_some());
        assert!(v.nodes.iter().all(|n| n.id != "forged"), "a forged registration is not a node");
        assert_eq!(view(&[row("x", 75, 9_000, false)], &[]).choose(25).unwrap().id, "x", "exactly room for one");
    }
}
