//! Janus VideoRoom as the server: its HTTP API (blocking), so that `ardoise loadgen --janus URL`
//! runs the same class — one str0m teacher, N str0m pupils — against Janus 1.1 as against
//! Ardoise, for side-by-side benchmarks (`benches/janus.sh`).
//!
//! The sequence (a real exchange is in `shared/janus/trace.txt`):
//!
//! 1. a room session: `create` session, `attach` `janus.plugin.videoroom`, `create` a room
//!    (VP8 + Opus, one publisher, the caller's bitrate);
//! 2. the teacher: its own session and handle, `join` as publisher (event `joined` gives its feed
//!    id), then `configure` with the str0m offer; Janus answers in an event on the long poll;
//! 3. each pupil: its own session and handle, `join` as subscriber to the feed; Janus offers in an
//!    event (`attached`); the pupil answers with str0m and sends `start` with the answer.
//!
//! Asynchronous requests are acknowledged at once (`ack`) and answered on the session's long poll
//! (`GET /janus/{session}?maxev=10`), matched by transaction. Janus drops a session after 60 s
//! without a request: a background thread sends `keepalive` to every live session every 25 s.
//! Sessions are not long-polled once negotiated; the few events Janus queues for them
//! (`webrtcup`, `media`) stay queued until the session is destroyed.

use crate::publisher::Signalling;
use crate::{Publisher, Subscriber};
use anyhow::{Context, Result, bail};
use ardoise_client::Peer;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer};

const PLUGIN: &str = "janus.plugin.videoroom";
/// How long a negotiation step may wait for its event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Keepalive period (Janus's session timeout is 60 s in the benchmark config).
const KEEPALIVE: Duration = Duration::from_secs(25);

/// A Janus server reached over its HTTP API, shared by the threads of a run.
pub struct Janus {
    base: String,
    agent: ureq::Agent,
    next_transaction: AtomicU64,
    /// Sessions to keep alive.
    live: Mutex<Vec<u64>>,
}

impl Janus {
    /// A client for the API at `base`, e.g. `http://127.0.0.1:18088/janus`.
    pub fn new(base: &str) -> Arc<Janus> {
        // A long poll is answered within 30 s (with a `keepalive` when nothing happened).
        let agent =
            ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout(Duration::from_secs(40)).build();
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Arc::new(Janus {
            base: base.trim_end_matches('/').to_owned(),
            agent,
            next_transaction: AtomicU64::new(seed ^ ((std::process::id() as u64) << 40)),
            live: Mutex::new(Vec::new()),
        })
    }

    fn transaction(&self) -> String {
        format!("ld{:x}", self.next_transaction.fetch_add(1, Ordering::Relaxed))
    }

    /// POST a Janus API message to `path` (below the base); adds the transaction. Returns the
    /// reply, failing on `"janus": "error"`.
    fn post(&self, path: &str, mut body: Value, transaction: &str) -> Result<Value> {
        body["transaction"] = json!(transaction);
        let url = format!("{}{path}", self.base);
        let text = match self.agent.post(&url).set("Content-Type", "application/json").send_string(&body.to_string()) {
            Ok(r) => r.into_string()?,
            Err(ureq::Error::Status(code, r)) => {
                bail!("POST {url}: HTTP {code}: {}", r.into_string().unwrap_or_default())
            }
            Err(e) => return Err(e).with_context(|| format!("POST {url}")),
        };
        let reply: Value = serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON: {text}"))?;
        if reply["janus"] == "error" {
            bail!("POST {url} ({}): Janus error {}", body["janus"], reply["error"]);
        }
        Ok(reply)
    }

    /// Create a session (kept alive until [`Janus::destroy`]).
    pub fn create_session(&self) -> Result<u64> {
        let reply = self.post("", json!({ "janus": "create" }), &self.transaction())?;
        let id = reply["data"]["id"].as_u64().context("no session id")?;
        self.live.lock().unwrap().push(id);
        Ok(id)
    }

    /// Attach the VideoRoom plugin to `session`; returns the handle id.
    pub fn attach(&self, session: u64) -> Result<u64> {
        let reply =
            self.post(&format!("/{session}"), json!({ "janus": "attach", "plugin": PLUGIN }), &self.transaction())?;
        reply["data"]["id"].as_u64().context("no handle id")
    }

