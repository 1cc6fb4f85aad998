//! Class link: the studio's connection to the class events (`/ws/{class}`), so the teacher's
//! web console can switch the studio's layout remotely.
//!
//! It says `hello` as a studio with the teacher token, applies every `layout` it hears (and
//! the one in `welcome`), pings, and reconnects with backoff (250 ms → 8 s).

use crate::{Layout, Pipeline, StudioConfig};
use anyhow::{Context, Result, bail};
use ardoise_proto::{ClientEvent, ClientKind, ServerEvent};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

/// Counters of the class link.
#[derive(Debug, Default)]
pub struct ClassLinkStats {
    /// Connected to the class events now.
    pub connected: AtomicBool,
    /// Layout changes applied from the teacher's console.
    pub layouts_applied: AtomicU64,
}

fn ws_url(server: &str, class: &str) -> Result<String> {
    let rest = server
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| server.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .context("studio.server must start with http:// or https://")?;
    Ok(format!("{}/ws/{class}", rest.trim_end_matches('/')))
}

fn apply(pipeline: &Pipeline, layout: &str, stats: &ClassLinkStats) {
    match layout.parse::<Layout>() {
        Ok(l) if l != pipeline.layout() => {
            info!(layout = %layout, "layout from the teacher's console");
            pipeline.set_layout(l);
            stats.layouts_applied.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) => {}
        Err(e) => warn!("class link: {e}"),
    }
}

async fn session(config: &StudioConfig, pipeline: &Pipeline, stop: &AtomicBool, stats: &ClassLinkStats) -> Result<()> {
    // Blocking is fine: this runtime is the class link's own thread.
    let server = config.class_server()?;
    let url = ws_url(&server, &config.class)?;
    // wss:// trusts what the studio's HTTPS trusts (system authorities, --ca, a pinned fingerprint).
    let connector = tokio_tungstenite::Connector::Rustls(ardoise_client::trust::client_config());
    let connecting = tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, true, Some(connector));
    let (mut ws, _) =
        tokio::time::timeout(Duration::from_secs(5), connecting).await.context("connecting timed out")??;
    let hello = ClientEvent::Hello { token: config.token.clone(), client: ClientKind::Studio };
    ws.send(Message::Text(serde_json::to_string(&hello)?.into())).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut since_ping = 0u32;
    loop {
        tokio::select! {
            msg = ws.next() => {
                let Some(msg) = msg else { bail!("closed by the server") };
                let Message::Text(text) = msg? else { continue };
                match serde_json::from_str::<ServerEvent>(&text) {
                    Ok(ServerEvent::Welcome { layout, .. }) => {
                        stats.connected.store(true, Ordering::Relaxed);
                        info!("class link up");
                        match layout {
                            Some(l) => apply(pipeline, &l, stats),
                            // The class has no layout yet: tell the console which one is on.
                            None => {
                                let set = ClientEvent::SetLayout { layout: pipeline.layout().to_string() };
                                ws.send(Message::Text(serde_json::to_string(&set)?.into())).await?;
                            }
                        }
                    }
                    Ok(ServerEvent::Layout { layout }) => apply(pipeline, &layout, stats),
                    Ok(ServerEvent::Error { code, message }) => warn!(?code, "class link: {message}"),
                    Ok(ServerEvent::ClassEnded) => info!("the class has ended"),
                    Ok(_) => {}
                    Err(e) => debug!("class link: unknown message: {e}"),
                }
            }
            _ = tick.tick() => {
                if stop.load(Ordering::Relaxed) {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
                since_ping += 1;
                if since_ping >= 100 {
                    since_ping = 0;
                    ws.send(Message::Text(serde_json::to_string(&ClientEvent::Ping)?.into())).await?;
                }
            }
        }
    }
}

/// Follow the class events until `stop`.
pub fn run(config: &StudioConfig, pipeline: &Pipeline, stop: &AtomicBool, stats: &ClassLinkStats) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            warn!("class link disabled: {e}");
            return;
        }
    };
    let mut backoff = Duration::from_millis(250);
    while !stop.load(Ordering::Relaxed) {
        let r = rt.block_on(session(config, pipeline, stop, stats));
        let was_up = stats.connected.swap(false, Ordering::Relaxed);
        match r {
            Ok(()) => return,
            Err(e) => debug!("class link interrupted: {e:#}; retrying in {backoff:?}"),
        }
        if was_up {
            backoff = Duration::from_millis(250);
        }
        rt.block_on(async {
            let until = tokio::time::Instant::now() + backoff;
            while tokio::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        backoff = (backoff * 2).min(Duration::from_secs(8));
    }
}

#[cfg(test)]
mod tests {
    use super::ws_url;

    #[test]
    fn websocket_url_from_the_server_url() {
        assert_eq!(ws_url("http://127.0.0.1:8080", "demo").unwrap(), "ws://127.0.0.1:8080/ws/demo");
        assert_eq!(ws_url("https://ecole.example/", "c1").unwrap(), "wss://ecole.example/ws/c1");
        assert!(ws_url("ftp://x", "c").is_err());
    }
}
