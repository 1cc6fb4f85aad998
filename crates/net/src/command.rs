//! Messages between the HTTP side and the media workers.

use crate::NetError;
use ardoise_proto::{ClassId, ParticipantId, ParticipantStats, WorkerStats};
use str0m::Candidate;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

/// A negotiated participant.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Its id (also the WHIP/WHEP resource id).
    pub participant: ParticipantId,
    /// The SDP answer.
    pub answer: String,
}

/// What a worker knows, for the admin API and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct WorkerSnapshot {
    /// Worker counters.
    pub worker: WorkerStats,
    /// Per class: live flag and participants.
    pub rooms: Vec<(ClassId, bool, Vec<ParticipantStats>)>,
    /// Receive → send delay of the media packets forwarded so far.
    pub forward_delay: crate::DelayHistogram,
}

/// A request to a media worker.
#[derive(Debug)]
pub enum Command {
    /// Negotiate a publisher (WHIP).
    Publish {
        /// Class.
        class: ClassId,
        /// Participant id allocated by the caller.
        participant: ParticipantId,
        /// SDP offer.
        offer: String,
        /// The class's media, or a pupil holding the floor.
        role: ardoise_sfu::PublisherRole,
        /// Its video may be relayed (a floor pupil only with the camera granted).
        camera: bool,
        /// Answer or error.
        reply: oneshot::Sender<Result<Joined, NetError>>,
    },
    /// Negotiate a subscriber (WHEP).
    Play {
        /// Class.
        class: ClassId,
        /// Participant id allocated by the caller.
        participant: ParticipantId,
        /// SDP offer.
        offer: String,
        /// Adaptive (with the pupil's cap) or a fixed layer (`None`: the configured default).
        choice: Option<ardoise_sfu::VideoChoice>,
        /// Which media its m-lines carry.
        feed: ardoise_sfu::Feed,
        /// Answer or error.
        reply: oneshot::Sender<Result<Joined, NetError>>,
    },
    /// Trickle ICE or ICE restart (PATCH).
    Patch {
        /// Class.
        class: ClassId,
        /// Participant.
        participant: ParticipantId,
        /// New remote ICE credentials (ICE restart).
        remote_creds: Option<(String, String)>,
        /// Remote candidates.
        candidates: Vec<Candidate>,
        /// New local credentials after a restart.
        reply: oneshot::Sender<Result<Option<(String, String)>, NetError>>,
    },
    /// Remove a participant (DELETE).
    Leave {
        /// Class.
        class: ClassId,
        /// Participant.
        participant: ParticipantId,
        /// Done.
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Stop (or resume) relaying a floor publisher's voice.
    Mute {
        /// Class.
        class: ClassId,
        /// The floor publisher.
        participant: ParticipantId,
        /// Muted or not.
        muted: bool,
        /// Done.
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// End a class: everyone is disconnected.
    EndClass {
        /// Class.
        class: ClassId,
    },
    /// An ICE-TCP connection whose first STUN request names a peer of this worker.
    TcpConnection(Box<crate::ice_tcp::NewConnection>),
    /// Start (a sink) or stop (`None`) copying the class's programme for a recording. The
    /// worker sends each wake-up's packets as one batch and never waits: a full sink drops
    /// the batch (counted in `WorkerStats::recording_dropped`).
    Record {
        /// Class.
        class: ClassId,
        /// Where the packets go.
        sink: Option<RecordingSink>,
        /// Done (`UnknownClass` when the class has no media on this worker).
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Also hand what `class`'s home room (on this worker) routes to the fan-out room on
    /// worker `to` ([`ardoise_sfu::fed`]); idempotent, and the home hands its current shape
    /// at once. Sent by the fan-out worker when its room of the class is made (or on
    /// [`Command::FedFrom`] while it has one).
    FanOutTo {
        /// Class.
        class: ClassId,
        /// The fan-out worker's index.
        to: usize,
        /// Its command queue.
        commands: UnboundedSender<Command>,
    },
    /// Stop feeding the fan-out room on worker `to`: it closed (its last pupil left). Sent by
    /// that worker, after any [`Command::FanOutTo`] of its: the home sees them in order.
    FanOutEnded {
        /// Class.
        class: ClassId,
        /// The fan-out worker's index.
        to: usize,
    },
    /// This worker's room of `class` is a fan-out room fed by the class's home worker
    /// (idempotent; sent before each pupil placed here, and again when the class's publisher
    /// comes, so that a home worker replaced after a panic is wired again).
    FedFrom {
        /// Class.
        class: ClassId,
        /// The home worker's command queue (subscriptions and keyframe requests go there).
        home: UnboundedSender<Command>,
        /// This worker's own command queue (the home sends the packets there).
        own: UnboundedSender<Command>,
    },
    /// What the class's home room handed over (one packet, as it routes it; or its shape).
    Fed {
        /// Class.
        class: ClassId,
        /// Shapes and packets.
        items: Vec<ardoise_sfu::Fed>,
    },
    /// Keyframes a fan-out room's pupils need of the home room's publishers.
    FedKeyframes {
        /// Class.
        class: ClassId,
        /// The streams.
        requests: Vec<ardoise_sfu::FedKeyframeRequest>,
    },
    /// Fault injection (`media.fault_injection`, tests only).
    InjectFault {
        /// What to break.
        fault: Fault,
        /// Done (sent before a worker panic).
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Report counters.
    Snapshot {
        /// The snapshot.
        reply: oneshot::Sender<WorkerSnapshot>,
    },
    /// Close every peer and stop.
    Shutdown {
        /// Done.
        reply: oneshot::Sender<()>,
    },
}

impl Command {
    /// What a class's home room hands its fan-out rooms, per packet (and their keyframe
    /// requests back): frequent, and never a change of peers.
    pub fn is_fed(&self) -> bool {
        matches!(self, Command::Fed { .. } | Command::FedKeyframes { .. })
    }
}

/// Where a recorded class's packets go: a bounded queue toward the recorder.
pub type RecordingSink = std::sync::mpsc::SyncSender<Vec<ardoise_sfu::TappedPacket>>;

/// A fault to inject into a media worker (tests of robustness only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The worker's loop panics outside any str0m call: the worker is replaced.
    WorkerPanic,
    /// A str0m call for this peer panics: the room removes that peer only.
    Str0mPanic {
        /// Class.
        class: ClassId,
        /// The peer.
        participant: ParticipantId,
    },
}

/// Something a worker tells the HTTP side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A participant connected (ICE + DTLS).
    Connected(ClassId, ParticipantId),
    /// A participant left or was removed.
    Left(ClassId, ParticipantId),
    /// A class started or stopped being published.
    Live(ClassId, bool),
    /// A pupil's video stopped for lack of bandwidth (`true`) or came back (`false`).
    AudioOnly(ClassId, ParticipantId, bool),
    /// How a participant's media travels (known, or changed).
    Transport(ClassId, ParticipantId, ardoise_proto::Transport),
    /// A worker panicked and was replaced: these classes lost their media sessions (each
    /// peer was reported [`MediaEvent::Left`] first); their clients should reconnect now.
    WorkerRestarted {
        /// The worker's index.
        worker: usize,
        /// The classes whose home it was (a class's fan-out room there: [`MediaEvent::FanOutLost`]).
        classes: Vec<ClassId>,
    },
    /// A worker that held a fan-out room of the class panicked and was replaced: these
    /// pupils lost their sessions (reported before their [`MediaEvent::Left`]) and should
    /// reconnect now; the class's home, its teacher and its other pupils are untouched.
    FanOutLost(ClassId, Vec<ParticipantId>),
}
