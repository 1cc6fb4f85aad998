//! An edge's copy of a class another node owns: a thread that pulls each simulcast layer and
//! the audio from the class's owner (the origin) over WHEP, and republishes them into this
//! node's media workers as one simulcast publication, which the edge's pupils play as they
//! would the teacher's (see [`crate::cascade`]).
//!
//! Rules:
//! - one WHEP session per layer (`?layer=low|medium|high`: fixed, the origin never adapts
//!   them), str0m to str0m over UDP; the voice comes from the first session only; one more
//!   (`?feed=floor`) for the pupil holding the floor, whose voice every pupil hears;
//! - the republications are made in this process (no HTTP: the class's WHIP door is the
//!   origin's): the class's (the teacher's simulcast publication) and the floor's;
//! - a packet is written out as soon as it is read, and the publication's peer is drained
//!   at once: the hop adds no wait of its own (measured in `benches/RESULTS.md`);
//! - a keyframe request of the edge's pupils goes back to the origin on that layer's
//!   session;
//! - the origin unreachable (no answer for [`ORIGIN_SILENCE`]), or gone: everything is
//!   closed and made again with the class's owner of the moment, after [`RETRY`]; the class
//!   ended there (410, 404): the relay ends;
//! - the relay's sessions are not pupils: their subjects start with
//!   [`crate::cascade::RELAY_PREFIX`], and nobody in the class sees them.

use crate::state::AppState;
use anyhow::{Context, Result, bail};
use ardoise_client::Peer;
use ardoise_client::whep::PlayOffer;
use ardoise_client::whip::PublicationOffer;
use ardoise_proto::{ClassId, ParticipantId, Role};
use ardoise_sfu::PublisherRole;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use str0m::format::Codec;
use str0m::media::{Mid, Pt};
use str0m::rtp::ExtensionValues;
use str0m::rtp::RtpPacket;
use str0m::{Event, IceConnectionState, Input};
use tracing::{debug, info, warn};

/// The layers pulled, lowest first: the publication's rid, the WHEP `layer`.
pub const LAYERS: [(&str, &str); 3] = [("l", "low"), ("m", "medium"), ("h", "high")];

/// No datagram from the origin for this long: it is gone (the relay connects again). More
/// than the ICE keepalives' period: a session with no media (nobody holds the floor, the
/// teacher not publishing yet) hears only those.
pub const ORIGIN_SILENCE: Duration = Duration::from_secs(8);

/// Wait between two attempts.
pub const RETRY: Duration = Duration::from_millis(500);

/// The relay sessions' claims say they end this long after they start (a session is closed
/// when its claims expire: the relay is made again before, at most once a day).
const SESSION_SECS: u64 = 24 * 3600;

/// One class's relay on this node.
pub struct EdgeRelay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Since when no pupil has played the class here (the relay stops after a while).
    pub idle_since: Option<Instant>,
}

