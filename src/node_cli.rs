//! `ardoise node …`: the nodes of a cluster, from the command line of any machine that has
//! the cluster's configuration (its database).

use crate::accounts_cli::ConfigArg;
use anyhow::{Context, Result, bail};
use ardoise_server::Config;
use ardoise_store::{Store, now_ms};
use clap::Subcommand;
use std::time::{Duration, Instant};

/// `ardoise node …`
#[derive(Subcommand)]
pub enum NodeCommand {
    /// The registered nodes: heartbeat age, load, classes, draining.
    List(ConfigArg),
    /// Stop placing new classes on NODE, then wait until it owns none and serves no pupil
    /// (its classes end, the pupils it serves as an edge move to other edges; or
    /// move): after that it can stop with no class cut.
    Drain {
        /// The node's id (`cluster.node_id`).
        node: String,
        /// Give up waiting after this many seconds (exit 1; the node stays draining).
        #[arg(long, default_value_t = 3600)]
        wait_secs: u64,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Let NODE take new classes again.
    Undrain {
        /// The node's id.
        node: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

async fn open(c: &ConfigArg) -> Result<Store> {
    let config = Config::load(c.config.as_deref(), std::env::vars()).context("configuration")?;
    let url = config.database_url();
    Store::open(&url).await.map_err(|e| anyhow::anyhow!("database {}: {e}", ardoise_store::redact(&url)))
}

/// Run `ardoise node …`.
pub async fn node(cmd: NodeCommand) -> Result<()> {
    match cmd {
        NodeCommand::List(c) => {
            let store = open(&c).await?;
            let counts = store.placement_counts().await?;
            println!(
                "{:<16} {:>9} {:>7} {:>8} {:>8} {:>9}  {:<8} url",
                "node", "heartbeat", "pupils", "capacity", "classes", "cpu", "state"
            );
            for n in store.nodes().await? {
                let classes = counts.iter().find(|(id, _)| *id == n.node_id).map_or(0, |(_, c)| *c);
                let age = (now_ms() - n.heartbeat_at) as f64 / 1000.0;
                let state = if n.draining != 0 { "draining" } else { "open" };
                println!(
                    "{:<16} {:>8.1}s {:>7} {:>8} {:>8} {:>8.1}%  {:<8} {}",
                    n.node_id,
                    age,
                    n.pupils,
                    n.capacity,
                    classes,
                    n.cpu_permille as f64 / 10.0,
                    state,
                    n.public_url
                );
            }
            Ok(())
        }
        NodeCommand::Drain { node, wait_secs, config } => {
            let store = open(&config).await?;
            store.set_draining(&node, true).await.with_context(|| format!("node {node}"))?;
            store.audit("command line", "node.drain", &format!("node:{node}"), "").await?;
            println!("{node}: draining (no new classes)");
            let deadline = Instant::now() + Duration::from_secs(wait_secs);
            loop {
                let left = store.placements_of(&node).await?;
                // An edge's pupils (a class another node owns) move to other edges.
                let pupils = store.nodes().await?.iter().find(|n| n.node_id == node).map_or(0, |n| n.pupils);
                if left.is_empty() && pupils == 0 {
                    println!("{node}: drained (no class left, no pupil)");
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    bail!("{node}: still owns {} classes and serves {pupils} pupils after {wait_secs} s", left.len());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        NodeCommand::Undrain { node, config } => {
            let store = open(&config).await?;
            store.set_draining(&node, false).await.with_context(|| format!("node {node}"))?;
            store.audit("command line", "node.undrain", &format!("node:{node}"), "").await?;
            println!("{node}: open to new classes");
            Ok(())
        }
    }
}
