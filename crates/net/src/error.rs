//! Errors of the media driver.

use thiserror::Error;

/// Why a media operation failed.
#[derive(Debug, Error)]
pub enum NetError {
    /// The SFU refused it.
    #[error(transparent)]
    Sfu(#[from] ardoise_sfu::SfuError),
    /// No room for this class on the worker.
    #[error("no media session for this class")]
    UnknownClass,
    /// A socket could not be opened.
    #[error("cannot bind media socket {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The worker is gone (shutting down).
    #[error("media worker unavailable")]
    WorkerGone,
}
