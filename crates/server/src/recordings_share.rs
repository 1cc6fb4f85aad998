//! Whether the nodes of a cluster share one recordings directory (`[recording] dir`).
//!
//! A class moves between nodes from one lesson to the next, and its pupils replay its
//! recordings through whichever node holds it then: every node must see the files every
//! other node wrote. Rules:
//! - each node leaves its mark in the directory at each heartbeat (`.nodes/<node id>`);
//! - at each heartbeat, a node looks for the marks of the other live nodes; the ones it
//!   cannot see are logged when they change (a warning) and listed in the admin's view of
//!   the nodes: their recordings do not replay here;
//! - a node id that could make a path elsewhere (`/`, a leading `.`) is never used as a file
//!   name: such a node counts as unseen.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::{info, warn};

/// The marks of the nodes in a recordings directory, and which live nodes' this node misses.
#[derive(Debug)]
pub struct RecordingsShare {
    marks: PathBuf,
    unseen: Mutex<Vec<String>>,
    /// This node's mark could not be written at the last try.
    unmarked: AtomicBool,
}

/// Whether `node` can name a file of the marks' directory.
fn safe(node: &str) -> bool {
    !node.is_empty()
        && !node.starts_with('.')
        && node.len() <= 128
        && node.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl RecordingsShare {
    /// The marks under `root`, the recordings directory.
    pub fn new(root: &Path) -> RecordingsShare {
        RecordingsShare { marks: root.join(".nodes"), unseen: Mutex::new(Vec::new()), unmarked: AtomicBool::new(false) }
    }

    /// Leave `node`'s mark unless it is there (this node's, at each heartbeat: a directory
    /// mounted after start-up gets it too); a failure is logged when it starts.
    pub fn mark(&self, node: &str) {
        let written = if safe(node) {
            let mark = self.marks.join(node);
            if mark.is_file() {
                Ok(())
            } else {
                std::fs::create_dir_all(&self.marks).and_then(|()| std::fs::write(mark, b""))
            }
        } else {
            Err(std::io::Error::other(format!("the node id {node:?} cannot name a file")))
        };
        match written {
            Ok(()) => self.unmarked.store(false, Ordering::Relaxed),
            Err(e) if !self.unmarked.swap(true, Ordering::Relaxed) => {
                warn!("recordings: cannot leave this node's mark in the recordings directory: {e}")
            }
            Err(_) => {}
        }
    }

    /// Look for the marks of the live `others`; a change in the ones missing is logged.
    pub fn check<'a>(&self, others: impl Iterator<Item = &'a str>) {
        let mut missing: Vec<String> =
            others.filter(|n| !safe(n) || !self.marks.join(n).is_file()).map(str::to_owned).collect();
        missing.sort();
        let mut unseen = self.unseen.lock().unwrap_or_else(|e| e.into_inner());
        if *unseen == missing {
            return;
        }
        let dir = self.marks.parent().unwrap_or(&self.marks).display();
        if missing.is_empty() {
            info!(%dir, "recordings: the directory is shared with every live node");
        } else {
            warn!(
                %dir, nodes = ?missing,
                "recordings: these live nodes' recordings cannot be seen from here ([recording] dir is not shared): their classes' recordings will not replay through this node"
            );
        }
        *unseen = missing;
    }

    /// The live nodes whose recordings this node could not see at its last check.
    pub fn unseen(&self) -> Vec<String> {
        self.unseen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_sees_the_marks_left_in_its_directory_and_misses_the_others() {
        let tmp = std::env::temp_dir().join(format!("ardoise-share-{}", rand::random::<u64>()));
        let (shared, apart) = (RecordingsShare::new(&tmp.join("shared")), RecordingsShare::new(&tmp.join("apart")));
        shared.mark("node-1");
        RecordingsShare::new(&tmp.join("shared")).mark("node-2");
        apart.mark("node-3");
        shared.check(["node-2", "node-3"].into_iter());
        assert_eq!(shared.unseen(), vec!["node-3".to_owned()]);
        apart.check(["node-2", "node-1"].into_iter());
        assert_eq!(apart.unseen(), vec!["node-1".to_owned(), "node-2".to_owned()]);
        // Once node-3 writes to the shared directory too, nothing is missing.
        RecordingsShare::new(&tmp.join("shared")).mark("node-3");
        shared.check(["node-2", "node-3"].into_iter());
        assert!(shared.unseen().is_empty());
        // A node id that would make a path elsewhere is never a file name.
        shared.mark("../x");
        shared.mark(".hidden");
        assert!(!tmp.join("x").exists() && !tmp.join("shared/.nodes/.hidden").exists());
        assert!(shared.unmarked.load(Ordering::Relaxed), "the failure is remembered (logged once)");
        shared.check(["../node-2"].into_iter());
        assert_eq!(shared.unseen(), vec!["../node-2".to_owned()]);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
