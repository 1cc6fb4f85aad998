//! Which media worker a new class goes to, and a large class's next pupils: pure decisions
//! on the workers' loads, which each worker publishes ([`LoadGauge`]).
//!
//! A class's home stays on its worker for its whole life (its publishers' sockets and state
//! live there), so the choice is made once, when the class first needs media. The rule:
//! - the fewest peers, counted in steps of [`PEERS_PER_STEP`]: a class's cost grows with
//!   its pupils, so a worker holding one class of 200 is busier than one holding five
//!   classes of 20;
//! - then the fewest classes: classes that begin together have no pupils yet, and each
//!   will have some (the steps keep the first few pupils from outweighing this);
//! - then the lowest index.

//!
//! A large class's next pupil ([`fan_out_worker`]) goes to a fan-out room on another worker
//! once the class's room at home holds `media.fan_out_peers` peers: to the worker with the
//! fewest peers, if it has fewer than the home by a step or more (the home otherwise). A
//! small class is never split, however loaded its worker: placement already spread the
//! classes.

use ardoise_proto::ClassId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Peers that count as one step of load (a class's first pupils do not outweigh a class).
pub const PEERS_PER_STEP: usize = 10;

/// A worker's load as it publishes it (after each command that may change it, and when peers
/// leave), read by the media server to place classes and pupils.
#[derive(Debug, Default)]
pub struct LoadGauge {
    peers: AtomicUsize,
    class_peers: Mutex<HashMap<ClassId, usize>>,
}

impl LoadGauge {
    /// Publish the peers of each of the worker's rooms.
    pub fn publish<'a>(&self, rooms: impl Iterator<Item = (&'a ClassId, usize)>) {
        let by_class: HashMap<ClassId, usize> = rooms.map(|(c, n)| (c.clone(), n)).collect();
        self.peers.store(by_class.values().sum(), Ordering::Relaxed);
        *self.class_peers.lock().unwrap_or_else(|e| e.into_inner()) = by_class;
    }

    /// Peers in the worker's rooms.
    pub fn peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }

    /// Peers in the worker's room of `class` (0: none).
    pub fn class_peers(&self, class: &ClassId) -> usize {
        self.class_peers.lock().unwrap_or_else(|e| e.into_inner()).get(class).copied().unwrap_or(0)
    }
}

/// One worker's load, as placement sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Peers (publishers and pupils, connected or connecting) in its rooms.
    pub peers: usize,
    /// Classes assigned to it.
    pub classes: usize,
}

impl WorkerLoad {
    fn key(&self) -> (usize, usize) {
        (self.peers / PEERS_PER_STEP, self.classes)
    }
}

/// The index of the worker a new class goes to (0 when there is none).
pub fn least_loaded(loads: &[WorkerLoad]) -> usize {
    (0..loads.len()).min_by_key(|&i| (loads[i].key(), i)).unwrap_or(0)
}

/// The worker whose fan-out room a new pupil of a class goes to, or `None` for the class's
/// home (worker `home`, whose room of the class holds `at_home` peers): see the module's
/// rules; `threshold` 0 never fans out.
pub fn fan_out_worker(loads: &[WorkerLoad], home: usize, at_home: usize, threshold: usize) -> Option<usize> {
    if threshold == 0 || at_home < threshold || home >= loads.len() {
        return None;
    }
    let step = |w: usize| loads[w].peers / PEERS_PER_STEP;
    (0..loads.len()).filter(|&w| w != home).min_by_key(|&w| (step(w), w)).filter(|&w| step(w) < step(home))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(peers: usize, classes: usize) -> WorkerLoad {
        WorkerLoad { peers, classes }
    }

    #[test]
    fn classes_that_start_together_alternate() {
        assert_eq!(least_loaded(&[load(0, 0), load(0, 0)]), 0);
        assert_eq!(least_loaded(&[load(1, 1), load(0, 0)]), 1);
        assert_eq!(least_loaded(&[load(1, 1), load(1, 1)]), 0);
        // A few early pupils do not outweigh a class.
        assert_eq!(least_loaded(&[load(6, 1), load(0, 2)]), 0);
    }

    #[test]
    fn a_large_class_outweighs_several_small_ones() {
        assert_eq!(least_loaded(&[load(201, 1), load(105, 5)]), 1);
        assert_eq!(least_loaded(&[load(26, 1), load(2, 1)]), 1);
    }

    #[test]
    fn a_large_class_fans_out_to_a_lighter_worker_and_a_small_one_never() {
        let loads = [load(120, 3), load(95, 4), load(60, 2)];
        // The class has 100 peers at home (worker 0): its next pupil goes to the lightest.
        assert_eq!(fan_out_worker(&loads, 0, 100, 100), Some(2));
        // A class of 20 on the same busy worker stays whole.
        assert_eq!(fan_out_worker(&loads, 0, 20, 100), None);
        // Off.
        assert_eq!(fan_out_worker(&loads, 0, 100, 0), None);
        // No worker lighter by a step: home.
        assert_eq!(fan_out_worker(&[load(104, 1), load(100, 1)], 0, 104, 100), None);
        assert_eq!(fan_out_worker(&[load(104, 1), load(99, 1)], 0, 104, 100), Some(1));
        // One worker only.
        assert_eq!(fan_out_worker(&[load(500, 1)], 0, 500, 100), None);
    }

    #[test]
    fn a_gauge_publishes_each_rooms_peers() {
        let g = LoadGauge::default();
        let (a, b) = (ClassId("a".into()), ClassId("b".into()));
        g.publish([(&a, 3), (&b, 5)].into_iter());
        assert_eq!((g.peers(), g.class_peers(&a), g.class_peers(&b)), (8, 3, 5));
        g.publish(std::iter::empty());
        assert_eq!((g.peers(), g.class_peers(&a)), (0, 0));
    }

    #[test]
    fn no_worker_means_the_first() {
        assert_eq!(least_loaded(&[]), 0);
    }
}
