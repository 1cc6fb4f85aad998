//! TURN, for networks that let only TLS (or TCP) out: the short-lived credentials of the TURN
//! REST scheme, the ICE servers handed to clients, and Debian's coturn run beside Ardoise.
//!
//! Rules:
//! - a credential is `expiry:id` with the password base64(HMAC-SHA1(secret, username)), what
//!   coturn's `use-auth-secret` checks; it lives `turn.credential_ttl_secs`;
//! - clients get the servers as `Link: <turns:…>; rel="ice-server"` headers on WHIP/WHEP 201
//!   answers (RFC 9725 §4.6), in the join answer, and from `GET /api/ice-servers`;
//! - with `turn.mode = "coturn"`, Ardoise writes coturn's configuration and runs it as its
//!   child: it relays only to the media addresses (every other peer address is denied, so a
//!   relay request toward the school's network gets 403), allocates UDP relays only, and
//!   holds each credential to `user_quota` allocations; it dies with Ardoise.

use crate::config::Config;
use ardoise_proto::IceServer;
use base64::Engine;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::{info, warn};

/// Why TURN could not start.
#[derive(Debug, Error)]
pub enum TurnError {
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// coturn did not start.
    #[error("coturn: {0}")]
    Coturn(String),
}

/// The TURN service of a server.
pub struct Turn {
    urls: Vec<String>,
    secret: Vec<u8>,
    ttl: u64,
    coturn: Option<Coturn>,
}

impl Turn {
    /// TURN as configured (`None` when off): credentials for an external server, or coturn
    /// started beside Ardoise, relaying only to `media_ips`. `tls` is the HTTPS certificate
    /// and key (coturn's TLS listener uses them).
    pub fn start(
        config: &Config,
        media_ips: &[IpAddr],
        tls: Option<&(PathBuf, PathBuf)>,
    ) -> Result<Option<Turn>, TurnError> {
        let t = &config.turn;
        let ttl = t.credential_ttl_secs;
        match t.mode.as_str() {
            "external" => {
                Ok(Some(Turn { urls: t.urls.clone(), secret: t.secret.as_bytes().to_vec(), ttl, coturn: None }))
            }
            "coturn" => {
                let secret =
                    if t.secret.is_empty() { secret_in(&config.data.dir)? } else { t.secret.as_bytes().to_vec() };
                let listen: SocketAddr = t.listen.parse().map_err(|_| TurnError::Coturn("turn.listen".into()))?;
                let tls_listen: Option<SocketAddr> = t.tls_listen.parse().ok();
                let urls = if t.urls.is_empty() {
                    let host = config.http.public_names.first().cloned().unwrap_or_else(|| listen.ip().to_string());
                    let mut u = vec![
                        format!("turn:{host}:{}?transport=udp", listen.port()),
                        format!("turn:{host}:{}?transport=tcp", listen.port()),
                    ];
                    if let Some(a) = tls_listen {
                        u.push(format!("turns:{host}:{}?transport=tcp", a.port()));
                    }
                    u
                } else {
                    t.urls.clone()
                };
                let coturn = Coturn::start(config, &secret, listen, tls_listen, media_ips, tls)?;
                Ok(Some(Turn { urls, secret, ttl, coturn: Some(coturn) }))
            }
            _ => Ok(None),
        }
    }

    /// A credential for holder `id`, valid `ttl` seconds from `now` (TURN REST scheme).
    pub fn credential(&self, id: &str, now: u64) -> (String, String) {
        credential(&self.secret, id, now + self.ttl)
    }

    /// The ICE servers for holder `id`, with a fresh credential.
    pub fn ice_servers(&self, id: &str) -> Vec<IceServer> {
        let (username, credential) = self.credential(id, crate::auth::unix_now());
        vec![IceServer { urls: self.urls.clone(), username, credential }]
    }

    /// `Link` header values for holder `id` (WHIP/WHEP 201 answers).
    pub fn link_headers(&self, id: &str) -> Vec<String> {
        let (username, credential) = self.credential(id, crate::auth::unix_now());
        self.urls
            .iter()
            .map(|u| {
                format!("<{u}>; rel=\"ice-server\"; username=\"{username}\"; credential=\"{credential}\"; credential-type=\"password\"")
            })
            .collect()
    }

    /// Whether coturn runs as this server's child.
    pub fn runs_coturn(&self) -> bool {
        self.coturn.is_some()
    }
}

