//! Which media worker a new class goes to: a pure decision on the workers' loads.
//!
//! A class stays on its worker for its whole life (its peers' sockets and state live
//! there), so the choice is made once, when the class first needs media. The rule:
//! - the fewest peers, counted in steps of [`PEERS_PER_STEP`]: a class's cost grows with
//!   its pupils, so a worker holding one class of 200 is busier than one holding five
//!   classes of 20;
//! - then the fewest classes: classes that begin together have no pupils yet, and each
//!   will have some (the steps keep the first few pupils from outweighing this);
//! - then the lowest index.

/// Peers that count as one step of load (a class's first pupils do not outweigh a class).
pub const PEERS_PER_STEP: usize = 10;

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
    fn no_worker_means_the_first() {
        assert_eq!(least_loaded(&[]), 0);
    }
}
