//! Configuration: embedded defaults → file → `ARDOISE__SECTION__KEY` variables; strict and validated.

use ardoise_proto::ClassId;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The embedded default configuration (`config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown key / wrong type.
    #[error("{origin}: {message}")]
    Parse {
        /// Where the bad value came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Shutdown grace period, seconds.
    pub shutdown_grace_secs: u64,
    /// Networks whose clients read `/metrics` without a token (CIDR).
    pub metrics_allow: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (CIDR).
    pub trusted_proxies: Vec<String>,
    /// Certificate chain (PEM); with `tls_key`, HTTPS.
    pub tls_cert: String,
    /// Private key (PEM).
    pub tls_key: String,
    /// Serve HTTPS with a self-signed certificate kept in the data directory.
    pub tls_self_signed: bool,
    /// Names the server is reached by (certificate, links).
    pub public_names: Vec<String>,
    /// Plain listener that redirects to https; empty: none.
    pub redirect_listen: String,
}

impl HttpConfig {
    /// Whether the listener speaks HTTPS.
    pub fn tls(&self) -> bool {
        self.tls_self_signed || !self.tls_cert.is_empty()
    }

    /// The origin of the links the server prints and draws (`https://NAME:PORT`), from the
    /// first public name or the listen address; `port` is the port actually bound.
    pub fn public_origin(&self, port: u16) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        let host = match self.public_names.first() {
            Some(n) if n.parse::<std::net::Ipv6Addr>().is_ok() => format!("[{n}]"),
            Some(n) => n.clone(),
            None if self.listen.ip().is_unspecified() => "localhost".to_owned(),
            None => match self.listen.ip() {
                IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            },
        };
        let default = if self.tls() { 443 } else { 80 };
        if port == default { format!("{scheme}://{host}") } else { format!("{scheme}://{host}:{port}") }
    }

    /// The names of a self-signed certificate: localhost, the listen address, the public names.
    pub fn certificate_names(&self) -> Vec<String> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        if !self.listen.ip().is_unspecified() {
            names.push(self.listen.ip().to_string());
        }
        names.extend(self.public_names.iter().cloned());
        names.dedup();
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }
}

/// `[limits]`: limits on every door (see `docs/SECURITY.md`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// HTTP connections open at once from one address.
    pub connections_per_ip: usize,
    /// HTTP connections open at once in total.
    pub connections: usize,
    /// Seconds to send the first bytes and each request's headers.
    pub header_timeout_secs: u64,
    /// WHIP/WHEP offers per address per minute.
    pub offers_per_ip_per_minute: u32,
    /// Media sessions one token holds in a class (a new one closes the oldest).
    pub sessions_per_token: usize,
    /// Media sessions from one address at once.
    pub sessions_per_ip: usize,
    /// Media sessions on the server at once.
    pub sessions: usize,
    /// Connecting sessions in one class at once.
    pub pending_per_class: usize,
    /// Class look-ups and joins per address per minute.
    pub joins_per_ip_per_minute: u32,
    /// Joins into one class per minute.
    pub joins_per_class_per_minute: u32,
    /// ICE-TCP connections from one address at once.
    pub ice_tcp_per_ip: usize,
    /// Class-events WebSockets from one address at once.
    pub websockets_per_ip: usize,
    /// Class-events WebSockets one token's holder (a teacher, an admin) keeps in one class at
    /// once; a pupil keeps one per kind of client, a newer one replacing the older.
    pub websockets_per_token: usize,
    /// Seconds a class-events WebSocket lives without an application message.
    pub websocket_idle_secs: u64,
    /// Classes one token may create per hour.
    pub classes_per_token_per_hour: u32,
    /// Classes kept by the server that no logged-in teacher owns.
    pub classes: usize,
    /// Minutes an ended class stays listed.
    pub ended_class_retention_mins: u64,
    /// Hours an unused created class is kept.
    pub idle_class_hours: u64,
    /// Hours a join code works (0: until the class ends).
    pub join_code_hours: u64,
}

