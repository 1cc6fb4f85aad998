//! HTTP side of Ardoise: WHIP/WHEP, the class API, tokens, the admin API, `/metrics` and the
//! embedded web pages, in front of the media workers of `ardoise-net`.
//!
//! [`app`] builds the router from a state (testable with `oneshot`); [`Server`] binds the
//! sockets, starts the workers and serves until a shutdown signal.

pub mod admin;
pub mod auth;
pub mod class_api;
pub mod class_events;
pub mod class_hub;
pub mod classes;
pub mod config;
pub mod media_endpoints;
pub mod metrics;
pub mod problem;
pub mod state;
pub mod web;

pub use config::Config;
pub use problem::Problem;
pub use state::{AppState, SharedState};

use ardoise_net::{MediaConfig, MediaServer};
use ardoise_proto::{ClassId, ClassInfo, ClassState, JoinCode};
use ardoise_sfu::SfuConfig;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;
use anyhow_free::Msg as _;

/// The router over `state`.
pub fn app(state: SharedState) -> Router {
    let max_body = state.max_body;
    Router::new()
        .route("/", get(web::pupil))
        .route("/c/{code}", get(web::pupil))
        .route("/teacher", get(web::teacher))
        .route("/admin", get(web::admin))
        .route("/assets/{name}", get(web::asset))
        .route("/watch", get(web::watch))
        .route("/favicon.ico", get(web::favicon))
        .route("/ws/{class}", get(class_events::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::metrics))
        .route("/api/classes", post(class_api::create))
        .route("/api/classes/{code}", get(class_api::get).delete(class_api::end))
        .route("/api/classes/{code}/join", post(class_api::join))
        .route("/api/classes/{code}/qr.svg", get(web::qr))
        .route("/api/admin/classes", get(admin::classes))
        .route("/whip/{class}", post(media_endpoints::whip_post))
        .route("/whip/{class}/{id}", axum::routing::patch(media_endpoints::whip_patch).delete(media_endpoints::whip_delete))
        .route("/whep/{class}", post(media_endpoints::whep_post))
        .route("/whep/{class}/{id}", axum::routing::patch(media_endpoints::whep_patch).delete(media_endpoints::whep_delete))
        .fallback(|| async { Problem::not_found("no such resource") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// A running server: its addresses and a way to stop it.
pub struct Server {
    state: SharedState,
    listener: tokio::net::TcpListener,
    grace: Duration,
}

impl Server {
    /// Bind the HTTP listener and the media sockets, start the workers.
    pub async fn start(config: &Config) -> anyhow_free::Result<Server> {
        let secret = auth::TokenSigner::secret_from(&config.auth.secret, &config.data.dir)?;
        let tokens = auth::TokenSigner::new(&secret, config.auth.token_ttl_secs)?;
        let classes = classes::ClassRegistry::default();
        for c in &config.classes {
            classes.insert(ClassInfo {
                id: ClassId(c.id.clone()),
                code: JoinCode(c.code.clone()),
                title: c.title.clone(),
                state: ClassState::Open,
            });
        }
        let sfu = SfuConfig {
            candidates: vec![],
            layer: config.media.layer.parse().map_err(anyhow_free::Error::msg)?,
            keyframe_interval: Duration::from_millis(config.media.keyframe_interval_ms),
            max_participants: config.media.max_peers_per_class,
            video_history: config.media.video_history,
            connect_timeout: Duration::from_secs(config.media.connect_timeout_secs),
            adaptation: config.media.adaptation,
            allocator: SfuConfig::default().allocator,
        };
        let media_config =
            MediaConfig {
            udp: config.media.udp,
            workers: config.worker_count(),
            advertise: config.advertise_ip()?,
            sfu,
            gso: config.media.gso,
            frame_hold: Duration::from_millis(config.media.frame_hold_ms),
            slice_packets: config.media.slice_packets,
        };
        let (media, events) = MediaServer::start(media_config)?;
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|e| anyhow_free::Error::msg(format!("cannot listen on {}: {e}", config.http.listen)))?;
        let state = Arc::new(AppState::new(tokens, classes, media, config.http.max_body));
        tokio::spawn(state.clone().follow_media_events(events));
        Ok(Server { state, listener, grace: Duration::from_secs(config.http.shutdown_grace_secs) })
    }

    /// The HTTP address actually bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The media workers' advertised UDP addresses.
    pub fn media_addrs(&self) -> Vec<SocketAddr> {
        self.state.media.addresses()
    }

    /// The shared state (for `ardoise demo` and tests).
    pub fn state(&self) -> SharedState {
        self.state.clone()
    }

    /// Serve until `shutdown` resolves, then stop accepting, close peers, and return within the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow_free::Result<()> {
        let router = app(self.state.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stop_rx2 = stop_rx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let serve = axum::serve(self.listener, router).with_graceful_shutdown(async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|v| *v).await;
        });
        let server = tokio::spawn(async move { serve.await });
        let _ = stop_rx2.wait_for(|v| *v).await;
        info!("shutting down: closing media sessions");
        self.state.media.shutdown(self.grace).await;
        match tokio::time::timeout(self.grace, server).await {
            Ok(r) => r.map_err(|e| anyhow_free::Error::msg(e.to_string()))??,
            Err(_) => info!("HTTP connections still open after {:?}; leaving", self.grace),
        }
        info!("stopped");
        Ok(())
    }
}

/// A minimal boxed error for `Server` (the binary uses anyhow on top).
pub mod anyhow_free {
    /// Boxed error.
    pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
    /// Result with a boxed error.
    pub type Result<T> = std::result::Result<T, Error>;
    /// Helpers to make an error from a message.
    pub trait Msg {
        /// An error carrying `m`.
        fn msg(m: impl Into<String>) -> Error;
    }
    impl Msg for Error {
        fn msg(m: impl Into<String>) -> Error {
            m.into().into()
        }
    }
}
