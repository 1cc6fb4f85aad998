//! `ardoise`: the command-line entry point.
//!
//! - `ardoise serve` runs the relay (HTTP API, WHIP/WHEP, media workers);
//! - `ardoise token` prints a token the running server accepts;
//! - `ardoise revoke` refuses the tokens of a subject, or every token of a role, from now on;
//! - `ardoise loadgen` runs synthetic teachers and pupils against a server;
//! - `ardoise studio` captures, mixes, encodes and publishes the class;
//! - `ardoise demo` runs a server and a studio on test sources together;
//! - `ardoise db`, `ardoise school`, `ardoise user`, `ardoise keys` manage the database, the first
//!   accounts and the token signing keys.

mod accounts_cli;
mod check_programme;
mod node_cli;

use anyhow::{Context, Result};
use ardoise_proto::{ClassId, Role};
use ardoise_server::Config;
use ardoise_server::auth::{TokenSigner, parse_ttl};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "ardoise", version, about = "Hybrid-teaching streaming engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Configuration file (overrides the embedded defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP listen address (overrides http.listen).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// First media worker's UDP address (overrides media.udp).
    #[arg(long)]
    udp: Option<SocketAddr>,
    /// HTTPS certificate chain, PEM (with --tls-key; overrides http.tls_cert).
    #[arg(long, requires = "tls_key", conflicts_with = "tls")]
    tls_cert: Option<PathBuf>,
    /// HTTPS private key, PEM (overrides http.tls_key).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// `self-signed`: serve HTTPS with a certificate made and kept in the data directory.
    #[arg(long, value_parser = ["self-signed"])]
    tls: Option<String>,
    /// With HTTPS: a plain HTTP listener that only redirects to https (overrides http.redirect_listen).
    #[arg(long)]
    http_redirect: Option<SocketAddr>,
    /// ICE-TCP listener address, or `off` (overrides media.tcp; default: the UDP address).
    #[arg(long)]
    tcp: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay server.
    Serve(ServeArgs),
    /// Print a signed token for scripts and tests.
    Token {
        /// teacher, pupil or admin.
        #[arg(long)]
        role: Role,
        /// Class the token is for (not needed for admin).
        #[arg(long)]
        class: Option<String>,
        /// Lifetime, e.g. 90s, 15m, 2h.
        #[arg(long, default_value = "2h")]
        ttl: String,
        /// Configuration file (for the secret and data directory).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the page link (token in the URL fragment) instead of the bare token.
        #[arg(long)]
        link: bool,
    },
    /// Refuse tokens from now on: every token of one holder (`--subject`, the `sub` claim),
    /// or every token of a role issued so far (`--role`). A running server with the same
    /// data directory applies it within seconds and closes their connections.
    Revoke {
        /// The token subject to refuse.
        #[arg(long, conflicts_with = "role", required_unless_present = "role")]
        subject: Option<String>,
        /// Refuse every token of this role issued so far (after a leak).
        #[arg(long)]
        role: Option<Role>,
        /// Configuration file (for the data directory and token lifetime).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Synthetic teacher and pupils against a server.
    Loadgen(ardoise_loadgen::cli::LoadgenArgs),
    /// Run the classroom studio: capture, mix, encode and publish to a server.
    Studio(StudioArgs),
    /// The server and a studio on test sources publishing to the `demo` class, in one process.
    Demo(ServeArgs),
    /// The database: `migrate`, `check`.
    #[command(subcommand)]
    Db(accounts_cli::DbCommand),
    /// Schools: `add`, `list`.
    #[command(subcommand)]
    School(accounts_cli::SchoolCommand),
    /// Users: `add` (an admin or a teacher; the password on standard input).
    #[command(subcommand)]
    User(accounts_cli::UserCommand),
    /// Token signing keys: `rotate`.
    #[command(subcommand)]
    Keys(accounts_cli::KeysCommand),
    /// The nodes of a cluster: `list`, `drain`, `undrain`.
    #[command(subcommand)]
    Node(node_cli::NodeCommand),
}

#[derive(Args, Clone)]
struct StudioArgs {
    /// Configuration file (its [studio] section).
    #[arg(long)]
    config: Option<PathBuf>,
    /// List cameras and microphones, then exit.
    #[arg(long)]
    list_devices: bool,
    /// Server base URL (overrides studio.server).
    #[arg(long)]
    server: Option<String>,
    /// Class id (overrides studio.class).
    #[arg(long)]
    class: Option<String>,
    /// Teacher token (overrides studio.token).
    #[arg(long)]
    token: Option<String>,
    /// Over https, also trust the CA certificates of this PEM file (overrides studio.ca).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Over https, trust the server certificate with this SHA-256 fingerprint (overrides
    /// studio.server_fingerprint; `ardoise serve` prints it).
    #[arg(long)]
    server_fingerprint: Option<String>,
}

