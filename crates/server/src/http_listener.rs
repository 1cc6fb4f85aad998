//! The HTTP listener: accepts TCP connections within the connection caps, completes the TLS
//! handshake when HTTPS is on, and serves each connection with hyper (HTTP/1.1 with upgrades
//! for the class-events WebSocket, and HTTP/2), with a deadline on the first bytes, the TLS
//! handshake and every request's headers, and a graceful shutdown.
//!
//! Rules:
//! - a client address holds at most `limits.connections_per_ip` connections, the server
//!   `limits.connections`; a connection over either cap gets a one-shot 503 and is closed;
//! - a connection that sends nothing, or does not finish its TLS handshake, within
//!   `limits.header_timeout_secs` is closed (hyper's own header timeout covers the headers
//!   of every request after that); on the HTTPS port, anything but a TLS handshake is closed;
//! - errors of `accept` (file descriptors exhausted) never stop the loop: it pauses briefly.

use crate::limits::{OpenCounts, OpenGuard};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// Connection caps and deadlines of the listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections from one address at once.
    pub per_ip: usize,
    /// Connections in total at once.
    pub total: usize,
    /// Deadline for the first bytes and for each request's headers.
    pub header_timeout: Duration,
    /// Peers that are reverse proxies: not capped per address (many clients share them).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// What the listener saw (tests and the admin view).
#[derive(Default)]
pub struct ListenerCounts {
    /// Open connections per client address.
    pub per_ip: Arc<OpenCounts<IpAddr>>,
    /// Open connections in total.
    pub total: Arc<OpenCounts<()>>,
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 111\r\n\r\n{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"too many connections; retry later\"}";

/// The HTTP listener of a server.
pub struct HttpListener {
    listener: TcpListener,
    limits: ConnectionLimits,
    counts: Arc<ListenerCounts>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl HttpListener {
    /// Wrap a bound listener; with `tls`, it speaks HTTPS only.
    pub fn new(listener: TcpListener, limits: ConnectionLimits, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        HttpListener { listener, limits, counts: Arc::default(), tls: tls.map(tokio_rustls::TlsAcceptor::from) }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Open connections (shared with the running loop).
    pub fn counts(&self) -> Arc<ListenerCounts> {
        self.counts.clone()
    }

    /// Serve `router` until `shutdown` resolves, then stop accepting and let open requests
    /// finish for at most `grace`.
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()> + Send, grace: Duration) {
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_accept_error: Option<Instant> = None;
        loop {
            let (stream, peer) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE/ENFILE/ECONNABORTED: not fatal; pause so a full table can drain.
                        if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            warn!("HTTP accept failed: {e} (pausing accepts briefly)");
                            last_accept_error = Some(Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let Some(permit) = self.admit(&stream, peer) else {
                // One write without waiting, then close: a refused client costs nothing more.
                let _ = stream.try_write(REFUSAL);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let timeout = self.limits.header_timeout;
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                serve_connection(stream, peer, router, timeout, tls, watcher).await;
            });
        }
        drop(self.listener);
        info!("HTTP: no longer accepting; waiting for open requests");
        if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
            info!("HTTP connections still open after {grace:?}; leaving");
        }
    }

    fn admit(&self, _stream: &TcpStream, peer: SocketAddr) -> Option<(OpenGuard<()>, Option<OpenGuard<IpAddr>>)> {
        let Some(total) = self.counts.total.try_open((), self.limits.total) else {
            debug!(%peer, "HTTP connection refused: server at its connection cap");
            return None;
        };
        let ip = peer.ip();
        if self.limits.trusted_proxies.iter().any(|n| n.contains(&ip)) {
            return Some((total, None));
        }
        match self.counts.per_ip.try_open(ip, self.limits.per_ip) {
            Some(g) => Some((total, Some(g))),
            None => {
                debug!(%peer, "HTTP connection refused: address at its connection cap");
                None
            }
        }
    }
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    // The first bytes must come within the header timeout (hyper's protocol detection would
    // otherwise wait for them forever).
    let mut first = [0u8; 1];
    match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return,
        Err(_) => {
            debug!(%peer, "HTTP connection sent nothing within {header_timeout:?}; closed");
            return;
        }
    }
    let Some(acceptor) = tls else {
        return serve_io(TokioIo::new(stream), peer, router, header_timeout, watcher).await;
    };
    if first[0] != TLS_HANDSHAKE {
        debug!(%peer, "not a TLS handshake on the HTTPS port; closed");
        return;
    }
    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_io(TokioIo::new(tls), peer, router, header_timeout, watcher).await,
        Ok(Err(e)) => debug!(%peer, "TLS handshake failed: {e}"),
        Err(_) => debug!(%peer, "TLS handshake not finished within {header_timeout:?}; closed"),
    }
}

async fn serve_io<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        // HTTP/2 names the host in the :authority pseudo-header: give handlers a Host header.
        if !req.headers().contains_key(axum::http::header::HOST)
            && let Some(v) = req.uri().authority().and_then(|a| axum::http::HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(axum::http::header::HOST, v);
        }
        req
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(header_timeout);
    let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        debug!(%peer, "HTTP connection ended: {e}");
    }
}

/// Raise this process's open-file limit to its hard maximum; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}
