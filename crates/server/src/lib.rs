//! HTTP side of Ardoise: WHIP/WHEP, the class API, tokens, the admin API, `/metrics` and the
//! embedded web pages, in front of the media workers of `ardoise-net`.
//!
//! [`app`] builds the router from a state (testable with `oneshot`); [`Server`] binds the
//! sockets, starts the workers and serves until a shutdown signal.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod cascade;
pub mod check;
pub mod class_api;
pub mod class_events;
pub mod class_hub;
pub mod class_routing;
pub mod classes;
pub mod cluster;
pub mod cluster_view;
pub mod config;
pub mod download_links;
pub mod edge_relay;
pub mod http_listener;
pub mod limits;
pub mod media_endpoints;
pub mod metrics;
pub mod passwords;
pub mod problem;
pub mod recordings;
pub mod recordings_share;
pub mod records;
pub mod revocations;
pub mod staff;
pub mod state;
pub mod teaching;
pub mod tls;
pub mod turn;
pub mod web;

pub use config::Config;
pub use problem::{Problem, store_problem};
pub use state::{AppState, SharedState};

use anyhow_free::Msg as _;
use ardoise_net::{MediaConfig, MediaServer};
use ardoise_proto::{ClassId, ClassInfo, ClassState, JoinCode};
use ardoise_sfu::SfuConfig;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use http_listener::{ConnectionLimits, HttpListener};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The router over `state`.
pub fn app(state: SharedState) -> Router {
    let max_body = state.max_body;
    Router::new()
        .route("/", get(web::pupil))
        .route("/c/{code}", get(web::pupil))
        .route("/replay", get(web::replay))
        .route("/teacher", get(web::teacher))
        .route("/admin", get(web::admin))
        .route("/login", get(web::login))
        .route("/my", get(web::my_classes))
        .route("/admin/schools", get(web::schools))
        .route("/assets/{name}", get(web::asset))
        .route("/watch", get(web::watch))
        .route("/favicon.ico", get(web::favicon))
        .route("/ws/{class}", get(class_events::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics::metrics))
        .route("/api/classes", post(class_api::create))
        .route("/api/classes/{code}", get(class_api::get).delete(class_api::end))
        .route("/api/classes/{id}/recording/start", post(recordings::start))
        .route("/api/classes/{id}/recording/stop", post(recordings::stop))
        .route("/api/classes/{id}/recordings", get(recordings::list))
        .route("/api/classes/{id}/recordings/{rec}", patch(recordings::update).delete(recordings::delete))
        .route("/api/classes/{id}/recordings/{rec}/download", post(recordings::download))
        .route("/api/classes/{id}/recordings/{rec}/{file}", get(recordings::file))
        .route("/api/classes/{code}/join", post(class_api::join))
        .route("/api/classes/{code}/node", get(class_api::node))
        .route("/api/classes/{code}/code", post(class_api::rotate_code))
        .route("/api/classes/{code}/qr.svg", get(web::qr))
        .route("/api/admin/classes", get(admin::classes))
        .route("/api/admin/faults", post(admin::inject_fault))
        .route("/api/admin/nodes", get(admin::nodes))
        .route("/api/admin/nodes/{id}/drain", post(admin::drain))
        .route("/api/ice-servers", get(class_api::ice_servers))
        .route("/check", get(web::check))
        .route("/api/check", post(check::start))
        .route("/api/check/session/{id}", get(check::session))
        .route("/api/check/verdict", post(check::verdict))
        .route("/api/check/echo", post(check::echo))
        .route("/api/classes/{id}/checks", get(check::counts))
        .route("/api/login", post(accounts::login))
        .route("/api/logout", post(accounts::logout))
        .route("/api/me", get(accounts::me))
        .route("/api/admin/schools", get(staff::schools).post(staff::create_school))
        .route("/api/admin/teachers", get(staff::teachers).post(staff::create_teacher))
        .route("/api/admin/users/{id}/password", post(staff::reset_password))
        .route("/api/admin/schools/{id}/classes", get(staff::school_classes))
        .route("/api/admin/audit", get(staff::audit))
        .route("/api/admin/pupils/{pupil}", get(staff::export_pupil).delete(staff::erase_pupil))
        .route("/api/my/classes", get(teaching::my_classes))
        .route("/api/classes/{id}/settings", axum::routing::put(teaching::settings))
        .route("/api/classes/{id}/tokens", post(teaching::token))
        .route("/api/classes/{id}/attendance", get(teaching::attendance))
        .route("/api/classes/{id}/attendance.csv", get(teaching::attendance_csv))
        .route("/whip/{class}", post(media_endpoints::whip_post))
        .route(
            "/whip/{class}/{id}",
            axum::routing::patch(media_endpoints::whip_patch).delete(media_endpoints::whip_delete),
        )
        .merge(
            Router::new()
                .route("/whep/{class}", post(media_endpoints::whep_post))
                .route(
                    "/whep/{class}/{id}",
                    axum::routing::patch(media_endpoints::whep_patch).delete(media_endpoints::whep_delete),
                )
                .layer(cascade::cors(state.clone())),
        )
        .fallback(|| async { Problem::not_found("no such resource") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), class_routing::route))
        .layer(axum::middleware::map_response_with_state(state.clone(), strict_transport))
        .with_state(state)
}