impl EdgeRelay {
    /// Start relaying `class` from its owner into this node's media workers; `rt` runs the
    /// state's async calls.
    pub fn start(state: Weak<AppState>, class: ClassId, rt: tokio::runtime::Handle) -> EdgeRelay {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("edge-{class}"))
            .spawn(move || run(&state, &class, &rt, &stop2))
            .ok();
        EdgeRelay { stop, thread, idle_since: None }
    }

    /// Whether the relay has ended (stopped, the class ended at its owner, or its thread
    /// failed).
    pub fn ended(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stop (its sessions close within [`POLL_MAX`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for EdgeRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The longest a relay waits for input before it looks at its stop flag.
pub const POLL_MAX: Duration = Duration::from_millis(50);

/// How one attempt ended.
enum Ended {
    /// Asked to stop.
    Stopped,
    /// The class ended at its owner, or this node owns it now: the relay is over.
    Over,
}

fn run(state: &Weak<AppState>, class: &ClassId, rt: &tokio::runtime::Handle, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Some(s) = state.upgrade() else { return };
        match relay_once(&s, class, rt, stop) {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Over) => {
                info!(class = %class, "edge: the relay ends");
                return;
            }
            Err(e) => warn!(class = %class, "edge: relay from the origin interrupted: {e:#}"),
        }
        drop(s);
        std::thread::sleep(RETRY);
    }
}

/// A session pulled from the origin, and where its packets go.
struct Pull {
    peer: Peer,
    /// The republication its packets go to ([`CLASS`] or [`FLOOR`]).
    to: usize,
    /// The rid its video goes out on (the class's layers), none for the floor.
    rid: Option<&'static str>,
    /// Its audio is relayed (the class's voice comes on every layer's session: once is
    /// enough).
    audio: bool,
    video_mid: Mid,
    /// Its payload types and what each becomes in its republication: (in, out, audio).
    payload_types: Vec<(Pt, Pt, bool)>,
}

impl Pull {
    /// Learn, once, what each of its payload types becomes in `out` (the same codec, with
    /// the same parameters if it has them); retransmissions and unknown codecs are dropped.
    fn map_payload_types(&mut self, out: &Republication) {
        let theirs = out.peer.rtc.codec_config();
        self.payload_types = self
            .peer
            .rtc
            .codec_config()
            .params()
            .iter()
            .filter_map(|c| {
                let spec = c.spec();
                let same =
                    theirs.find(|o| o.spec() == spec).or_else(|| theirs.find(|o| o.spec().codec == spec.codec))?;
                let audio = spec.codec == Codec::Opus;
                (audio || spec.codec.is_video()).then_some((c.pt(), same.pt(), audio))
            })
            .collect();
    }
}

/// The class's republication (the teacher's simulcast layers and voice).
const CLASS: usize = 0;
/// The floor's republication (the pupil holding the floor: its voice, its camera if
/// granted).
const FLOOR: usize = 1;

/// A republication here.
struct Republication {
    peer: Peer,
    pid: ParticipantId,
    audio_mid: Mid,
    video_mid: Mid,
}

/// The class's owner (its id and origin), unless it is this node: `None` then.
fn origin(s: &AppState, class: &ClassId, rt: &tokio::runtime::Handle) -> Result<Option<(String, String)>> {
    let cluster = s.cluster.as_ref().context("not in a cluster")?;
    let placement =
        rt.block_on(s.store.placement(&class.0)).context("placement")?.context("the class is not placed")?;
    if placement.node_id == cluster.node_id() {
        return Ok(None);
    }
    let view = cluster.view();
    let node = view.alive(&placement.node_id).with_context(|| format!("its owner {} is dead", placement.node_id))?;
    Ok(Some((node.id.clone(), node.url.clone())))
}

fn relay_once(s: &Arc<AppState>, class: &ClassId, rt: &tokio::runtime::Handle, stop: &AtomicBool) -> Result<Ended> {
    let Some((origin_id, origin)) = origin(s, class, rt)? else { return Ok(Ended::Over) };
    let cluster = s.cluster.as_ref().context("not in a cluster")?;
    let ip = s.media.addresses().first().map(|a| a.ip()).context("no media address")?;
    // The relay's own sessions: no token (it would be a teacher's, and could leave the
    // node); the origin takes a pass signed with the cluster's key instead.
    let now = crate::auth::unix_now();
    let claims = ardoise_proto::Claims {
        sub: format!("{}{}-{:08x}", crate::cascade::RELAY_PREFIX, cluster.node_id(), rand::random::<u32>()),
        role: Role::Teacher,
        class: Some(class.clone()),
        name: None,
        exp: now + SESSION_SECS,
        iat: now,
        kv: s.tokens.revocations().version(Role::Teacher),
    };
    let pass = cluster.edge_pass(&origin_id, &class.0, &claims);
    let mut pulls: Vec<Pull> = Vec::new();
    let mut outs: Vec<Republication> = Vec::new();
    let result = (|| {
        for (i, (rid, layer)) in LAYERS.into_iter().enumerate() {
            let query = format!("layer={layer}&pass={pass}");
            pulls.push(pull(ip, &origin, class, &query, CLASS, Some(rid), i == 0)?);
        }
        pulls.push(pull(ip, &origin, class, &format!("feed=floor&pass={pass}"), FLOOR, None, true)?);
        let rids: Vec<&str> = LAYERS.iter().map(|(r, _)| *r).collect();
        outs.push(republish(s, class, ip, &claims, rt, PublisherRole::Class, &rids)?);
        outs.push(republish(s, class, ip, &claims, rt, PublisherRole::Floor, &[])?);
        for p in &mut pulls {
            p.map_payload_types(&outs[p.to]);
        }
        info!(class = %class, %origin, "edge: relaying the class from its owner");
        forward(&mut pulls, &mut outs, stop)
    })();
    // The origin's sessions end with their connections (no DELETE: a dead origin would hold
    // the next attempt up).
    rt.block_on(s.close_pids(outs.iter().map(|o| o.pid)));
    match result {
        Err(e) if is_gone(&e) => Ok(Ended::Over),
        other => other,
    }
}

/// Whether the origin said the class is no more.
fn is_gone(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("HTTP 410") || text.contains("HTTP 404")
}

fn pull(
    ip: std::net::IpAddr,
    origin: &str,
    class: &ClassId,
    query: &str,
    to: usize,
    rid: Option<&'static str>,
    audio: bool,
) -> Result<Pull> {
    let mut peer = Peer::with_config(ip, str0m::Rtc::builder().set_rtp_mode(true))?;
    let offer = PlayOffer::new(&mut peer)?;
    let url = format!("{}/whep/{class}?{query}", origin.trim_end_matches('/'));
    let session = ardoise_client::http::offer_to(&url, None, &offer.sdp)?;
    peer.accept_answer(offer.pending, &session.answer)?;
    peer.socket().set_nonblocking(true)?;
    Ok(Pull { peer, to, rid, audio, video_mid: offer.video_mid, payload_types: Vec::new() })
}

fn republish(
    s: &Arc<AppState>,
    class: &ClassId,
    ip: std::net::IpAddr,
    claims: &ardoise_proto::Claims,
    rt: &tokio::runtime::Handle,
    role: PublisherRole,
    rids: &[&str],
) -> Result<Republication> {
    let mut peer = Peer::with_config(ip, str0m::Rtc::builder().set_rtp_mode(true))?;
    let offer = PublicationOffer::new(&mut peer, rids)?;
    let (pid, answer) = rt
        .block_on(crate::media_endpoints::publish_here(s, claims, class, offer.sdp, role))
        .map_err(|p| anyhow::anyhow!("the republication was refused: {}", p.detail))?;
    peer.accept_answer(offer.pending, &answer)?;
    peer.socket().set_nonblocking(true)?;
    Ok(Republication { peer, pid, audio_mid: offer.audio_mid, video_mid: offer.video_mid })
}

/// Forward until stopped or the origin is lost.
fn forward(pulls: &mut [Pull], outs: &mut [Republication], stop: &AtomicBool) -> Result<Ended> {
    let mut events = Vec::new();
    let mut fds: Vec<libc::pollfd> = pulls
        .iter()
        .map(|p| p.peer.socket().as_raw_fd())
        .chain(outs.iter().map(|o| o.peer.socket().as_raw_fd()))
        .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let due = pulls
            .iter()
            .map(|p| p.peer.next_timeout())
            .chain(outs.iter().map(|o| o.peer.next_timeout()))
            .min()
            .unwrap_or(now);
        let wait = due.saturating_duration_since(now).min(POLL_MAX);
        for f in &mut fds {
            f.revents = 0;
        }
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait.as_millis() as libc::c_int) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        let now = Instant::now();
        for (pull, fd) in pulls.iter_mut().zip(&fds) {
            // Only the sockets with datagrams, and the sessions whose timeout is due.
            if fd.revents == 0 && pull.peer.next_timeout() > now {
                continue;
            }
            pull.peer.process(&mut events)?;
            for e in events.drain(..) {
                match e {
                    Event::RtpPacket(p) => write(&mut outs[pull.to], pull, p),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        bail!("the origin's session ({:?}) disconnected", pull.rid)
                    }
                    _ => {}
                }
            }
        }
        if let Some(quiet) = pulls.iter().find(|p| p.peer.last_input().elapsed() > ORIGIN_SILENCE) {
            bail!("nothing from the origin for {ORIGIN_SILENCE:?} ({:?})", quiet.rid);
        }
        // Sends what was written, and reads the edge's feedback.
        let mut asked = Vec::new();
        for (to, out) in outs.iter_mut().enumerate() {
            out.peer.process(&mut events)?;
            for e in events.drain(..) {
                match e {
                    Event::KeyframeRequest(req) => {
                        let rid = req.rid.map(|r| r.to_string());
                        let Some(i) = pulls.iter().position(|p| p.to == to && p.rid.map(String::from) == rid) else {
                            continue;
                        };
                        let p = &mut pulls[i];
                        if let Some(rx) = p.peer.rtc.direct_api().stream_rx_by_mid(p.video_mid, None) {
                            rx.request_keyframe(req.kind);
                            debug!(rid = ?p.rid, "edge: keyframe asked of the origin");
                            asked.push(i);
                        }
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        bail!("a republication here disconnected")
                    }
                    _ => {}
                }
            }
        }
        // The keyframe requests go now, not at the sessions' next timeout.
        for i in asked {
            pulls[i].peer.rtc.handle_input(Input::Timeout(Instant::now()))?;
            pulls[i].peer.process(&mut events)?;
            events.clear();
        }
    }
    Ok(Ended::Stopped)
}

