//! JSON bodies of the HTTP API.

use crate::{ClassId, JoinCode, Role};
use serde::{Deserialize, Serialize};

/// Lifecycle of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassState {
    /// Created; nobody publishes yet.
    Open,
    /// The teacher publishes.
    Live,
    /// Ended by the teacher or an admin; no one may join.
    Ended,
}

/// What a class allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassPolicies {
    /// Pupils wait until the teacher admits them.
    pub waiting_room: bool,
    /// Chat and floor lock while the teacher is away.
    pub autolock: bool,
    /// Pupils may write to the teacher privately.
    pub private_messages: bool,
    /// The class is recorded from the moment it goes live (the teacher may also record any
    /// class by hand).
    pub recording: bool,
}

/// One weekly slot of a timetable: ISO weekday (1 = Monday), start minute of the day, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// 1 (Monday) to 7 (Sunday).
    pub weekday: i64,
    /// Minutes after midnight, 0 to 1439.
    pub start_min: i64,
    /// Length in minutes, 1 to 600.
    pub minutes: i64,
}

impl Slot {
    /// Whether the slot makes sense.
    pub fn is_valid(&self) -> bool {
        (1..=7).contains(&self.weekday) && (0..1440).contains(&self.start_min) && (1..=600).contains(&self.minutes)
    }
}

/// `POST /api/classes` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClass {
    /// Wanted id; generated when absent.
    #[serde(default)]
    pub id: Option<ClassId>,
    /// Human title.
    #[serde(default)]
    pub title: Option<String>,
    /// The school (a logged-in teacher's; its first school when absent).
    #[serde(default)]
    pub school: Option<i64>,
    /// Policies (waiting room, …).
    #[serde(default)]
    pub policies: Option<ClassPolicies>,
    /// Weekly timetable.
    #[serde(default)]
    pub slots: Option<Vec<Slot>>,
}

/// A class as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// Class id (used in WHIP/WHEP URLs).
    pub id: ClassId,
    /// Join code pupils type.
    pub code: JoinCode,
    /// Human title.
    pub title: String,
    /// Current state.
    pub state: ClassState,
    /// When the join code stops working, seconds since the Unix epoch (`None`: never).
    #[serde(default)]
    pub code_expires_at: Option<u64>,
}

/// A class as anyone holding its join code may see it (`GET /api/classes/{code}`): never the
/// code itself, the class id or anything about its participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicClass {
    /// Human title.
    pub title: String,
    /// Current state.
    pub state: ClassState,
    /// The class is being recorded now: a pupil is told so before joining.
    #[serde(default)]
    pub recording: bool,
}

/// `POST /api/classes/{id}/code` answer: the class's new join code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatedCode {
    /// The new code (the old one stops working at once).
    pub code: JoinCode,
    /// When the new code expires, seconds since the Unix epoch (`None`: never).
    pub code_expires_at: Option<u64>,
}

/// `POST /api/classes/{code}/join` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The pupil's first name (1 to 32 characters).
    pub name: String,
}

/// `POST /api/classes/{code}/join` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinResponse {
    /// Pupil token for WHEP and the class events.
    pub token: String,
    /// The class joined.
    pub class: ClassId,
    /// The role granted (always pupil here).
    pub role: Role,
    /// TURN servers with short-lived credentials, for networks that drop UDP and TCP to the
    /// media ports (empty when the server has none).
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// The class has a waiting room: the pupil waits for the teacher before it sees the class.
    #[serde(default)]
    pub waiting_room: bool,
    /// The origins of the cluster's live nodes (none on a single server): a page whose
    /// server dies comes back through one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// A TURN (or STUN) server as `RTCPeerConnection` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN REST username (`expiry:id`).
    pub username: String,
    /// Its password (base64 HMAC-SHA1 of the username with the shared secret).
    pub credential: String,
}

/// `GET /api/ice-servers` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServers {
    /// The servers, with credentials valid for this token's holder.
    pub ice_servers: Vec<IceServer>,
}

/// How a participant's media travels: UDP (the default), ICE-TCP (a network that drops UDP),
/// or through a TURN relay (a network that lets only TLS on 443 out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Direct UDP.
    Udp,
    /// ICE-TCP to the server's TCP port.
    Tcp,
    /// Through a TURN relay.
    Relay,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Relay => "relay",
        })
    }
}

/// One participant in the admin view.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParticipantStats {
    /// Participant id within its worker.
    pub id: u64,
    /// `publisher` or `subscriber`.
    pub kind: String,
    /// Whether ICE/DTLS is connected.
    pub connected: bool,
    /// RTP packets received from this peer.
    pub packets_in: u64,
    /// RTP packets sent to this peer.
    pub packets_out: u64,
    /// Bytes received from this peer.
    pub bytes_in: u64,
    /// Bytes sent to this peer.
    pub bytes_out: u64,
    /// NACKs received from this peer.
    pub nacks_in: u64,
    /// Keyframe requests received from this peer.
    pub keyframe_requests_in: u64,
    /// Round-trip time from RTCP, milliseconds.
    pub rtt_ms: Option<f32>,
    /// Fraction of packets lost (0..1) from RTCP.
    pub loss: Option<f32>,
    /// Subscribers: the video forwarded now (`high`, `medium`, `low`, `audio`), if chosen.
    #[serde(default)]
    pub layer: Option<String>,
    /// Adaptive subscribers: the send-side bandwidth estimate, bit/s.
    #[serde(default)]
    pub estimate_bps: Option<u64>,
    /// Adaptive subscribers: layer changes so far.
    #[serde(default)]
    pub switches: u64,
    /// How its media travels, once it is known.
    #[serde(default)]
    pub transport: Option<Transport>,
}