    /// Send a plugin request (with an optional JSEP). Synchronous requests (`create`, `destroy`)
    /// return their plugin data; asynchronous ones return `None` after the `ack`, and their
    /// event is fetched with [`Janus::event`] by the returned transaction.
    fn request(&self, session: u64, handle: u64, body: Value, jsep: Option<Value>) -> Result<(String, Option<Value>)> {
        let mut message = json!({ "janus": "message", "body": body });
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        let transaction = self.transaction();
        let name = body_name(&message);
        let reply = self.post(&format!("/{session}/{handle}"), message, &transaction)?;
        match reply["janus"].as_str() {
            Some("ack") => Ok((transaction, None)),
            Some("success") => {
                let data = reply["plugindata"]["data"].clone();
                plugin_error(&data)?;
                Ok((transaction, Some(data)))
            }
            _ => bail!("unexpected reply to {name}: {reply}"),
        }
    }

    /// Long-poll `session` until the event of `transaction` arrives; returns the whole event
    /// (`plugindata`, `jsep`). Other events are dropped.
    fn event(&self, session: u64, transaction: &str) -> Result<Value> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        let url = format!("{}/{session}?maxev=10", self.base);
        while Instant::now() < deadline {
            let text = match self.agent.get(&url).call() {
                Ok(r) => r.into_string()?,
                Err(ureq::Error::Status(code, r)) => {
                    bail!("GET {url}: HTTP {code}: {}", r.into_string().unwrap_or_default())
                }
                Err(e) => return Err(e).with_context(|| format!("GET {url}")),
            };
            let reply: Value = serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON: {text}"))?;
            // An array with maxev; a single object (`keepalive`) when the poll timed out.
            let events = match reply {
                Value::Array(events) => events,
                one => vec![one],
            };
            for e in events {
                if e["janus"] == "event" && e["transaction"] == transaction {
                    plugin_error(&e["plugindata"]["data"])?;
                    return Ok(e);
                }
                if e["janus"] == "error" && e["transaction"] == transaction {
                    bail!("Janus error {}", e["error"]);
                }
            }
        }
        bail!("no answer from Janus to transaction {transaction} within {EVENT_TIMEOUT:?}")
    }

    /// Destroy `session` (its handles and PeerConnections go with it). Returns 200 on success.
    pub fn destroy(&self, session: u64) -> Result<u16> {
        self.live.lock().unwrap().retain(|s| *s != session);
        self.post(&format!("/{session}"), json!({ "janus": "destroy" }), &self.transaction())?;
        Ok(200)
    }

    /// Keep every live session alive until `stop`: one `keepalive` per session every 25 s.
    pub fn keep_alive(self: &Arc<Self>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        let janus = self.clone();
        std::thread::spawn(move || {
            let mut next = Instant::now() + KEEPALIVE;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if Instant::now() < next {
                    continue;
                }
                next += KEEPALIVE;
                let sessions = janus.live.lock().unwrap().clone();
                for s in sessions {
                    if let Err(e) = janus.post(&format!("/{s}"), json!({ "janus": "keepalive" }), &janus.transaction())
                    {
                        tracing::warn!("janus keepalive {s}: {e}");
                    }
                }
            }
        })
    }
}

fn body_name(message: &Value) -> String {
    message["body"]["request"].as_str().unwrap_or("?").to_owned()
}

/// Fail on a VideoRoom error (`"videoroom": "event", "error_code": …`).
fn plugin_error(data: &Value) -> Result<()> {
    if let Some(code) = data.get("error_code") {
        bail!("VideoRoom error {code}: {}", data["error"].as_str().unwrap_or(""));
    }
    Ok(())
}

/// A VideoRoom room created for the run.
pub struct Room {
    janus: Arc<Janus>,
    session: u64,
    handle: u64,
    /// Room id.
    pub id: u64,
}

impl Room {
    /// Create a temporary room: VP8 + Opus, one publisher, `bitrate` (bit/s) for the REMB Janus
    /// sends its publisher, a keyframe request every 10 s (as in Janus's sample config).
    pub fn create(janus: &Arc<Janus>, bitrate: u64) -> Result<Room> {
        let session = janus.create_session()?;
        let handle = janus.attach(session)?;
        let id = 1_000_000
            + SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64 % 1_000_000_000);
        let body = json!({
            "request": "create", "room": id, "permanent": false, "description": "ardoise loadgen",
            "publishers": 1, "bitrate": bitrate, "fir_freq": 10, "audiocodec": "opus", "videocodec": "vp8",
        });
        let (_, data) = janus.request(session, handle, body, None)?;
        if data.as_ref().and_then(|d| d["videoroom"].as_str()) != Some("created") {
            bail!("room not created: {data:?}");
        }
        Ok(Room { janus: janus.clone(), session, handle, id })
    }

    /// Destroy the room and its session.
    pub fn destroy(self) -> Result<()> {
        self.janus.request(self.session, self.handle, json!({ "request": "destroy", "room": self.id }), None)?;
        self.janus.destroy(self.session)?;
        Ok(())
    }
}