/// `[media]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    /// First worker's UDP address.
    pub udp: SocketAddr,
    /// ICE-TCP listener: an address, empty (the UDP address), or "off".
    pub tcp: String,
    /// Worker count; 0 = one per core.
    pub workers: usize,
    /// Advertised IP; empty = the bind IP.
    pub advertise: String,
    /// Forwarded layer: high, medium, low.
    pub layer: String,
    /// Minimum ms between keyframe requests per layer.
    pub keyframe_interval_ms: u64,
    /// A pupil connecting within this many ms of a keyframe gets the frames since it (0: off).
    pub keyframe_replay_ms: u64,
    /// The most KiB of one layer's frames kept for that.
    pub keyframe_replay_kib: usize,
    /// Peers per class.
    pub max_peers_per_class: usize,
    /// RTX history per video stream, packets.
    pub video_history: usize,
    /// UDP GSO for batched sends.
    pub gso: bool,
    /// Each media worker's UDP receive buffer, KiB (0: the system's default).
    pub receive_buffer_kib: usize,
    /// A class whose home room holds this many peers sends its next pupils to a fan-out room
    /// on a less loaded worker (0: never).
    pub fan_out_peers: usize,
    /// Hold of a partly received frame, ms.
    pub frame_hold_ms: u64,
    /// Packets written to pupils after which a batch is sent in slices (0: never).
    pub slice_packets: usize,
    /// Seconds a peer has to connect after its offer.
    pub connect_timeout_secs: u64,
    /// Per-pupil adaptation from bandwidth estimation (off: every pupil gets `layer`).
    pub adaptation: bool,
    /// Tests of robustness only: admins may make a media worker or a str0m call panic
    /// (`POST /api/admin/faults`). Never on a server with real classes.
    pub fault_injection: bool,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret; empty = from the data directory.
    pub secret: String,
    /// Token lifetime, seconds.
    pub token_ttl_secs: u64,
}

/// `[data]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// State directory.
    pub dir: PathBuf,
}

/// `[studio]`: settings of the classroom studio (mapped by the binary onto the studio crate).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudioSection {
    /// Server base URL.
    pub server: String,
    /// Extra CA certificates (PEM) for https; empty: none.
    pub ca: String,
    /// Pinned SHA-256 fingerprint of the server's certificate; empty: none.
    pub server_fingerprint: String,
    /// Class id.
    pub class: String,
    /// Teacher token; empty = sign locally.
    pub token: String,
    /// Camera source.
    pub camera: String,
    /// Document camera source.
    pub document: String,
    /// Screen source.
    pub screen: String,
    /// Microphone source.
    pub microphone: String,
    /// Initial layout.
    pub layout: String,
    /// vp8 or h264.
    pub codec: String,
    /// Simulcast layers.
    pub layers: Vec<String>,
    /// Simulcast layers for document and screen layouts.
    pub content_layers: Vec<String>,
    /// Opus kbit/s.
    pub audio_kbps: u32,
    /// webrtcdsp when available.
    pub echo_cancel: bool,
    /// Control API address; empty = off.
    pub control: String,
    /// Local IP.
    pub bind: IpAddr,
    /// Classroom speaker for pupils' voices: "auto" or "none".
    pub speaker: String,
    /// Follow the class events (remote layout switching).
    pub follow_class: bool,
    /// Burn a machine-readable capture time into the picture (glass-to-glass measurement).
    pub timecode: bool,
}

/// `[turn]`: a TURN server for networks that let only TLS (or TCP) out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    /// "", "coturn" or "external".
    pub mode: String,
    /// URLs handed to clients.
    pub urls: Vec<String>,
    /// TURN REST shared secret.
    pub secret: String,
    /// Credential lifetime, seconds.
    pub credential_ttl_secs: u64,
    /// coturn: UDP/TCP listener.
    pub listen: String,
    /// coturn: TLS listener; empty: none.
    pub tls_listen: String,
    /// coturn: relay port range "min-max".
    pub relay_ports: String,
    /// coturn: allocations per credential.
    pub user_quota: u32,
    /// coturn: allocations in total.
    pub total_quota: u32,
    /// coturn: the program.
    pub program: String,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; empty: SQLite in the data directory.
    pub url: String,
}