/// One class in the admin view.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminClass {
    /// Class metadata.
    #[serde(flatten)]
    pub info: ClassInfo,
    /// Media worker hosting the class, if it has media.
    pub worker: Option<usize>,
    /// New pupils are refused.
    #[serde(default)]
    pub locked: bool,
    /// People connected to the class events (pages, studio).
    #[serde(default)]
    pub members: Vec<crate::Member>,
    /// Live media sessions.
    pub participants: Vec<ParticipantStats>,
    /// The class's opaque label in `/metrics`.
    #[serde(default)]
    pub metrics_label: String,
    /// Pre-class checks made with the class's join link, by verdict (anonymous).
    #[serde(default)]
    pub checks: CheckCounts,
}

/// A check's verdict, as the page decides it from what it measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckVerdict {
    /// "Tout est prêt": the top layer came, with little loss.
    Ready,
    /// "Qualité réduite": a lower layer fits the link.
    Reduced,
    /// "Son seulement conseillé": not even the lowest layer fits.
    AudioOnly,
    /// "Le réseau bloque la vidéo": no connection, or no picture.
    Blocked,
}

/// Anonymous counts of checks for one class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCounts {
    /// Checks made with this class's join link.
    pub checked: u64,
    /// How many of them ended "Tout est prêt" (and so on for each verdict).
    pub ready: u64,
    /// "Qualité réduite".
    pub reduced: u64,
    /// "Son seulement conseillé".
    pub audio_only: u64,
    /// "Le réseau bloque la vidéo".
    pub blocked: u64,
}

impl CheckCounts {
    /// Count one check that ended on `v`.
    pub fn count(&mut self, v: CheckVerdict) {
        self.checked += 1;
        match v {
            CheckVerdict::Ready => self.ready += 1,
            CheckVerdict::Reduced => self.reduced += 1,
            CheckVerdict::AudioOnly => self.audio_only += 1,
            CheckVerdict::Blocked => self.blocked += 1,
        }
    }
}

/// The server process as a whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Memory the allocator has handed out and not had back (glibc's `mallinfo2`: in use in
    /// every arena, plus mmapped blocks), bytes: what the process holds, without what the
    /// allocator keeps for reuse. None where unknown.
    #[serde(default)]
    pub heap_in_use_bytes: Option<u64>,
    /// CPU time used by the whole process, microseconds.
    pub cpu_us: u64,
    /// Time since start, milliseconds.
    pub uptime_ms: u64,
}

/// Stats of one media worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Worker index.
    pub index: usize,
    /// UDP port of the worker.
    pub port: u16,
    /// Rooms hosted.
    pub rooms: usize,
    /// Participants hosted.
    pub participants: usize,
    /// CPU time used by the worker thread, microseconds.
    pub cpu_us: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams dropped unread: from an unknown address and not STUN for a known session.
    #[serde(default)]
    pub datagrams_unknown: u64,
    /// Of those, dropped before parsing: their source sent too many unknown datagrams this
    /// second.
    #[serde(default)]
    pub datagrams_unknown_limited: u64,
    /// Times this worker panicked and was replaced by a fresh one.
    #[serde(default)]
    pub restarts: u64,
    /// Commands from the HTTP side waiting in this worker's queue (at the snapshot).
    #[serde(default)]
    pub commands_queued: u64,
    /// ICE-TCP input (frames read by connection tasks) waiting for this worker.
    #[serde(default)]
    pub tcp_input_queued: u64,
    /// Recorded packets dropped because a recorder did not keep up.
    #[serde(default)]
    pub recording_dropped: u64,
    /// Items (packets, shapes) this worker's home rooms handed to fan-out rooms on other
    /// workers.
    #[serde(default)]
    pub fed_out: u64,
    /// Items this worker's fan-out rooms took from their home rooms.
    #[serde(default)]
    pub fed_in: u64,
    /// ICE-TCP connections handed to this worker so far.
    #[serde(default)]
    pub tcp_connections: u64,
    /// ICE-TCP connections open now.
    #[serde(default)]
    pub tcp_open: usize,
    /// Frames received over ICE-TCP.
    #[serde(default)]
    pub tcp_frames_in: u64,
    /// Packets dropped toward ICE-TCP clients (a full queue: a client that does not keep up).
    #[serde(default)]
    pub tcp_dropped: u64,
    /// Send system calls (several datagrams each when batched).
    pub send_syscalls: u64,
    /// Times the worker woke up (datagrams, commands, timers).
    pub wakeups: u64,
    /// Of which for timers.
    pub timer_wakeups: u64,
    /// Batches sent in slices before their end (large fan-outs).
    pub slices: u64,
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTP packets forwarded to subscribers.
    pub rtp_forwarded: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// NACKs received from subscribers.
    pub nacks: u64,
    /// Keyframe requests sent to publishers.
    pub plis_sent: u64,
    /// Pupils sent the frames since a recent keyframe when they connected.
    #[serde(default)]
    pub keyframe_replays: u64,
    /// Peers that panicked and were removed.
    pub peer_panics: u64,
    /// Receive → send delay of forwarded media since start, microseconds: p50.
    #[serde(default)]
    pub forward_delay_p50_us: Option<u64>,
    /// Same, p99.
    #[serde(default)]
    pub forward_delay_p99_us: Option<u64>,
}

/// `GET /api/admin/classes` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminOverview {
    /// Every class.
    pub classes: Vec<AdminClass>,
    /// Every media worker.
    pub workers: Vec<WorkerStats>,
    /// The server process.
    #[serde(default)]
    pub process: ProcessStats,
}
