//! Tokio driver of the sans-IO SFU.
//!
//! [`MediaServer`] starts one [`worker`] thread per core. Each worker owns one UDP socket
//! (its own port, advertised in the SDP answers it makes) and the rooms assigned to it, so
//! a datagram reaches the thread that owns its peer with no cross-thread hop. The HTTP side
//! talks to workers through typed [`Command`]s and hears back through [`MediaEvent`]s.

pub mod batch_sender;
pub mod command;
pub mod delay_histogram;
pub mod error;
pub mod ice_tcp;
pub mod media_server;
pub mod open_counts;
pub mod placement;
pub mod stun_route;
pub mod worker;

pub use batch_sender::BatchSender;
pub use command::{Command, Fault, Joined, MediaEvent, RecordingSink, WorkerSnapshot};
pub use delay_histogram::DelayHistogram;
pub use error::NetError;
pub use media_server::{MediaConfig, MediaServer};