/// `[accounts]`: logins of teachers and admins.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// Hours a login lasts.
    pub session_hours: u64,
    /// Login attempts per address per minute.
    pub logins_per_ip_per_minute: u32,
    /// Login attempts per email per minute.
    pub logins_per_account_per_minute: u32,
}

/// `[retention]`: how long records are kept.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of attendance.
    pub attendance_days: u64,
    /// Days of audit log.
    pub audit_days: u64,
}

/// `[recording]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Where recordings are written; empty: `<data.dir>/recordings`. Every node of a cluster
    /// must see the same directory (a shared file system), or a class's recordings replay
    /// only on the node that made them.
    pub dir: String,
    /// Length of one segment file, seconds (a crash loses at most the one being written).
    pub segment_secs: u64,
    /// New recordings are shown to the class's pupils at once.
    pub publish: bool,
    /// Ends of the school terms (`YYYY-MM-DD`): a recording is kept until the first after it.
    pub term_ends: Vec<String>,
    /// Days a recording is kept when no term end comes after it.
    pub days_without_term: u64,
    /// How long a download link (offline viewing) works, seconds.
    pub download_link_secs: u64,
    /// A recording does not start with less free space than this on the recordings' disk,
    /// MiB (one that runs out while recording stops cleanly and keeps what it wrote).
    pub min_free_mb: u64,
}

impl RecordingConfig {
    fn term_end_ms(date: &str) -> Option<i64> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let day = time::Date::parse(date, format).ok()?;
        Some((day.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// When retention deletes a recording started at `started_ms`: at the end of its term
    /// (midnight UTC starting the first configured term end after it), else
    /// `days_without_term` later.
    pub fn expiry_ms(&self, started_ms: i64) -> i64 {
        self.term_ends
            .iter()
            .filter_map(|d| Self::term_end_ms(d))
            .filter(|&end| end > started_ms)
            .min()
            .unwrap_or(started_ms + self.days_without_term as i64 * 86_400_000)
    }
}

/// `[cluster]`: nodes sharing the database (see `config/default.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id; empty: a single node.
    pub node_id: String,
    /// The origin clients are sent to.
    pub public_url: String,
    /// The nodes' shared secret (signs their registrations).
    pub secret: String,
    /// Pupils this node takes.
    pub capacity: u32,
    /// Pupils a class counts for until its pupils come.
    pub class_weight: u32,
    /// Heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// Silence after which a node is dead, ms.
    pub dead_after_ms: u64,
    /// An owned class empty this long is released, seconds.
    pub release_idle_secs: u64,
}

impl ClusterConfig {
    /// Whether this node is one of a cluster.
    pub fn enabled(&self) -> bool {
        !self.node_id.is_empty()
    }
}

/// `[check]`: the pre-class check.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// The server publishes its test programme when someone checks.
    pub programme: bool,
    /// The programme stops this many seconds after the last check began.
    pub idle_secs: u64,
    /// Lifetime of one check's token, seconds.
    pub session_secs: u64,
}

/// `[[classes]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// Class id.
    pub id: String,
    /// Join code.
    pub code: String,
    /// Title.
    pub title: String,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP server.
    pub http: HttpConfig,
    /// Media workers and forwarding.
    pub media: MediaSection,
    /// Tokens.
    pub auth: AuthConfig,
    /// State directory.
    pub data: DataConfig,
    /// The classroom studio.
    pub studio: StudioSection,
    /// Limits on every door.
    pub limits: LimitsConfig,
    /// TURN.
    pub turn: TurnConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Logins.
    pub accounts: AccountsConfig,
    /// Retention of records.
    pub retention: RetentionConfig,
    /// Recordings of classes.
    pub recording: RecordingConfig,
    /// The pre-class check.
    pub check: CheckConfig,
    /// Nodes sharing the database.
    pub cluster: ClusterConfig,
    /// Declared classes.
    #[serde(default)]
    pub classes: Vec<ClassConfig>,
}