/// Map the `[studio]` section onto the studio's settings; sign a teacher token if none is set.
fn studio_config(config: &Config) -> Result<ardoise_studio::StudioConfig> {
    let s = &config.studio;
    let src = |what: &str, v: &str| -> Result<ardoise_studio::SourceSpec> {
        v.parse().map_err(|e| anyhow::anyhow!("studio.{what}: {e}"))
    };
    let layers = s
        .layers
        .iter()
        .map(|l| l.parse().map_err(|e| anyhow::anyhow!("studio.layers: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let content_layers = s
        .content_layers
        .iter()
        .map(|l| l.parse().map_err(|e| anyhow::anyhow!("studio.content_layers: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let token = if s.token.is_empty() {
        base_signer(config)?.issue(Role::Teacher, Some(ClassId(s.class.clone())), None, Some(86_400))
    } else {
        s.token.clone()
    };
    let control = if s.control.is_empty() {
        None
    } else {
        let a: SocketAddr = s.control.parse().context("studio.control")?;
        anyhow::ensure!(a.ip().is_loopback(), "studio.control must be a loopback address");
        Some(a)
    };
    Ok(ardoise_studio::StudioConfig {
        server: s.server.trim_end_matches('/').to_owned(),
        class: s.class.clone(),
        token,
        camera: src("camera", &s.camera)?,
        document: src("document", &s.document)?,
        screen: src("screen", &s.screen)?,
        microphone: src("microphone", &s.microphone)?,
        layout: s.layout.parse().map_err(|e: String| anyhow::anyhow!("studio.layout: {e}"))?,
        codec: s.codec.parse().map_err(|e: String| anyhow::anyhow!("studio.codec: {e}"))?,
        layers,
        content_layers,
        audio_kbps: s.audio_kbps,
        echo_cancel: s.echo_cancel,
        bind: s.bind,
        control,
        speaker: s.speaker.parse().map_err(|e: String| anyhow::anyhow!("studio.speaker: {e}"))?,
        follow_class: s.follow_class,
        timecode: s.timecode,
    })
}

/// Serve the studio's control API until `stop` resolves.
async fn serve_control(studio: &ardoise_studio::Studio, addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>> {
    let control = ardoise_studio::control::Control::of(studio);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("studio control on {addr}"))?;
    println!("ardoise: studio control on http://{}/state (POST /layout)", listener.local_addr()?);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, ardoise_studio::control::router(control)).await;
    }))
}

async fn studio(args: StudioArgs) -> Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars()).context("configuration")?;
    if let Some(s) = args.server {
        config.studio.server = s;
    }
    if let Some(c) = args.class {
        config.studio.class = c;
    }
    if let Some(t) = args.token {
        config.studio.token = t;
    }
    if let Some(c) = args.ca {
        config.studio.ca = c.display().to_string();
    }
    if let Some(f) = args.server_fingerprint {
        config.studio.server_fingerprint = f;
    }
    set_trust(&config.studio.ca, &config.studio.server_fingerprint)?;
    let sc = studio_config(&config)?;
    let control = sc.control;
    let mut studio = tokio::task::spawn_blocking(move || ardoise_studio::Studio::start(sc)).await??;
    let ctl = match control {
        Some(a) => Some(serve_control(&studio, a).await?),
        None => None,
    };
    shutdown_signal().await;
    if let Some(c) = ctl {
        c.abort();
    }
    tokio::task::spawn_blocking(move || studio.stop()).await?;
    Ok(())
}

/// What the studio's (and the load generator's) HTTPS trusts: the system's authorities,
/// plus a CA file and a pinned fingerprint when given.
fn set_trust(ca: &str, fingerprint: &str) -> Result<()> {
    let mut trust = ardoise_client::trust::Trust::default();
    if !ca.is_empty() {
        trust = trust.with_ca_file(ca.as_ref())?;
    }
    if !fingerprint.is_empty() {
        trust = trust.with_fingerprint(fingerprint)?;
    }
    ardoise_client::trust::set(trust);
    Ok(())
}

/// The token signer of this machine's server: its secret and its revocation list.
/// A signer with the bare secret of the configuration (no database): for a studio on
/// another machine that shares the secret. Its tokens verify until keys rotate twice.
fn base_signer(config: &Config) -> Result<TokenSigner> {
    let secret = TokenSigner::secret_from(&config.auth.secret, &config.data.dir)?;
    let revocations = ardoise_server::revocations::Revocations::open(&config.data.dir)
        .with_context(|| format!("revocation list in {}", config.data.dir.display()))?;
    Ok(TokenSigner::new(&secret, config.auth.token_ttl_secs)?.with_revocations(std::sync::Arc::new(revocations)))
}