/// Over HTTPS, every answer tells browsers to come back over HTTPS only (HSTS, a year).
async fn strict_transport(
    axum::extract::State(s): axum::extract::State<SharedState>,
    mut r: axum::response::Response,
) -> axum::response::Response {
    if s.tls {
        r.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    r
}

/// Media file descriptors kept apart from the HTTP connection cap (sockets, files, logs).
const RESERVED_FDS: u64 = 256;

/// A running server: its addresses and a way to stop it.
pub struct Server {
    state: SharedState,
    listener: HttpListener,
    grace: Duration,
    tls: Option<tls::TlsIdentity>,
    redirect: Option<tokio::net::TcpListener>,
    origin: String,
}

impl Server {
    /// Bind the HTTP listener and the media sockets, start the workers.
    pub async fn start(config: &Config) -> anyhow_free::Result<Server> {
        let fds = http_listener::raise_fd_limit();
        let limits_cfg = config.limits;
        if (limits_cfg.connections as u64) + RESERVED_FDS > fds {
            return Err(anyhow_free::Error::msg(format!(
                "limits.connections = {} does not fit the open-file limit {fds} (minus {RESERVED_FDS} for media and files): \
                 lower it or raise the limit (ulimit -n, LimitNOFILE=)",
                limits_cfg.connections
            )));
        }
        info!(open_files = fds, connections = limits_cfg.connections, "file-descriptor limit");
        let secret = auth::TokenSigner::secret_from(&config.auth.secret, &config.data.dir)?;
        std::fs::create_dir_all(&config.data.dir)
            .map_err(|e| anyhow_free::Error::msg(format!("data directory {}: {e}", config.data.dir.display())))?;
        let revocations = Arc::new(
            revocations::Revocations::open(&config.data.dir)
                .map_err(|e| anyhow_free::Error::msg(format!("revocation list: {e}")))?,
        );
        let store = ardoise_store::Store::connect(&config.database_url())
            .await
            .map_err(|e| anyhow_free::Error::msg(format!("{e}")))?;
        let tokens = auth::TokenSigner::from_store(&secret, config.auth.token_ttl_secs, &store)
            .await?
            .with_revocations(revocations);
        let classes = classes::ClassRegistry::with_capacity(limits_cfg.classes);
        for c in &config.classes {
            let info = ClassInfo {
                id: ClassId(c.id.clone()),
                code: JoinCode(c.code.clone()),
                title: c.title.clone(),
                state: ClassState::Open,
                code_expires_at: None,
            };
            classes.declare(info.clone());
            // Declared classes have their row too (their sessions and attendance refer to it).
            if let Some(row) = classes.row(&info.id)
                && let Err(e) = store.insert_class(&row).await
                && !matches!(e, ardoise_store::StoreError::Duplicate(_))
            {
                return Err(anyhow_free::Error::msg(format!("class {}: {e}", info.id)));
            }
        }
        // The pre-class check's test programme is a class of its own (see `check`).
        classes.declare(check::programme_class());
        // Classes that outlive a restart, with their codes, owners and policies.
        let kept = store.open_classes().await.map_err(|e| anyhow_free::Error::msg(format!("{e}")))?;
        for row in &kept {
            classes.restore(row);
        }
        let left = if config.cluster.enabled() {
            // Other nodes' classes go on: only the ones this node owned when it stopped.
            let mine: Vec<String> = store
                .placements_of(&config.cluster.node_id)
                .await
                .map_err(|e| anyhow_free::Error::msg(format!("{e}")))?
                .into_iter()
                .map(|p| p.class_id)
                .collect();
            store.mark_left_in(&mine).await
        } else {
            store.mark_everyone_left().await
        }
        .map_err(|e| anyhow_free::Error::msg(format!("{e}")))?;
        info!(classes = kept.len(), pupils_marked_left = left, "database open");
        // The SFU's own cap is a backstop behind the HTTP side's admission rules.
        let backstop = config.media.max_peers_per_class + limits_cfg.pending_per_class + limits_cfg.sessions_per_token;
        let sfu = SfuConfig {
            candidates: vec![],
            tcp_candidates: vec![],
            layer: config.media.layer.parse().map_err(anyhow_free::Error::msg)?,
            keyframe_interval: Duration::from_millis(config.media.keyframe_interval_ms),
            keyframe_replay: Duration::from_millis(config.media.keyframe_replay_ms),
            keyframe_replay_bytes: config.media.keyframe_replay_kib * 1024,
            max_participants: backstop,
            video_history: config.media.video_history,
            connect_timeout: Duration::from_secs(config.media.connect_timeout_secs),
            adaptation: config.media.adaptation,
            allocator: SfuConfig::default().allocator,
        };
        let media_config = MediaConfig {
            udp: config.media.udp,
            workers: config.worker_count(),
            advertise: config.advertise_ip()?,
            sfu,
            gso: config.media.gso,
            frame_hold: Duration::from_millis(config.media.frame_hold_ms),
            slice_packets: config.media.slice_packets,
            tcp: config.tcp_address()?,
            tcp_per_ip: limits_cfg.ice_tcp_per_ip,
            receive_buffer: config.media.receive_buffer_kib * 1024,
            fan_out_peers: config.media.fan_out_peers,
        };
        let (media, events) = MediaServer::start(media_config)?;
        let tcp = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|e| anyhow_free::Error::msg(format!("cannot listen on {}: {e}", config.http.listen)))?;
        let trusted_proxies = config::parse_networks(&config.http.trusted_proxies).map_err(anyhow_free::Error::msg)?;
        let tls = if config.http.tls_self_signed {
            Some(tls::TlsIdentity::self_signed(&config.data.dir, &config.http.certificate_names())?)
        } else if !config.http.tls_cert.is_empty() {
            Some(tls::TlsIdentity::from_files(config.http.tls_cert.as_ref(), config.http.tls_key.as_ref())?)
        } else {
            None
        };
        let tls_config = tls.as_ref().map(|t| t.server_config()).transpose()?;
        let http_port = tcp.local_addr().map(|a| a.port()).unwrap_or(0);
        let redirect = match config.http.redirect_listen.as_str() {
            "" => None,
            a => {
                let addr: SocketAddr =
                    a.parse().map_err(|_| anyhow_free::Error::msg(format!("http.redirect_listen '{a}'")))?;
                Some(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(|e| anyhow_free::Error::msg(format!("cannot listen on {addr}: {e}")))?,
                )
            }
        };
        let listener = HttpListener::new(
            tcp,
            ConnectionLimits {
                per_ip: limits_cfg.connections_per_ip,
                total: limits_cfg.connections,
                header_timeout: Duration::from_secs(limits_cfg.header_timeout_secs),
                trusted_proxies: trusted_proxies.clone(),
            },
            tls_config,
        );
        let media_ips: Vec<std::net::IpAddr> = {
            let mut ips: Vec<_> = media.addresses().iter().map(|a| a.ip()).collect();
            ips.dedup();
            ips
        };
        // On this thread (a runtime worker, which lives as long as the server): coturn is told
        // to die with the thread that started it.
        let files = tls.as_ref().map(|t| t.files.clone());
        let turn = tokio::task::block_in_place(|| turn::Turn::start(config, &media_ips, files.as_ref()))?;
        let limits = limits::Limits::new(limits_cfg, trusted_proxies).with_logins(&config.accounts);
        let mut state = AppState::new(tokens, classes, media, config.http.max_body, limits, store, config);
        state.turn = turn;
        state.tls = tls.is_some();
        state.public_origin = (!config.http.public_names.is_empty()).then(|| config.http.public_origin(http_port));
        state.max_peers_per_class = config.media.max_peers_per_class;
        state.metrics_allow = config::parse_networks(&config.http.metrics_allow).map_err(anyhow_free::Error::msg)?;
        if config.cluster.enabled() {
            state.cluster = Some(
                cluster::Cluster::join(&config.cluster, config.cluster.secret.as_bytes(), state.store.clone())
                    .await
                    .map_err(anyhow_free::Error::msg)?,
            );
        }
        let state = Arc::new(state);
        if let Some(cluster) = &state.cluster {
            tokio::spawn(cluster.clone().run(Arc::downgrade(&state)));
        }
        state.recordings.recover(&state.store, state.cluster.as_deref(), false).await;
        tokio::spawn(state.clone().follow_media_events(events));
        tokio::spawn(state.clone().housekeeping(Duration::from_secs(2)));
        Ok(Server {
            state,
            listener,
            grace: Duration::from_secs(config.http.shutdown_grace_secs),
            tls,
            redirect,
            origin: config.http.public_origin(http_port),
        })
    }

    /// The server's TLS certificate, when it speaks HTTPS.
    pub fn tls(&self) -> Option<&tls::TlsIdentity> {
        self.tls.as_ref()
    }

    /// The origin of the links to print (`https://name:port`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The HTTP address actually bound.
    pub fn http_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Open HTTP connections, per client address and in total.
    pub fn connection_counts(&self) -> Arc<http_listener::ListenerCounts> {
        self.listener.counts()
    }

    /// The media workers' advertised UDP addresses.
    pub fn media_addrs(&self) -> Vec<SocketAddr> {
        self.state.media.addresses()
    }

    /// The ICE-TCP listener's advertised address, if ICE-TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.state.media.tcp_address()
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
        let grace = self.grace;
        let https_port = self.http_addr().port();
        let serve = self.listener.serve(
            router,
            async move {
                let mut rx = stop_rx;
                let _ = rx.wait_for(|v| *v).await;
            },
            grace,
        );
        let server = tokio::spawn(serve);
        if let Some(redirect) = self.redirect {
            let mut stop = stop_rx2.clone();
            let app = web::redirect_app(self.state.public_origin.clone(), https_port);
            tokio::spawn(async move {
                let _ = axum::serve(redirect, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|v| *v).await;
                    })
                    .await;
            });
        }
        let _ = stop_rx2.wait_for(|v| *v).await;
        if let Some(cluster) = &self.state.cluster {
            // Its classes are free at once: their clients reconnect through another node.
            cluster.leave().await;
        }
        self.state.cascade.stop_all();
        info!("shutting down: closing media sessions");
        self.state.media.shutdown(self.grace).await;
        if tokio::time::timeout(self.grace + Duration::from_secs(1), server).await.is_err() {
            warn!("HTTP side still open after {:?}; leaving", self.grace);
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