/// Write a packet pulled on `from` into its republication (video on its rid), then send it.
fn write(out: &mut Republication, from: &Pull, p: RtpPacket) {
    let Some(&(_, pt, audio)) = from.payload_types.iter().find(|(pt, _, _)| *pt == p.header.payload_type) else {
        return;
    };
    if audio && !from.audio {
        return;
    }
    let (mid, rid) = if audio { (out.audio_mid, None) } else { (out.video_mid, from.rid.map(Into::into)) };
    // What the teacher's packet carried that the pupils use; the session's own extensions
    // (mid, rid, transport-wide numbers) are this publication's.
    let theirs = &p.header.ext_vals;
    let ext = ExtensionValues {
        abs_capture_time: theirs.abs_capture_time,
        audio_level: theirs.audio_level,
        voice_activity: theirs.voice_activity,
        video_orientation: theirs.video_orientation,
        ..Default::default()
    };
    let mut api = out.peer.rtc.direct_api();
    let Some(tx) = api.stream_tx_by_mid(mid, rid) else { return };
    tx.write_rtp(
        str0m::rtp::RtpWrite::new(pt, p.seq_no, p.header.timestamp, Instant::now(), p.payload)
            .marker(p.header.marker)
            .nackable(!audio)
            .ext_vals(ext),
    );
}