/// The signer of the server's database (its current key signs, with its `kid`).
async fn signer(config: &Config) -> Result<TokenSigner> {
    let secret = TokenSigner::secret_from(&config.auth.secret, &config.data.dir)?;
    let revocations = ardoise_server::revocations::Revocations::open(&config.data.dir)
        .with_context(|| format!("revocation list in {}", config.data.dir.display()))?;
    let store =
        ardoise_store::Store::connect(&config.database_url()).await.map_err(|e| anyhow::anyhow!("database: {e}"))?;
    let s = TokenSigner::from_store(&secret, config.auth.token_ttl_secs, &store).await?;
    store.close().await;
    Ok(s.with_revocations(std::sync::Arc::new(revocations)))
}

async fn demo(args: ServeArgs) -> Result<()> {
    let mut config = load_config(&args)?;
    // The demo class exists only here. On loopback its code is `demo`; reachable from
    // elsewhere, it gets a random code like any class.
    if !config.classes.iter().any(|c| c.id == "demo") {
        let code = if config.http.listen.ip().is_loopback() {
            "demo".to_owned()
        } else {
            (0..8).map(|_| char::from(b"abcdefghjkmnpqrstuvwxyz23456789"[rand_index(31)])).collect()
        };
        config.classes.push(ardoise_server::config::ClassConfig {
            id: "demo".into(),
            code,
            title: "Classe de démonstration".into(),
        });
    }
    let demo_code = config.classes.iter().find(|c| c.id == "demo").map(|c| c.code.clone()).unwrap_or_default();
    let server = ardoise_server::Server::start(&config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = server.http_addr();
    let scheme = if server.tls().is_some() { "https" } else { "http" };
    config.studio.server = format!("{scheme}://{http}");
    // The studio beside the server trusts the server's own certificate.
    set_trust("", server.tls().map(|t| t.fingerprint.as_str()).unwrap_or(""))?;
    check_programme(&config, &server)?;
    print_listening(&server);
    config.studio.class = "demo".into();
    let tokens = server.state().tokens.clone();
    config.studio.token = tokens.issue(Role::Teacher, Some(ClassId("demo".into())), None, Some(86_400));
    let sc = studio_config(&config)?;
    let control = sc.control;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_origin = server.origin().to_owned();
    let serving = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));
    let mut studio = tokio::task::spawn_blocking(move || ardoise_studio::Studio::start(sc)).await??;
    let ctl = match control {
        Some(a) => Some(serve_control(&studio, a).await?),
        None => None,
    };
    let admin = tokens.issue(Role::Admin, None, None, None);
    let teacher = tokens.issue(Role::Teacher, Some(ClassId("demo".into())), None, None);
    let base = server_origin;
    println!("ardoise: demo class is live (join code {demo_code})");
    println!("  pupil:   {}", page_link(&base, Role::Pupil, Some(&demo_code), ""));
    println!("  teacher: {}", page_link(&base, Role::Teacher, Some("demo"), &teacher));
    println!("  admin:   {}", page_link(&base, Role::Admin, None, &admin));
    println!("  login:   {base}/login (teachers and admins; make the first with `ardoise user add`)");
    shutdown_signal().await;
    if let Some(c) = ctl {
        c.abort();
    }
    tokio::task::spawn_blocking(move || studio.stop()).await?;
    let _ = stop_tx.send(());
    serving.await?.map_err(|e| anyhow::anyhow!("{e}"))
}

/// A random index below `n` (the OS's generator, through std's hasher keys).
fn rand_index(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
    );
    (h.finish() % n as u64) as usize
}

/// The page a role opens: pupils join by the class link (its join code); teachers and
/// admins carry their token in the URL fragment, which browsers never send to the server.
fn page_link(base: &str, role: Role, code: Option<&str>, token: &str) -> String {
    match role {
        Role::Pupil => format!("{base}/c/{}", code.unwrap_or("")),
        Role::Teacher => format!("{base}/teacher#token={token}"),
        Role::Admin => format!("{base}/admin#token={token}"),
    }
}

fn load_config(args: &ServeArgs) -> Result<Config> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars()).context("configuration")?;
    if let Some(h) = args.http {
        config.http.listen = h;
    }
    if let Some(u) = args.udp {
        config.media.udp = u;
    }
    if let (Some(c), Some(k)) = (&args.tls_cert, &args.tls_key) {
        config.http.tls_cert = c.display().to_string();
        config.http.tls_key = k.display().to_string();
        config.http.tls_self_signed = false;
    }
    if args.tls.is_some() {
        config.http.tls_self_signed = true;
        config.http.tls_cert.clear();
        config.http.tls_key.clear();
    }
    if let Some(r) = args.http_redirect {
        config.http.redirect_listen = r.to_string();
    }
    if let Some(t) = &args.tcp {
        config.media.tcp = t.clone();
    }
    config.validate().context("configuration")?;
    Ok(config)
}

