//! The cluster's shared state: the nodes, each heart-beating its registration and load, the
//! placement of each live class on one node, and each live class's hub state (for the node
//! that takes it over).
//!
//! Rules:
//! - a node's row is written only by the process that holds it (its `instance`), or taken
//!   over once its heartbeat is older than the caller's `dead_after`: two live processes never
//!   share a node id;
//! - a class has at most one placement (its primary key): the first insert wins, and a move
//!   to another node is an update conditional on the old owner, so two nodes racing for a
//!   class, or for a dead node's class, never both win;
//! - the store judges nothing else: liveness, room and signatures are the server's
//!   (`ardoise_server::cluster`).

use crate::{Result, Store, StoreError};

/// A node as registered.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRow {
    /// Its id (`cluster.node_id`).
    pub node_id: String,
    /// The origin pupils and studios are sent to (`cluster.public_url`).
    pub public_url: String,
    /// The process holding the id.
    pub instance: String,
    /// Pupils it takes (`cluster.capacity`).
    pub capacity: i64,
    /// Pupils connected now.
    pub pupils: i64,
    /// Classes it owns now.
    pub classes: i64,
    /// CPU of the process over the last heartbeat, thousandths of one core.
    pub cpu_permille: i64,
    /// Media bitrate sent, kbit/s.
    pub kbps_out: i64,
    /// When the process registered (ms).
    pub started_at: i64,
    /// Its latest heartbeat (ms).
    pub heartbeat_at: i64,
    /// The registration's signature (see the server's `cluster`).
    pub signature: String,
    /// 1 when no new class may be placed on it.
    pub draining: i64,
}

/// Which node owns a class.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Placement {
    /// The class.
    pub class_id: String,
    /// Its owner.
    pub node_id: String,
    /// When placed on this owner (ms).
    pub placed_at: i64,
    /// 1 when first placed, one more at each move.
    pub epoch: i64,
}

const NODE_COLUMNS: &str = "node_id, public_url, instance, capacity, pupils, classes, cpu_permille, kbps_out, \
                            started_at, heartbeat_at, signature, draining";

impl Store {
    /// Write `node`'s heartbeat: its registration and load. Refused
    /// ([`StoreError::Duplicate`]) when another process holds the id and heart-beat less
    /// than `dead_after_ms` ago. A new process on the id starts not draining.
    pub async fn heartbeat(&self, node: &NodeRow, dead_after_ms: i64) -> Result<()> {
        let written = sqlx::query(
            "INSERT INTO nodes (node_id, public_url, instance, capacity, pupils, classes, cpu_permille, kbps_out, \
             started_at, heartbeat_at, signature, draining) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0) \
             ON CONFLICT (node_id) DO UPDATE SET public_url = excluded.public_url, instance = excluded.instance, \
             capacity = excluded.capacity, pupils = excluded.pupils, classes = excluded.classes, \
             cpu_permille = excluded.cpu_permille, kbps_out = excluded.kbps_out, started_at = excluded.started_at, \
             heartbeat_at = excluded.heartbeat_at, signature = excluded.signature, \
             draining = CASE WHEN nodes.instance = excluded.instance THEN nodes.draining ELSE 0 END \
             WHERE nodes.instance = excluded.instance OR nodes.heartbeat_at < $12",
        )
        .bind(&node.node_id)
        .bind(&node.public_url)
        .bind(&node.instance)
        .bind(node.capacity)
        .bind(node.pupils)
        .bind(node.classes)
        .bind(node.cpu_permille)
        .bind(node.kbps_out)
        .bind(node.started_at)
        .bind(node.heartbeat_at)
        .bind(&node.signature)
        .bind(node.heartbeat_at - dead_after_ms)
        .execute(self.pool())
        .await?
        .rows_affected();
        if written == 0 {
            return Err(StoreError::Duplicate("a live node with this id"));
        }
        Ok(())
    }