impl Config {
    /// Defaults, then `file` if given, then environment variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => Some((
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?,
            )),
            None => None,
        };
        Self::from_text(text.as_ref().map(|(origin, text)| (origin.as_str(), text.as_str())), env)
    }

    /// [`Config::load`] on a file's text already read: `file` is `(origin, text)`, the origin
    /// naming it in errors.
    pub fn from_text(
        file: Option<(&str, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = DEFAULT_TOML.parse().map_err(|e: toml::de::Error| ConfigError::Parse {
            origin: "embedded default".into(),
            message: e.to_string(),
        })?;
        // Declared classes are an optional list: the default declares none.
        table.entry("classes").or_insert_with(|| toml::Value::Array(Vec::new()));
        if let Some((origin, text)) = file {
            let over: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse { origin: origin.into(), message: e.to_string() })?;
            merge(&mut table, over, origin)?;
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("ARDOISE__") else { continue };
            let parts: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            let [section, key] = parts.as_slice() else {
                return Err(ConfigError::Parse {
                    origin: name.clone(),
                    message: "expected ARDOISE__SECTION__KEY".into(),
                });
            };
            let Some(toml::Value::Table(sec)) = table.get_mut(section.as_str()) else {
                return Err(ConfigError::Parse {
                    origin: name.clone(),
                    message: format!("unknown section '{section}'"),
                });
            };
            let Some(old) = sec.get(key.as_str()) else {
                return Err(ConfigError::Parse {
                    origin: name.clone(),
                    message: format!("unknown key '{section}.{key}'"),
                });
            };
            let new = if old.is_str() {
                toml::Value::String(value)
            } else {
                let parsed: toml::Table = format!("v = {value}").parse().map_err(|e: toml::de::Error| {
                    ConfigError::Parse { origin: name.clone(), message: e.to_string() }
                })?;
                parsed["v"].clone()
            };
            sec.insert(key.clone(), new);
        }
        let config: Config = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
            origin: "configuration".into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Check values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.http.max_body < 1024 {
            return bad("http.max_body must be at least 1024".into());
        }
        if self.media.layer.parse::<ardoise_sfu::LayerChoice>().is_err() {
            return bad(format!("media.layer '{}' is not high, medium or low", self.media.layer));
        }
        if self.advertise_ip()?.is_none() && self.media.udp.ip().is_unspecified() {
            return bad("media.udp binds every interface: set media.advertise to the address pupils reach".into());
        }
        self.tcp_address()?;
        if self.media.max_peers_per_class == 0 {
            return bad("media.max_peers_per_class must be at least 1".into());
        }
        if self.media.keyframe_interval_ms == 0 || self.media.keyframe_interval_ms > 10_000 {
            return bad("media.keyframe_interval_ms must be within 1..=10000".into());
        }
        if self.media.frame_hold_ms > 20 {
            return bad("media.frame_hold_ms must be at most 20".into());
        }
        if self.media.connect_timeout_secs == 0 {
            return bad("media.connect_timeout_secs must be positive".into());
        }
        if self.auth.token_ttl_secs == 0 {
            return bad("auth.token_ttl_secs must be positive".into());
        }
        if !self.auth.secret.is_empty() && self.auth.secret.len() < crate::auth::MIN_SECRET_BYTES {
            return bad(format!("auth.secret must be at least {} bytes", crate::auth::MIN_SECRET_BYTES));
        }
        for (key, list) in
            [("http.metrics_allow", &self.http.metrics_allow), ("http.trusted_proxies", &self.http.trusted_proxies)]
        {
            if let Err(e) = parse_networks(list) {
                return bad(format!("{key}: {e}"));
            }
        }
        if self.cluster.enabled() {
            let c = &self.cluster;
            if !self.database.url.starts_with("postgres://") && !self.database.url.starts_with("postgresql://") {
                return bad(
                    "cluster.node_id needs database.url = postgres://… (the nodes share it; SQLite is for one node)"
                        .into(),
                );
            }
            if self.auth.secret.is_empty() {
                return bad("cluster.node_id needs auth.secret, the same on every node (it signs tokens)".into());
            }
            if c.secret.len() < crate::auth::MIN_SECRET_BYTES || c.secret == self.auth.secret {
                return bad(format!(
                    "cluster.secret must be at least {} bytes, the same on every node, and not auth.secret (the database keeps that one)",
                    crate::auth::MIN_SECRET_BYTES
                ));
            }
            let host = c.public_url.split("://").nth(1).unwrap_or("");
            if !c.public_url.is_ascii()
                || c.public_url.chars().any(|ch| ch.is_ascii_uppercase())
                || host.contains('/')
                || (c.public_url.starts_with("https://") && host.ends_with(":443"))
                || (c.public_url.starts_with("http://") && host.ends_with(":80"))
            {
                return bad(format!(
                    "cluster.public_url '{}' must be an origin as browsers write it: lower case, ASCII (punycode), no path, no default port",
                    c.public_url
                ));
            }
            if !(c.public_url.starts_with("http://") || c.public_url.starts_with("https://"))
                || c.public_url.ends_with('/')
            {
                return bad(format!(
                    "cluster.public_url '{}' must be an origin like https://node1.example",
                    c.public_url
                ));
            }
            if c.node_id.len() > 64 || !c.node_id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return bad("cluster.node_id: at most 64 letters, digits, - and _".into());
            }
            if c.heartbeat_ms == 0 || c.dead_after_ms < 2 * c.heartbeat_ms {
                return bad(
                    "cluster.dead_after_ms must be at least twice cluster.heartbeat_ms (a positive period)".into()
                );
            }
            if c.capacity == 0 {
                return bad("cluster.capacity must be positive".into());
            }
        }
        if self.http.tls_cert.is_empty() != self.http.tls_key.is_empty() {
            return bad("http.tls_cert and http.tls_key go together".into());
        }
        if self.http.tls_self_signed && !self.http.tls_cert.is_empty() {
            return bad("http.tls_self_signed and http.tls_cert exclude each other".into());
        }
        if !self.http.redirect_listen.is_empty() {
            if !self.http.tls() {
                return bad("http.redirect_listen needs HTTPS (tls_cert or tls_self_signed)".into());
            }
            if self.http.redirect_listen.parse::<SocketAddr>().is_err() {
                return bad(format!("http.redirect_listen '{}' is not an address", self.http.redirect_listen));
            }
        }
        for n in &self.http.public_names {
            let ok =
                !n.is_empty() && n.len() <= 253 && n.chars().all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
            if !ok {
                return bad(format!("http.public_names: '{n}' is not a host name or address"));
            }
        }
        let t = &self.turn;
        match t.mode.as_str() {
            "" => {}
            "external" => {
                if t.urls.is_empty() || t.secret.len() < 16 {
                    return bad(
                        "turn.mode = \"external\" needs turn.urls and a turn.secret of at least 16 bytes".into()
                    );
                }
            }
            "coturn" => {
                if t.listen.parse::<SocketAddr>().is_err() {
                    return bad(format!("turn.listen '{}' is not an address", t.listen));
                }
                if !t.tls_listen.is_empty() && (t.tls_listen.parse::<SocketAddr>().is_err() || !self.http.tls()) {
                    return bad("turn.tls_listen needs an address and HTTPS (its certificate is the server's)".into());
                }
                if self.turn_relay_ports().is_none() {
                    return bad(format!("turn.relay_ports '{}' is not min-max", t.relay_ports));
                }
            }
            other => return bad(format!("turn.mode '{other}' is not \"\", \"coturn\" or \"external\"")),
        }
        if !t.mode.is_empty() && (t.credential_ttl_secs < 60 || t.user_quota == 0 || t.total_quota == 0) {
            return bad("turn.credential_ttl_secs must be at least 60, the quotas at least 1".into());
        }
        for u in &t.urls {
            if !(u.starts_with("turn:") || u.starts_with("turns:")) {
                return bad(format!("turn.urls: '{u}' is not a turn: or turns: URL"));
            }
        }
        if !self.database.url.is_empty()
            && !["sqlite:", "postgres://", "postgresql://"].iter().any(|p| self.database.url.starts_with(p))
        {
            return bad("database.url must be sqlite://FILE or postgres://…".into());
        }
        let a = &self.accounts;
        if a.session_hours == 0 || a.logins_per_ip_per_minute == 0 || a.logins_per_account_per_minute == 0 {
            return bad("accounts: session_hours and the login limits must be at least 1".into());
        }
        if self.retention.attendance_days == 0 || self.retention.audit_days == 0 {
            return bad("retention: keep records at least one day".into());
        }
        let r = &self.recording;
        if !(1..=3600).contains(&r.segment_secs) || r.days_without_term == 0 || r.download_link_secs == 0 {
            return bad(
                "recording: segment_secs must be within 1..=3600, days_without_term and download_link_secs at least 1"
                    .into(),
            );
        }
        if let Some(d) = r.term_ends.iter().find(|d| RecordingConfig::term_end_ms(d).is_none()) {
            return bad(format!("recording.term_ends: '{d}' is not a YYYY-MM-DD date"));
        }
        if self.check.idle_secs == 0 || !(10..=3600).contains(&self.check.session_secs) {
            return bad("check: idle_secs at least 1, session_secs within 10..=3600".into());
        }
        let l = &self.limits;
        let positive = [
            ("limits.connections_per_ip", l.connections_per_ip as u64),
            ("limits.connections", l.connections as u64),
            ("limits.header_timeout_secs", l.header_timeout_secs),
            ("limits.offers_per_ip_per_minute", l.offers_per_ip_per_minute as u64),
            ("limits.sessions_per_token", l.sessions_per_token as u64),
            ("limits.sessions_per_ip", l.sessions_per_ip as u64),
            ("limits.sessions", l.sessions as u64),
            ("limits.pending_per_class", l.pending_per_class as u64),
            ("limits.joins_per_ip_per_minute", l.joins_per_ip_per_minute as u64),
            ("limits.joins_per_class_per_minute", l.joins_per_class_per_minute as u64),
            ("limits.websockets_per_ip", l.websockets_per_ip as u64),
            ("limits.websockets_per_token", l.websockets_per_token as u64),
            ("limits.ice_tcp_per_ip", l.ice_tcp_per_ip as u64),
            ("limits.websocket_idle_secs", l.websocket_idle_secs),
            ("limits.classes_per_token_per_hour", l.classes_per_token_per_hour as u64),
            ("limits.classes", l.classes as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{key} must be at least 1"));
        }
        if l.connections_per_ip > l.connections {
            return bad("limits.connections_per_ip must not exceed limits.connections".into());
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.classes {
            if !ClassId::is_valid(&c.id) {
                return bad(format!("class id '{}' must be 1-64 of a-z, 0-9, '-', '_'", c.id));
            }
            if c.code.len() < 4
                || c.code.len() > 32
                || !c.code.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            {
                return bad(format!("class code '{}' must be 4-32 letters, digits or '-'", c.code));
            }
            if !seen.insert(c.id.clone()) {
                return bad(format!("class id '{}' declared twice", c.id));
            }
        }
        Ok(())
    }

    /// The database URL (`database.url`, or SQLite in the data directory).
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            ardoise_store::Store::default_url(&self.data.dir)
        } else {
            self.database.url.clone()
        }
    }

    /// The relay ports of `turn.relay_ports`.
    pub fn turn_relay_ports(&self) -> Option<(u16, u16)> {
        let (a, b) = self.turn.relay_ports.split_once('-')?;
        let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        (a > 0 && a <= b).then_some((a, b))
    }

    /// The ICE-TCP listener's address (`None`: off).
    pub fn tcp_address(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match self.media.tcp.as_str() {
            "off" => Ok(None),
            "" => Ok(Some(self.media.udp)),
            a => a
                .parse()
                .map(Some)
                .map_err(|_| ConfigError::Invalid(format!("media.tcp '{a}' is not an address, empty or \"off\""))),
        }
    }

    /// The advertised IP, if set.
    pub fn advertise_ip(&self) -> Result<Option<IpAddr>, ConfigError> {
        if self.media.advertise.is_empty() {
            return Ok(None);
        }
        self.media.advertise.parse().map(Some).map_err(|_| {
            ConfigError::Invalid(format!("media.advertise '{}' is not an IP address", self.media.advertise))
        })
    }

    /// Number of media workers to start.
    pub fn worker_count(&self) -> usize {
        if self.media.workers > 0 {
            self.media.workers
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        }
    }
}