/// The TURN REST credential of `id` expiring at `expiry`: (`expiry:id`, base64 HMAC-SHA1).
pub fn credential(secret: &[u8], id: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{id}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = aws_lc_rs::hmac::sign(&key, username.as_bytes());
    (username, base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
}

/// The shared secret kept in the data directory (made once, mode 0600).
fn secret_in(dir: &Path) -> Result<Vec<u8>, TurnError> {
    let path = dir.join("turn-secret");
    let err = |source| TurnError::Io { path: path.clone(), source };
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 32 => return Ok(s),
        Ok(_) | Err(_) => {}
    }
    std::fs::create_dir_all(dir).map_err(err)?;
    let secret: String = (0..48).map(|_| char::from(b'a' + rand::random_range(0..26u8))).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&path).and_then(|mut f| f.write_all(secret.as_bytes())).map_err(err)?;
    Ok(secret.into_bytes())
}

/// coturn running as this process's child.
struct Coturn {
    child: Child,
}

impl Coturn {
    fn start(
        config: &Config,
        secret: &[u8],
        listen: SocketAddr,
        tls_listen: Option<SocketAddr>,
        media_ips: &[IpAddr],
        tls: Option<&(PathBuf, PathBuf)>,
    ) -> Result<Coturn, TurnError> {
        let t = &config.turn;
        let dir = config.data.dir.join("turn");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TurnError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let (min, max) = config.turn_relay_ports().ok_or_else(|| TurnError::Coturn("turn.relay_ports".into()))?;
        let mut conf = format!(
            "# Written by Ardoise at each start: edit [turn] in Ardoise's configuration instead.\n\
             listening-ip={ip}\nlistening-port={port}\nrelay-ip={ip}\nmin-port={min}\nmax-port={max}\n\
             use-auth-secret\nstatic-auth-secret={secret}\nrealm=ardoise\nfingerprint\nno-cli\n\
             no-multicast-peers\nno-tcp-relay\nno-tlsv1\nno-tlsv1_1\n\
             user-quota={uq}\ntotal-quota={tq}\nmax-allocate-lifetime=3600\nstale-nonce=600\n\
             simple-log\nlog-file=stdout\npidfile={pid}\nno-stun-backward-compatibility\n\
             # Relay only to Ardoise's media addresses: everything else is denied (403).\n\
             denied-peer-ip=0.0.0.0-255.255.255.255\ndenied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n",
            ip = listen.ip(),
            port = listen.port(),
            secret = String::from_utf8_lossy(secret),
            uq = t.user_quota,
            tq = t.total_quota,
            pid = dir.join("turnserver.pid").display(),
        );
        for ip in media_ips {
            conf.push_str(&format!("allowed-peer-ip={ip}\n"));
        }
        if media_ips.iter().any(|ip| ip.is_loopback()) || listen.ip().is_loopback() {
            conf.push_str("allow-loopback-peers\n");
        }
        match (tls_listen, tls) {
            (Some(a), Some((cert, key))) => {
                conf.push_str(&format!(
                    "tls-listening-port={}\ncert={}\npkey={}\n",
                    a.port(),
                    cert.display(),
                    key.display()
                ));
                if a.ip() != listen.ip() {
                    conf.push_str(&format!("listening-ip={}\n", a.ip()));
                }
            }
            _ => conf.push_str("no-tls\nno-dtls\n"),
        }
        let conf_path = dir.join("turnserver.conf");
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600); // it holds the secret
            }
            opts.open(&conf_path).and_then(|mut f| f.write_all(conf.as_bytes())).map_err(io(&conf_path))?;
        }
        let log_path = dir.join("turnserver.log");
        let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
        let mut cmd = Command::new(&t.program);
        cmd.arg("-c").arg(&conf_path).stdin(Stdio::null()).stdout(log.try_clone().map_err(io(&log_path))?).stderr(log);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl in the child before exec, async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            TurnError::Coturn(format!("cannot run {} ({e}); install it: apt-get install coturn", t.program))
        })?;
        // Ready when it accepts TCP on its listener.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(TurnError::Coturn(format!("exited ({status}): {}", tail.join(" / "))));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(TurnError::Coturn(format!(
                    "no listener on {listen} after 10 s (see {})",
                    log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        info!(%listen, tls = ?tls_listen, relays_to = ?media_ips, "coturn started");
        Ok(Coturn { child })
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            warn!("stopping coturn: {e}");
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_are_what_coturn_checks() {
        // coturn's use-auth-secret: password = base64(HMAC-SHA1(secret, "expiry:id")).
        let (user, pass) = credential(b"0123456789abcdef0123456789abcdef", "test", 1796345375);
        assert_eq!(user, "1796345375:test");
        // Reference computed with `openssl dgst -sha1 -hmac … -binary | base64`.
        assert_eq!(pass, reference(b"0123456789abcdef0123456789abcdef", "1796345375:test"));
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&pass).unwrap().len(), 20);
    }

    fn reference(key: &[u8], msg: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '%s' '{msg}' | openssl dgst -sha1 -hmac '{}' -binary | base64",
                String::from_utf8_lossy(key)
            ))
            .output()
            .expect("openssl");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}