/// Print how to reach the server: its address, and the certificate clients must trust.
fn print_listening(server: &ardoise_server::Server) {
    let scheme = if server.tls().is_some() { "https" } else { "http" };
    let media: Vec<String> = server.media_addrs().iter().map(|a| a.to_string()).collect();
    println!("ardoise: listening on {scheme}://{} (media UDP {})", server.http_addr(), media.join(", "));
    if let Some(t) = server.tcp_addr() {
        println!("ardoise: ICE-TCP on {t} (passive candidates, for networks that drop UDP)");
    }
    if let Some(t) = server.tls() {
        let kind = if t.self_signed { "self-signed certificate" } else { "certificate" };
        println!("ardoise: TLS {kind}, SHA-256 fingerprint {}", t.fingerprint);
        println!("ardoise: TLS SPKI hash (Chromium --ignore-certificate-errors-spki-list): {}", t.spki_hash);
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ARDOISE_LOG").unwrap_or_else(|_| EnvFilter::new("info,str0m=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let config = load_config(&args)?;
    let server = ardoise_server::Server::start(&config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // The check's test programme publishes to this server: it trusts the server's own
    // certificate.
    set_trust("", server.tls().map(|t| t.fingerprint.as_str()).unwrap_or(""))?;
    check_programme(&config, &server)?;
    print_listening(&server);
    server.run(shutdown_signal()).await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// The pre-class check's test programme, published on demand (`[check] programme`).
fn check_programme(config: &Config, server: &ardoise_server::Server) -> Result<()> {
    if config.check.programme {
        let idle = std::time::Duration::from_secs(config.check.idle_secs);
        let p = check_programme::CheckStudio::start(server, &config.studio.codec, idle)?;
        server.state().check.set_programme(std::sync::Arc::new(p));
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(serve(args)),
        Command::Token { role, class, ttl, config, link } => {
            let config = Config::load(config.as_deref(), std::env::vars()).context("configuration")?;
            let ttl = parse_ttl(&ttl).map_err(anyhow::Error::msg)?;
            let class = match (role, class) {
                (Role::Admin, c) => c.map(ClassId),
                (_, Some(c)) if ClassId::is_valid(&c) => Some(ClassId(c)),
                (_, Some(c)) => anyhow::bail!("invalid class id '{c}'"),
                (r, None) => anyhow::bail!("a {r} token needs --class"),
            };
            let signer = runtime()?.block_on(signer(&config))?;
            let token = signer.issue(role, class.clone(), None, Some(ttl));
            if link {
                anyhow::ensure!(role != Role::Pupil, "pupils join with the class's code: no pupil link to print");
                let base = config.http.public_origin(config.http.listen.port());
                println!("{}", page_link(&base, role, None, &token));
            } else {
                println!("{token}");
            }
            Ok(())
        }
        Command::Revoke { subject, role, config } => {
            let config = Config::load(config.as_deref(), std::env::vars()).context("configuration")?;
            let list = ardoise_server::revocations::Revocations::open(&config.data.dir)
                .with_context(|| format!("revocation list in {}", config.data.dir.display()))?;
            let now = ardoise_server::auth::unix_now();
            match (subject, role) {
                (Some(sub), _) => {
                    // A token can live at most a day (the studio's); keep the refusal that long.
                    list.revoke_subject(&sub, now + 86_400.max(config.auth.token_ttl_secs), now)?;
                    println!("revoked every token of subject {sub}");
                }
                (None, Some(r)) => {
                    let v = list.bump_role(r, now)?;
                    println!(
                        "revoked every {r} token issued so far (key version now {v}); issue new ones with `ardoise token`"
                    );
                }
                (None, None) => anyhow::bail!("give --subject or --role"),
            }
            Ok(())
        }
        Command::Loadgen(args) => ardoise_loadgen::cli::run(args),
        Command::Studio(args) if args.list_devices => {
            let devices = ardoise_studio::devices::list()?;
            if devices.is_empty() {
                println!("no camera or microphone found");
            }
            for d in devices {
                println!("{:<14} {}{}", d.class, d.name, d.path.map(|p| format!("  ({p})")).unwrap_or_default());
            }
            Ok(())
        }
        Command::Studio(args) => runtime()?.block_on(studio(args)),
        Command::Demo(args) => runtime()?.block_on(demo(args)),
        Command::Db(cmd) => runtime()?.block_on(accounts_cli::db(cmd)),
        Command::School(cmd) => runtime()?.block_on(accounts_cli::school(cmd)),
        Command::User(cmd) => runtime()?.block_on(accounts_cli::user(cmd)),
        Command::Keys(cmd) => runtime()?.block_on(accounts_cli::keys(cmd)),
        Command::Node(cmd) => runtime()?.block_on(node_cli::node(cmd)),
    }
}
