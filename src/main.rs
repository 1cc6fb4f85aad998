//! `ardoise`: the command-line entry point.
//!
//! - `ardoise serve` runs the relay (HTTP API, WHIP/WHEP, media workers);
//! - `ardoise token` prints a token the running server accepts;
//! - `ardoise loadgen` runs synthetic teachers and pupils against a server.

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
    },
    /// Synthetic teacher and pupils against a server.
    Loadgen(ardoise_loadgen::cli::LoadgenArgs),
}

fn load_config(args: &ServeArgs) -> Result<Config> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars()).context("configuration")?;
    if let Some(h) = args.http {
        config.http.listen = h;
    }
    if let Some(u) = args.udp {
        config.media.udp = u;
    }
    config.validate().context("configuration")?;
    Ok(config)
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
    let http = server.http_addr();
    let media: Vec<String> = server.media_addrs().iter().map(|a| a.to_string()).collect();
    println!("ardoise: listening on http://{http} (media UDP {})", media.join(", "));
    println!("ardoise: demo class: http://{http}/watch?class=demo");
    server.run(shutdown_signal()).await.map_err(|e| anyhow::anyhow!("{e}"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(serve(args))
        }
        Command::Token { role, class, ttl, config } => {
            let config = Config::load(config.as_deref(), std::env::vars()).context("configuration")?;
            let ttl = parse_ttl(&ttl).map_err(anyhow::Error::msg)?;
            let class = match (role, class) {
                (Role::Admin, c) => c.map(ClassId),
                (_, Some(c)) if ClassId::is_valid(&c) => Some(ClassId(c)),
                (_, Some(c)) => anyhow::bail!("invalid class id '{c}'"),
                (r, None) => anyhow::bail!("a {r} token needs --class"),
            };
            let secret = TokenSigner::secret_from(&config.auth.secret, &config.data.dir)?;
            let signer = TokenSigner::new(&secret, config.auth.token_ttl_secs)?;
            println!("{}", signer.issue(role, class, None, Some(ttl)));
            Ok(())
        }
        Command::Loadgen(args) => ardoise_loadgen::cli::run(args),
    }
}