    /// Every registered node, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        Ok(sqlx::query_as(&format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id")).fetch_all(self.pool()).await?)
    }

    /// Set whether `node` is draining (no new placements); [`StoreError::NotFound`] if it
    /// never registered.
    pub async fn set_draining(&self, node: &str, draining: bool) -> Result<()> {
        let n = sqlx::query("UPDATE nodes SET draining = $1 WHERE node_id = $2")
            .bind(i64::from(draining))
            .bind(node)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("node"));
        }
        Ok(())
    }

    /// Remove `node`'s registration and placements, if `instance` still holds it (a node
    /// leaving cleanly).
    pub async fn leave_cluster(&self, node: &str, instance: &str) -> Result<()> {
        let n = sqlx::query("DELETE FROM nodes WHERE node_id = $1 AND instance = $2")
            .bind(node)
            .bind(instance)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n > 0 {
            sqlx::query("DELETE FROM placements WHERE node_id = $1").bind(node).execute(self.pool()).await?;
        }
        Ok(())
    }

    /// The placement of `class`, if it has one.
    pub async fn placement(&self, class: &str) -> Result<Option<Placement>> {
        Ok(sqlx::query_as("SELECT class_id, node_id, placed_at, epoch FROM placements WHERE class_id = $1")
            .bind(class)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Place `class` on `node` unless it is placed already; returns the placement that holds
    /// (`node`'s, or the one that was there first).
    pub async fn place(&self, class: &str, node: &str, now: i64) -> Result<Placement> {
        sqlx::query(
            "INSERT INTO placements (class_id, node_id, placed_at, epoch) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (class_id) DO NOTHING",
        )
        .bind(class)
        .bind(node)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.placement(class).await?.ok_or(StoreError::NotFound("placement"))
    }

    /// Move `class` from `from` to `to`, only if `from` still owns it; returns the placement
    /// that holds (the move's, or whoever moved it first).
    pub async fn move_placement(&self, class: &str, from: &str, to: &str, now: i64) -> Result<Placement> {
        sqlx::query(
            "UPDATE placements SET node_id = $1, placed_at = $2, epoch = epoch + 1 \
             WHERE class_id = $3 AND node_id = $4",
        )
        .bind(to)
        .bind(now)
        .bind(class)
        .bind(from)
        .execute(self.pool())
        .await?;
        match self.placement(class).await? {
            Some(p) => Ok(p),
            // Released meanwhile: place it afresh.
            None => self.place(class, to, now).await,
        }
    }

    /// Release `class` if `node` owns it (the class ended, or stayed empty); returns whether
    /// it did.
    pub async fn release(&self, class: &str, node: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM placements WHERE class_id = $1 AND node_id = $2")
            .bind(class)
            .bind(node)
            .execute(self.pool())
            .await?
            .rows_affected()
            > 0)
    }

    /// The classes `node` owns.
    pub async fn placements_of(&self, node: &str) -> Result<Vec<Placement>> {
        Ok(sqlx::query_as(
            "SELECT class_id, node_id, placed_at, epoch FROM placements WHERE node_id = $1 ORDER BY class_id",
        )
        .bind(node)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many classes each node owns.
    pub async fn placement_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT node_id, COUNT(*) FROM placements GROUP BY node_id ORDER BY node_id")
            .fetch_all(self.pool())
            .await?)
    }

    /// Keep `class`'s live state (`state`, the server's JSON) as of `now`.
    pub async fn save_live_state(&self, class: &str, state: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO class_live_state (class_id, state, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (class_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(class)
        .bind(state)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `class`'s live state as last kept, if kept at `since` (ms) or later.
    pub async fn live_state(&self, class: &str, since: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT state FROM class_live_state WHERE class_id = $1 AND updated_at >= $2")
            .bind(class)
            .bind(since)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Forget `class`'s live state (the class ended, or was released empty).
    pub async fn forget_live_state(&self, class: &str) -> Result<()> {
        sqlx::query("DELETE FROM class_live_state WHERE class_id = $1").bind(class).execute(self.pool()).await?;
        Ok(())
    }
}