/// Parse a list of networks in CIDR notation (a bare address is a /32 or /128).
pub fn parse_networks(list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("'{s}' is not a network (CIDR) or an address"))
        })
        .collect()
}

fn merge(base: &mut toml::Table, over: toml::Table, origin: &str) -> Result<(), ConfigError> {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, origin)?,
            (Some(slot), v) => *slot = v,
            (None, _) => {
                return Err(ConfigError::Parse { origin: origin.into(), message: format!("unknown key '{k}'") });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn defaults_load_and_declare_no_class() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.media.udp.port(), 50000);
        assert!(c.classes.is_empty(), "the demo class exists only under `ardoise demo`");
        assert_eq!(parse_networks(&c.http.metrics_allow).unwrap().len(), 2);
        assert!(!c.http.tls(), "make run needs no certificate");
        assert_eq!(c.http.public_origin(8080), "http://127.0.0.1:8080");
    }

    #[test]
    fn tls_settings_and_the_public_origin() {
        let c = Config::load(
            None,
            env(&[
                ("ARDOISE__HTTP__TLS_SELF_SIGNED", "true"),
                ("ARDOISE__HTTP__PUBLIC_NAMES", "[\"ardoise.example\"]"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http.public_origin(443), "https://ardoise.example");
        assert_eq!(c.http.public_origin(8443), "https://ardoise.example:8443");
        assert_eq!(c.http.certificate_names(), ["localhost", "127.0.0.1", "ardoise.example"]);
        assert!(Config::load(None, env(&[("ARDOISE__HTTP__TLS_CERT", "a.pem")])).is_err(), "cert without key");
        assert!(
            Config::load(None, env(&[("ARDOISE__HTTP__REDIRECT_LISTEN", "127.0.0.1:80")])).is_err(),
            "redirect without TLS"
        );
        assert!(Config::load(None, env(&[("ARDOISE__HTTP__PUBLIC_NAMES", "[\"a b\"]")])).is_err());
    }

    #[test]
    fn file_then_env_override() {
        let dir = std::env::temp_dir().join(format!("ardoise-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.toml");
        std::fs::write(&f, "[media]\nworkers = 3\nlayer = \"low\"\n").unwrap();
        let c =
            Config::load(Some(&f), env(&[("ARDOISE__MEDIA__WORKERS", "2"), ("ARDOISE__HTTP__LISTEN", "127.0.0.1:9")]))
                .unwrap();
        assert_eq!(c.media.workers, 2);
        assert_eq!(c.media.layer, "low");
        assert_eq!(c.http.listen.port(), 9);
    }

    #[test]
    fn unknown_and_invalid_are_errors() {
        let dir = std::env::temp_dir().join(format!("ardoise-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("b.toml");
        std::fs::write(&f, "[media]\nworker = 3\n").unwrap();
        assert!(matches!(Config::load(Some(&f), env(&[])), Err(ConfigError::Parse { .. })));
        assert!(Config::load(None, env(&[("ARDOISE__MEDIA__NOPE", "1")])).is_err());
        assert!(Config::load(None, env(&[("ARDOISE__MEDIA__LAYER", "ultra")])).is_err());
        assert!(Config::load(None, env(&[("ARDOISE__MEDIA__UDP", "0.0.0.0:5000")])).is_err());
        assert!(
            Config::load(
                None,
                env(&[("ARDOISE__MEDIA__UDP", "0.0.0.0:5000"), ("ARDOISE__MEDIA__ADVERTISE", "127.0.0.1")])
            )
            .is_ok()
        );
        assert!(Config::load(None, env(&[("ARDOISE__MEDIA__WORKERS", "two")])).is_err());
        assert!(Config::load(None, env(&[("ARDOISE__AUTH__SECRET", "short-secret-of-31-bytes-------")])).is_err());
        assert!(Config::load(None, env(&[("ARDOISE__AUTH__SECRET", "a-secret-of-exactly-32-bytes----")])).is_ok());
        assert!(Config::load(None, env(&[("ARDOISE__LIMITS__SESSIONS", "0")])).is_err());
        assert!(Config::load(None, env(&[("ARDOISE__HTTP__METRICS_ALLOW", "[\"10.0.0.0/33\"]")])).is_err());
    }
}