/// Publish the synthetic teacher in `room`: audio + VP8 (three rid layers with `simulcast`).
/// Returns the teacher (its `close` destroys its Janus session) and its feed id.
pub fn publish(janus: &Arc<Janus>, room: u64, bind: IpAddr, simulcast: bool) -> Result<(Publisher, u64)> {
    let session = janus.create_session()?;
    let handle = janus.attach(session)?;
    let body = json!({ "request": "join", "ptype": "publisher", "room": room, "display": "teacher" });
    let (tx, _) = janus.request(session, handle, body, None)?;
    let joined = janus.event(session, &tx)?;
    let feed = joined["plugindata"]["data"]["id"].as_u64().context("no publisher id in 'joined'")?;

    let mut peer = Peer::new(bind)?;
    let mut api = peer.rtc.sdp_api();
    let audio_mid = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let rids = Publisher::rids(simulcast);
    let layers = (rids.len() > 1)
        .then(|| Simulcast { send: rids.iter().map(|r| SimulcastLayer::new(r)).collect(), recv: vec![] });
    let video_mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, layers);
    let (offer, pending) = api.apply().context("no offer")?;
    // Our rids are listed lowest first; Janus assumes highest first unless told.
    let jsep = json!({ "type": "offer", "sdp": offer.to_sdp_string(), "rid_order": "lmh" });
    let (tx, _) =
        janus.request(session, handle, json!({ "request": "configure", "audio": true, "video": true }), Some(jsep))?;
    let configured = janus.event(session, &tx)?;
    let sdp = configured["jsep"]["sdp"].as_str().context("no SDP answer from Janus")?;
    let answer = SdpAnswer::from_sdp_string(sdp).context("parse Janus's answer")?;
    peer.rtc.sdp_api().accept_answer(pending, answer)?;

    let j = janus.clone();
    let leave = Signalling::Custom(Box::new(move || j.destroy(session)));
    Ok((Publisher::negotiated(peer, audio_mid, video_mid, simulcast, false, leave)?, feed))
}

/// Subscribe a pupil to `feed` in `room`: Janus offers, str0m answers, `start`. `substream`
/// fixes the simulcast layer (0 lowest … 2 highest); without it Janus sends the highest.
/// The pupil's `close` destroys its Janus session. It drops RTP packets numbered before the
/// start of their stream, as a browser does ([`Subscriber::drop_stale`]).
pub fn subscribe(janus: &Arc<Janus>, room: u64, feed: u64, bind: IpAddr, substream: Option<u8>) -> Result<Subscriber> {
    let session = janus.create_session()?;
    let result = (|| {
        let handle = janus.attach(session)?;
        let mut stream = json!({ "feed": feed });
        if let Some(s) = substream {
            stream["substream"] = json!(s);
        }
        let body = json!({ "request": "join", "ptype": "subscriber", "room": room, "streams": [stream] });
        let (tx, _) = janus.request(session, handle, body, None)?;
        let attached = janus.event(session, &tx)?;
        let sdp = attached["jsep"]["sdp"].as_str().context("no SDP offer from Janus")?;
        let video_mid = attached["plugindata"]["data"]["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["type"] == "video"))
            .and_then(|s| s["mid"].as_str())
            .context("no video stream in Janus's offer")?;
        let video_mid = Mid::from(video_mid);

        let mut peer = Peer::new(bind)?;
        let offer = SdpOffer::from_sdp_string(sdp).context("parse Janus's offer")?;
        let answer = peer.rtc.sdp_api().accept_offer(offer)?;
        let jsep = json!({ "type": "answer", "sdp": answer.to_sdp_string() });
        let (tx, _) = janus.request(session, handle, json!({ "request": "start", "room": room }), Some(jsep))?;
        janus.event(session, &tx)?; // `started`, or the error
        Ok::<_, anyhow::Error>((peer, video_mid))
    })();
    match result {
        Ok((peer, video_mid)) => {
            let j = janus.clone();
            let mut pupil =
                Subscriber::negotiated(peer, video_mid, Signalling::Custom(Box::new(move || j.destroy(session))));
            // Janus sends stale packets under load that would stop str0m's video for good.
            pupil.drop_stale();
            Ok(pupil)
        }
        Err(e) => {
            let _ = janus.destroy(session);
            Err(e)
        }
    }
}
