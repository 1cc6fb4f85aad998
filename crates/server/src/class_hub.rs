//! ClassHub: the live interaction state of every class (who is connected, hands, chat, the
//! floor, lock, layout) and the fan-out of class events to the participants' WebSockets.
//!
//! Pure bookkeeping under one mutex: a handler asks [`ClassHub::handle`] what an event does,
//! gets back the media [`Effect`]s to carry out (close a pupil's sessions, mute, end the class),
//! and the hub has already queued every message to every connection.

use crate::records::{Record, Recorder};
use ardoise_proto::events::{LAYOUTS, MAX_CHAT_CHARS};
use ardoise_proto::{
    ChatLine, ClassId, ClassInfo, ClassPolicies, ClientEvent, ClientKind, ErrorCode, Floor, JoinCode, Member, Role,
    ServerEvent,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Chat lines kept for late joiners.
const CHAT_HISTORY: usize = 50;
/// Messages queued toward one connection before it counts as a slow reader and is closed.
pub const QUEUE_PER_CONNECTION: usize = 256;

/// What a connection's writer task sends.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A serialized [`ServerEvent`].
    Event(Arc<str>),
    /// Close the socket (removed, class ended, replaced by a newer connection).
    Close,
}

/// The way to one connection: a bounded queue to its writer task, and a switch that closes
/// it at once. A connection whose queue is full (a client that does not read) is closed,
/// never waited for: one slow reader never holds the class.
#[derive(Debug, Clone)]
pub struct ConnLink {
    tx: mpsc::Sender<Outgoing>,
    /// Cancelled when the connection must close now (slow reader, revoked token).
    pub kill: CancellationToken,
}

impl ConnLink {
    /// A link and the receiving end its writer task reads.
    pub fn new() -> (ConnLink, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(QUEUE_PER_CONNECTION);
        (ConnLink { tx, kill: CancellationToken::new() }, rx)
    }

    /// Queue `m` without waiting; a full queue closes the connection.
    pub fn deliver(&self, m: Outgoing) -> bool {
        match self.tx.try_send(m) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.kill.is_cancelled() {
                    debug!("class events: a client does not read its messages; closing it");
                }
                self.kill.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn event(&self, ev: &ServerEvent) {
        self.deliver(Outgoing::Event(serde_json::to_string(ev).expect("events serialize").into()));
    }
}

/// A media action the caller must carry out after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Close the WHIP sessions of this pupil (floor revoked).
    CloseFloorMedia(String),
    /// Close every media session of this subject (a player closed when the class was locked).
    CloseSessions(String),
    /// Close every session of this pupil and refuse its tokens until `until` (removed).
    Expel {
        /// The pupil's token subject.
        id: String,
        /// Its tokens' expiry, seconds since the Unix epoch.
        until: u64,
    },
    /// Stop or resume relaying this pupil's voice.
    Mute(String, bool),
    /// Replace the class's join code.
    RotateCode,
    /// End the class.
    EndClass,
    /// The teacher switched the studio's layout (a chapter of the class's recording).
    Layout(String),
}

/// What the hub keeps of a member's token beside the member (never shown to anyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenFacts {
    /// The token's role key version.
    pub kv: u32,
    /// The token's expiry, seconds since the Unix epoch.
    pub exp: u64,
}

struct Conn {
    id: u64,
    member: Member,
    link: ConnLink,
    token: TokenFacts,
}

/// The media sessions of one token subject.
struct MediaPresence {
    member: Member,
    sessions: u32,
    token: TokenFacts,
}

#[derive(Default)]
struct HubRoom {
    conns: Vec<Conn>,
    media: HashMap<String, MediaPresence>,
    hands: Vec<String>,
    floor: Option<Floor>,
    locked: bool,
    layout: Option<String>,
    chat: VecDeque<ChatLine>,
    live: bool,
    /// A recording is on.
    recording: bool,
    /// Pupils the teacher removed: refused at once, before the revocation is written.
    expelled: std::collections::HashSet<String>,
    /// The class has a waiting room: pupils wait in `waiting` until admitted.
    waiting_room: bool,
    /// Pupils' chat and hands are refused while no teacher's page is connected.
    autolock: bool,
    /// Pupils may write privately to the teachers.
    private_messages: bool,
    /// Pupils the teacher admitted during this session.
    admitted: std::collections::HashSet<String>,
    /// Connections of pupils not admitted yet, with the class as it was when they came.
    waiting: Vec<(Conn, ClassInfo)>,
}

impl HubRoom {
    fn send_to(&self, pred: impl Fn(&Conn) -> bool, ev: &ServerEvent) {
        let text: Arc<str> = serde_json::to_string(ev).expect("events serialize").into();
        for c in self.conns.iter().filter(|c| pred(c)) {
            c.link.deliver(Outgoing::Event(text.clone()));
        }
    }

    fn broadcast(&self, ev: &ServerEvent) {
        self.send_to(|_| true, ev);
    }

    fn sessions_of(&self, id: &str) -> u32 {
        self.media.get(id).map_or(0, |p| p.sessions)
    }

    /// Everyone present: each (id, client) with a class-events connection, then the holders
    /// of media sessions with none (players).
    fn members(&self) -> Vec<Member> {
        let mut seen: Vec<Member> = Vec::new();
        for c in &self.conns {
            if !seen.iter().any(|m| m.id == c.member.id && m.client == c.member.client) {
                let media = self.media.get(&c.member.id);
                seen.push(Member {
                    sessions: media.map_or(0, |p| p.sessions),
                    transport: media.and_then(|p| p.member.transport),
                    ..c.member.clone()
                });
            }
        }
        for (id, p) in &self.media {
            if !self.conns.iter().any(|c| c.member.id == *id) {
                seen.push(Member { sessions: p.sessions, ..p.member.clone() });
            }
        }
        seen
    }

    /// Whether `id` has a class-events connection or a media session here.
    fn present(&self, id: &str) -> bool {
        self.conns.iter().any(|c| c.member.id == id) || self.media.contains_key(id)
    }

    /// Tell everyone how `id` is present now: `joined` with each of its entries (the pages
    /// replace a member by id), or `left` when it is gone.
    fn announce(&self, id: &str) {
        let entries: Vec<Member> = self.members().into_iter().filter(|m| m.id == id).collect();
        if entries.is_empty() {
            self.broadcast(&ServerEvent::Left { id: id.to_owned() });
        }
        for member in entries {
            self.broadcast(&ServerEvent::Joined { member });
        }
    }

    /// The pupils waiting, once each, in order of arrival.
    fn waiting_list(&self) -> Vec<Member> {
        let mut out: Vec<Member> = Vec::new();
        for (c, _) in &self.waiting {
            if !out.iter().any(|m| m.id == c.member.id) {
                out.push(c.member.clone());
            }
        }
        out
    }

    /// Tell the teachers who waits.
    fn announce_waiting(&self) {
        let ev = ServerEvent::WaitingRoom { pupils: self.waiting_list() };
        self.send_to(|c| matches!(c.member.role, Role::Teacher | Role::Admin), &ev);
    }

    /// Whether a teacher's or an admin's page (not the studio) is connected.
    fn teacher_here(&self) -> bool {
        self.conns
            .iter()
            .any(|c| matches!(c.member.role, Role::Teacher | Role::Admin) && c.member.client != ClientKind::Studio)
    }

    /// Whether pupils are paused now: auto-lock is on and no teacher is here.
    fn paused(&self) -> bool {
        self.autolock && !self.teacher_here()
    }

    /// Whether pupil `id` may be in the class now (no waiting room, or admitted).
    fn may_enter(&self, id: &str) -> bool {
        !self.waiting_room || self.admitted.contains(id)
    }

    fn pupil(&self, id: &str) -> Option<Member> {
        self.members().into_iter().find(|m| m.id == id && m.role == Role::Pupil)
    }

    fn token_of(&self, id: &str) -> Option<TokenFacts> {
        self.conns.iter().find(|c| c.member.id == id).map(|c| c.token).or_else(|| self.media.get(id).map(|p| p.token))
    }

    fn set_hand(&mut self, id: &str, raised: bool) -> bool {
        let was = self.hands.iter().any(|h| h == id);
        if was == raised {
            return false;
        }
        if raised {
            self.hands.push(id.to_owned());
        } else {
            self.hands.retain(|h| h != id);
        }
        for c in self.conns.iter_mut().filter(|c| c.member.id == id) {
            c.member.hand = raised;
        }
        self.broadcast(&ServerEvent::Hand { id: id.to_owned(), raised });
        true
    }

    /// Close every class-events connection and forget every media presence of `id`.
    fn drop_member(&mut self, id: &str) {
        for c in self.conns.iter().filter(|c| c.member.id == id) {
            // The writer sends what is queued, then the close (a full queue closes at once).
            c.link.deliver(Outgoing::Close);
        }
        self.conns.retain(|c| c.member.id != id);
        self.media.remove(id);
        self.set_hand(id, false);
        if self.floor.as_ref().is_some_and(|f| f.pupil == id) {
            self.floor = None;
            self.broadcast(&ServerEvent::Floor { floor: None });
        }
    }
}

/// What a class's hub keeps that outlives its node (a cluster: the class's next node
/// restores it): hands in order, the floor, the lock, the layout, the latest chat lines, who
/// was removed and who was let in from the waiting room.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveState {
    /// Raised hands, first raised first.
    pub hands: Vec<String>,
    /// Who holds the floor.
    pub floor: Option<Floor>,
    /// Chat and hands locked.
    pub locked: bool,
    /// The studio's layout.
    pub layout: Option<String>,
    /// The latest chat lines, oldest first.
    pub chat: Vec<ChatLine>,
    /// Pupils removed from the class.
    pub expelled: Vec<String>,
    /// Pupils let in from the waiting room.
    pub admitted: Vec<String>,
}

/// Interaction state of every class.
#[derive(Default)]
pub struct ClassHub {
    rooms: Mutex<HashMap<ClassId, HubRoom>>,
    next_conn: AtomicU64,
    /// Where attendance and audit records go (none: not recorded).
    recorder: std::sync::OnceLock<Recorder>,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerEvent {
    ServerEvent::Error { code, message: message.into() }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl ClassHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClassId, HubRoom>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record attendance and teachers' actions through `recorder` from now on.
    pub fn set_recorder(&self, recorder: Recorder) {
        let _ = self.recorder.set(recorder);
    }

    fn record(&self, r: Record) {
        if let Some(rec) = self.recorder.get() {
            rec.send(r);
        }
    }

    /// A pupil became present (`was` false, now true) or left (`was` true, now false).
    /// (Checks are no attendance.)
    fn presence(&self, class: &ClassId, member: &Member, was: bool, now: bool) {
        if member.role != Role::Pupil || was == now || crate::check::is_check_class(class) {
            return;
        }
        let (class, pupil) = (class.clone(), member.id.clone());
        self.record(if now {
            Record::PupilIn { class, pupil, name: member.name.clone() }
        } else {
            Record::PupilOut { class, pupil }
        });
    }

    fn audit(&self, class: &ClassId, me: &Member, action: &'static str, target: &str, detail: String) {
        let actor = format!("{} ({}, {})", me.name, me.role, me.id);
        let target = if target.is_empty() { format!("class:{class}") } else { format!("class:{class} {target}") };
        self.record(Record::Audit { actor, action, target, detail });
    }

    /// Register a connection of `member` to `class`; returns its id. The welcome message is
    /// queued first, then everyone else hears `joined`. A pupil's older connection is closed.
    /// Pupils never see the join code in the welcome (only teachers and admins manage it).
    /// While the class has a waiting room, a pupil not admitted yet hears `waiting` instead,
    /// and the teachers hear who waits.
    pub fn connect(&self, class: &ClassInfo, member: Member, link: ConnLink, token: TokenFacts) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.lock();
        let room = rooms.entry(class.id.clone()).or_default();
        if member.role == Role::Pupil && !room.may_enter(&member.id) {
            for (old, _) in
                room.waiting.iter().filter(|(c, _)| c.member.id == member.id && c.member.client == member.client)
            {
                old.link.deliver(Outgoing::Close);
            }
            room.waiting.retain(|(c, _)| !(c.member.id == member.id && c.member.client == member.client));
            link.event(&ServerEvent::Waiting { title: class.title.clone() });
            room.waiting.push((Conn { id, member, link, token }, class.clone()));
            room.announce_waiting();
            return id;
        }
        let entered = Self::enter(room, class, Conn { id, member, link, token });
        drop(rooms);
        if let Some((member, was_present)) = entered {
            self.presence(&class.id, &member, was_present, true);
        }
        id
    }

    /// Put connection `conn` in the class: its welcome, `joined` to the others. Returns the
    /// member and whether it was present before (for attendance).
    fn enter(room: &mut HubRoom, class: &ClassInfo, conn: Conn) -> Option<(Member, bool)> {
        let Conn { id, mut member, link, token } = conn;
        let was_present = room.present(&member.id);
        if member.role == Role::Pupil {
            for old in room.conns.iter().filter(|c| c.member.id == member.id && c.member.client == member.client) {
                old.link.deliver(Outgoing::Close);
            }
            room.conns.retain(|c| !(c.member.id == member.id && c.member.client == member.client));
        }
        member.hand = room.hands.contains(&member.id);
        member.sessions = room.sessions_of(&member.id);
        let mut class = class.clone();
        if member.role == Role::Pupil {
            class.code = JoinCode(String::new());
            class.code_expires_at = None;
        }
        let already = room.conns.iter().any(|c| c.member.id == member.id && c.member.client == member.client);
        let was_player = !room.conns.iter().any(|c| c.member.id == member.id) && room.media.contains_key(&member.id);
        let mut members: Vec<Member> =
            room.members().into_iter().filter(|m| !(was_player && m.id == member.id)).collect();
        if !already {
            members.push(member.clone());
        }
        let welcome = ServerEvent::Welcome {
            you: member.clone(),
            class,
            members,
            floor: room.floor.clone(),
            layout: room.layout.clone(),
            locked: room.locked,
            live: room.live,
            recording: room.recording,
            chat: room.chat.iter().cloned().collect(),
        };
        link.event(&welcome);
        if matches!(member.role, Role::Teacher | Role::Admin) && room.waiting_room {
            link.event(&ServerEvent::WaitingRoom { pupils: room.waiting_list() });
        }
        if !already {
            room.broadcast(&ServerEvent::Joined { member: member.clone() });
        }
        let recorded = member.clone();
        room.conns.push(Conn { id, member, link, token });
        Some((recorded, was_present))
    }

    /// The policies of `class` (before each connection and when the teacher changes them).
    /// Turning the waiting room off lets everyone waiting in.
    pub fn set_policies(&self, class: &ClassId, policies: ClassPolicies) {
        let mut rooms = self.lock();
        let room = rooms.entry(class.clone()).or_default();
        room.autolock = policies.autolock;
        room.private_messages = policies.private_messages;
        let on = policies.waiting_room;
        if room.waiting_room == on {
            return;
        }
        room.waiting_room = on;
        if !on {
            let ids: Vec<String> = room.waiting_list().into_iter().map(|m| m.id).collect();
            drop(rooms);
            for id in ids {
                self.admit(class, &id);
            }
        }
    }

    /// Let pupil `id` in from the waiting room (it stays admitted for this session).
    /// Returns whether it was waiting.
    pub fn admit(&self, class: &ClassId, id: &str) -> bool {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(class) else { return false };
        room.admitted.insert(id.to_owned());
        let (came, stay): (Vec<_>, Vec<_>) =
            std::mem::take(&mut room.waiting).into_iter().partition(|(c, _)| c.member.id == id);
        room.waiting = stay;
        let was_waiting = !came.is_empty();
        let mut entered = Vec::new();
        for (conn, info) in came {
            entered.extend(Self::enter(room, &info, conn));
        }
        room.announce_waiting();
        drop(rooms);
        for (m, was) in entered {
            self.presence(class, &m, was, true);
        }
        was_waiting
    }

    /// Whether the teacher admitted pupil `id` to `class` in this session.
    pub fn is_admitted(&self, class: &ClassId, id: &str) -> bool {
        self.lock().get(class).is_some_and(|r| r.admitted.contains(id))
    }

    /// A connection closed.
    pub fn disconnect(&self, class: &ClassId, conn: u64) {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(class) else { return };
        if let Some(pos) = room.waiting.iter().position(|(c, _)| c.id == conn) {
            room.waiting.remove(pos);
            room.announce_waiting();
            return;
        }
        let Some(pos) = room.conns.iter().position(|c| c.id == conn) else { return };
        let gone = room.conns.remove(pos).member;
        let still = room.present(&gone.id);
        if !room.conns.iter().any(|c| c.member.id == gone.id && c.member.client == gone.client) {
            if room.media.contains_key(&gone.id) && !room.conns.iter().any(|c| c.member.id == gone.id) {
                room.announce(&gone.id); // still watching: now as a player
            } else {
                room.broadcast(&ServerEvent::Left { id: gone.id.clone() });
            }
            if !room.conns.iter().any(|c| c.member.id == gone.id) {
                room.set_hand(&gone.id, false);
            }
        }
        drop(rooms);
        self.presence(class, &gone, true, still);
    }

    /// A media session (WHIP/WHEP) of `member` opened in `class`: it is shown to everyone,
    /// as a player when it has no class-events connection.
    pub fn media_opened(&self, class: &ClassId, member: Member, token: TokenFacts) {
        let mut rooms = self.lock();
        let room = rooms.entry(class.clone()).or_default();
        let id = member.id.clone();
        let was = room.present(&id);
        let recorded = member.clone();
        let p = room.media.entry(id.clone()).or_insert(MediaPresence {
            member: Member { client: ClientKind::Player, hand: false, quality: None, sessions: 0, ..member },
            sessions: 0,
            token,
        });
        p.sessions += 1;
        room.announce(&id);
        drop(rooms);
        self.presence(class, &recorded, was, true);
    }

    /// How the latest media session of `id` in `class` travels (udp, tcp, relay): shown to the
    /// teacher beside the member.
    pub fn media_transport(&self, class: &ClassId, id: &str, transport: ardoise_proto::Transport) {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(class) else { return };
        let Some(p) = room.media.get_mut(id) else { return };
        if p.member.transport != Some(transport) {
            p.member.transport = Some(transport);
            let pupil = p.member.role == Role::Pupil;
            room.announce(id);
            drop(rooms);
            if pupil {
                let (class, pupil) = (class.clone(), id.to_owned());
                self.record(Record::PupilLink { class, pupil, transport: Some(transport), quality: None });
            }
        }
    }

    /// A media session of `id` in `class` closed.
    pub fn media_closed(&self, class: &ClassId, id: &str) {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(class) else { return };
        let Some(p) = room.media.get_mut(id) else { return };
        let member = p.member.clone();
        p.sessions = p.sessions.saturating_sub(1);
        if p.sessions == 0 {
            room.media.remove(id);
        }
        room.announce(id);
        let still = room.present(id);
        drop(rooms);
        self.presence(class, &member, true, still);
    }

    /// A check's echo class: its one pupil, `pupil`, holds the floor with the camera from
    /// the start (nobody else can join it: see `check`).
    pub fn hold_floor_alone(&self, class: &ClassId, pupil: &str) {
        let mut rooms = self.lock();
        let room = rooms.entry(class.clone()).or_default();
        room.floor = Some(Floor { pupil: pupil.to_owned(), name: "check".into(), camera: true, muted: false });
    }

    /// Whether new pupils are refused.
    pub fn is_locked(&self, class: &ClassId) -> bool {
        self.lock().get(class).is_some_and(|r| r.locked)
    }

    /// The token facts of pupil `id` if it is in `class` now.
    pub fn pupil_token(&self, class: &ClassId, id: &str) -> Option<TokenFacts> {
        let rooms = self.lock();
        let room = rooms.get(class)?;
        if let Some((c, _)) = room.waiting.iter().find(|(c, _)| c.member.id == id) {
            return Some(c.token);
        }
        room.pupil(id)?;
        room.token_of(id)
    }

    /// Whether the teacher removed `id` from `class`.
    pub fn is_expelled(&self, class: &ClassId, id: &str) -> bool {
        self.lock().get(class).is_some_and(|r| r.expelled.contains(id))
    }

    /// Whether `id` is in `class` now (a class-events connection or a media session).
    pub fn is_present(&self, class: &ClassId, id: &str) -> bool {
        self.lock().get(class).is_some_and(|r| r.present(id))
    }

    /// Whether `class` has class-event connections here (pages).
    pub fn has_pages(&self, class: &ClassId) -> bool {
        self.lock().get(class).is_some_and(|r| !r.conns.is_empty() || !r.waiting.is_empty())
    }

    /// Whether anyone is in `class` now.
    pub fn has_anyone(&self, class: &ClassId) -> bool {
        self.lock().get(class).is_some_and(|r| !r.conns.is_empty() || !r.media.is_empty())
    }

    /// Who holds the floor in `class`.
    pub fn floor(&self, class: &ClassId) -> Option<Floor> {
        self.lock().get(class).and_then(|r| r.floor.clone())
    }

    /// Members of `class` (admin view).
    pub fn members(&self, class: &ClassId) -> Vec<Member> {
        self.lock().get(class).map(|r| r.members()).unwrap_or_default()
    }

    /// Connections member `id` holds in `class` (pages and the studio; waiting ones too).
    pub fn connections_of(&self, class: &ClassId, id: &str) -> usize {
        self.lock().get(class).map_or(0, |r| {
            r.conns.iter().filter(|c| c.member.id == id).count()
                + r.waiting.iter().filter(|(c, _)| c.member.id == id).count()
        })
    }

    /// Send `ev` to every connection of member `id` only.
    pub fn tell(&self, class: &ClassId, id: &str, ev: &ServerEvent) {
        if let Some(room) = self.lock().get(class) {
            room.send_to(|c| c.member.id == id, ev);
        }
    }

    /// Send `ev` to the teachers and admins of `class`.
    pub fn tell_teachers(&self, class: &ClassId, ev: &ServerEvent) {
        if let Some(room) = self.lock().get(class) {
            room.send_to(|c| matches!(c.member.role, Role::Teacher | Role::Admin), ev);
        }
    }

    /// Close the connections and forget the media presence of every member whose token
    /// `refused` refuses (revoked subject or role key version), in every class. Returns the
    /// refused subjects per class (their media sessions are closed by the caller).
    pub fn close_refused(&self, refused: impl Fn(&str, Role, TokenFacts) -> bool) -> Vec<(ClassId, String)> {
        let mut out = Vec::new();
        let mut left = Vec::new();
        for (class, room) in self.lock().iter_mut() {
            let mut ids: Vec<String> = room
                .conns
                .iter()
                .filter(|c| refused(&c.member.id, c.member.role, c.token))
                .map(|c| c.member.id.clone())
                .chain(
                    room.media.iter().filter(|(id, p)| refused(id, p.member.role, p.token)).map(|(id, _)| id.clone()),
                )
                .collect();
            ids.sort();
            ids.dedup();
            for id in ids {
                if let Some(m) = room.members().into_iter().find(|m| m.id == id) {
                    left.push((class.clone(), m));
                }
                room.drop_member(&id);
                room.broadcast(&ServerEvent::Left { id: id.clone() });
                out.push((class.clone(), id));
            }
        }
        for (class, m) in left {
            self.presence(&class, &m, true, false);
        }
        out
    }

    /// The class picture started or stopped.
    pub fn set_live(&self, class: &ClassId, live: bool) {
        let mut rooms = self.lock();
        let room = rooms.entry(class.clone()).or_default();
        if room.live != live {
            room.live = live;
            room.broadcast(&ServerEvent::Live { live });
        }
    }

    /// The studio's layout, if the console set one.
    pub fn layout(&self, class: &ClassId) -> Option<String> {
        self.lock().get(class).and_then(|room| room.layout.clone())
    }

    /// A recording of the class started or stopped: every page shows it.
    pub fn set_recording(&self, class: &ClassId, on: bool) {
        let mut rooms = self.lock();
        let room = rooms.entry(class.clone()).or_default();
        if room.recording != on {
            room.recording = on;
            room.broadcast(&ServerEvent::Recording { on, reason: None });
        }
    }

    /// The class's recording stopped by itself (`reason`: `disk_full`, `write_error`; none:
    /// the class's media ended): every page is told.
    pub fn recording_stopped(&self, class: &ClassId, reason: Option<String>) {
        let mut rooms = self.lock();
        let room = rooms.entry(class.clone()).or_default();
        room.recording = false;
        room.broadcast(&ServerEvent::Recording { on: false, reason });
    }

    /// The class's media sessions were lost (a media worker was replaced): everyone is told
    /// to reconnect its media now.
    pub fn media_lost(&self, class: &ClassId) {
        if let Some(room) = self.lock().get(class) {
            room.broadcast(&ServerEvent::Reconnect);
        }
    }

    /// The media sessions of these pupils (`ids`) were lost (the edge that served them
    /// died): their pages are told to reconnect their media now.
    pub fn media_lost_for(&self, class: &ClassId, ids: &HashSet<String>) {
        if let Some(room) = self.lock().get(class) {
            room.send_to(|c| ids.contains(&c.member.id), &ServerEvent::Reconnect);
        }
    }

    /// The class's [`LiveState`] now, if it has a room here.
    pub fn live_state(&self, class: &ClassId) -> Option<LiveState> {
        let rooms = self.lock();
        let room = rooms.get(class)?;
        let sorted = |set: &std::collections::HashSet<String>| {
            let mut v: Vec<String> = set.iter().cloned().collect();
            v.sort();
            v
        };
        Some(LiveState {
            hands: room.hands.clone(),
            floor: room.floor.clone(),
            locked: room.locked,
            layout: room.layout.clone(),
            chat: room.chat.iter().cloned().collect(),
            expelled: sorted(&room.expelled),
            admitted: sorted(&room.admitted),
        })
    }

    /// Whether someone follows `class`'s events here (a page, the studio, the waiting room):
    /// then its interaction state is this node's. Media sessions alone hold none (an edge's
    /// pupils: their pages follow the class on its owner).
    pub fn has_class_events(&self, class: &ClassId) -> bool {
        self.lock().get(class).is_some_and(|r| !r.conns.is_empty() || !r.waiting.is_empty())
    }

    /// Take up a class's [`LiveState`] (this node has just become its node): what its
    /// previous node kept, unless someone follows the class's events here already (what they
    /// did since is newer; see [`ClassHub::has_class_events`]). Returns whether it was taken
    /// up.
    pub fn restore(&self, class: &ClassId, state: LiveState) -> bool {
        let mut rooms = self.lock();
        let room = rooms.entry(class.clone()).or_default();
        if !room.conns.is_empty() || !room.waiting.is_empty() {
            return false;
        }
        room.hands = state.hands;
        room.floor = state.floor;
        room.locked = state.locked;
        room.layout = state.layout;
        room.chat = state.chat.into_iter().collect();
        room.expelled = state.expelled.into_iter().collect();
        room.admitted = state.admitted.into_iter().collect();
        true
    }

    /// The class ended: tell everyone and close every connection.
    pub fn end(&self, class: &ClassId) {
        self.close_with(class, ServerEvent::ClassEnded);
    }

    /// Another node owns the class now: tell everyone (`moved`) and close every connection.
    pub fn moved(&self, class: &ClassId) {
        self.close_with(class, ServerEvent::Moved);
    }

    fn close_with(&self, class: &ClassId, last: ServerEvent) {
        if let Some(room) = self.lock().remove(class) {
            room.broadcast(&last);
            for (c, _) in &room.waiting {
                c.link.event(&last);
            }
            for c in room.conns.iter().chain(room.waiting.iter().map(|(c, _)| c)) {
                c.link.deliver(Outgoing::Close);
            }
        }
    }

    /// Apply one event from connection `conn`. Replies and broadcasts are queued; the media
    /// effects are returned for the caller to carry out.
    pub fn handle(&self, class: &ClassId, conn: u64, event: ClientEvent) -> Vec<Effect> {
        let mut rooms = self.lock();
        let Some(room) = rooms.get_mut(class) else { return Vec::new() };
        if let Some((c, _)) = room.waiting.iter().find(|(c, _)| c.id == conn) {
            c.link.event(&match event {
                ClientEvent::Ping => ServerEvent::Pong,
                _ => error(ErrorCode::Forbidden, "wait until the teacher lets you in"),
            });
            return Vec::new();
        }
        let Some((me, link)) = room.conns.iter().find(|c| c.id == conn).map(|c| (c.member.clone(), c.link.clone()))
        else {
            return Vec::new();
        };
        let reply = |ev: ServerEvent| link.event(&ev);
        let teacher = matches!(me.role, Role::Teacher | Role::Admin);
        let teacher_only = |what: &str| error(ErrorCode::Forbidden, format!("only the teacher may {what}"));
        let mut effects = Vec::new();
        match event {
            ClientEvent::Hello { .. } => reply(error(ErrorCode::Invalid, "hello was already received")),
            ClientEvent::Ping => reply(ServerEvent::Pong),
            ClientEvent::RaiseHand => {
                if me.role != Role::Pupil {
                    reply(error(ErrorCode::Forbidden, "only pupils raise a hand"));
                } else if room.paused() {
                    reply(error(ErrorCode::Forbidden, "the class is paused until the teacher is back"));
                } else {
                    room.set_hand(&me.id, true);
                }
            }
            ClientEvent::LowerHand { pupil } => match pupil {
                Some(p) if p != me.id && !teacher => reply(teacher_only("lower another pupil's hand")),
                Some(p) => {
                    room.set_hand(&p, false);
                }
                None => {
                    room.set_hand(&me.id, false);
                }
            },
            ClientEvent::Chat { text, private } => {
                let text = text.trim();
                let n = text.chars().count();
                if me.role == Role::Pupil && room.paused() {
                    reply(error(ErrorCode::Forbidden, "the class is paused until the teacher is back"));
                } else if private && me.role != Role::Pupil {
                    reply(error(ErrorCode::Invalid, "private messages go from a pupil to the teachers"));
                } else if private && !room.private_messages {
                    reply(error(ErrorCode::Forbidden, "private messages are off in this class"));
                } else if n == 0 || n > MAX_CHAT_CHARS {
                    reply(error(ErrorCode::Invalid, format!("a chat message has 1 to {MAX_CHAT_CHARS} characters")));
                } else if text.chars().any(|c| c.is_control() && c != '\n') {
                    reply(error(ErrorCode::Invalid, "a chat message may not hold control characters"));
                } else {
                    let line = ChatLine {
                        id: me.id.clone(),
                        name: me.name.clone(),
                        role: me.role,
                        text: text.to_owned(),
                        at: now_ms(),
                        private,
                    };
                    if private {
                        let ev = ServerEvent::Chat(line);
                        room.send_to(
                            |c| matches!(c.member.role, Role::Teacher | Role::Admin) || c.member.id == me.id,
                            &ev,
                        );
                        return effects;
                    }
                    if room.chat.len() == CHAT_HISTORY {
                        room.chat.pop_front();
                    }
                    room.chat.push_back(line.clone());
                    room.broadcast(&ServerEvent::Chat(line));
                }
            }
            ClientEvent::Quality { level } => {
                for c in room.conns.iter_mut().filter(|c| c.member.id == me.id) {
                    c.member.quality = Some(level);
                }
                if me.role == Role::Pupil {
                    let (class, pupil) = (class.clone(), me.id.clone());
                    self.record(Record::PupilLink { class, pupil, transport: None, quality: Some(level) });
                }
                room.send_to(
                    |c| matches!(c.member.role, Role::Teacher | Role::Admin),
                    &ServerEvent::Quality { id: me.id.clone(), level },
                );
            }
            ClientEvent::GrantFloor { pupil, camera } => {
                if !teacher {
                    reply(teacher_only("give the floor"));
                } else if let Some(m) = room.pupil(&pupil) {
                    let name = m.name.clone();
                    if let Some(prev) = room.floor.take().filter(|f| f.pupil != pupil) {
                        effects.push(Effect::CloseFloorMedia(prev.pupil));
                    }
                    self.audit(
                        class,
                        &me,
                        "floor.grant",
                        &format!("pupil:{pupil}"),
                        format!("{name}, camera {camera}"),
                    );
                    room.floor = Some(Floor { pupil: pupil.clone(), name, camera, muted: false });
                    room.set_hand(&pupil, false);
                    room.broadcast(&ServerEvent::Floor { floor: room.floor.clone() });
                } else {
                    reply(error(ErrorCode::NotFound, "no such pupil connected"));
                }
            }
            ClientEvent::RevokeFloor { pupil } => {
                if !teacher {
                    reply(teacher_only("take the floor back"));
                } else if room.floor.as_ref().is_some_and(|f| f.pupil == pupil) {
                    self.audit(class, &me, "floor.revoke", &format!("pupil:{pupil}"), String::new());
                    room.floor = None;
                    effects.push(Effect::CloseFloorMedia(pupil));
                    room.broadcast(&ServerEvent::Floor { floor: None });
                } else {
                    reply(error(ErrorCode::NotFound, "this pupil does not hold the floor"));
                }
            }
            ClientEvent::Mute { pupil, muted } => {
                if !teacher {
                    reply(teacher_only("mute a pupil"));
                } else if let Some(f) = room.floor.as_mut().filter(|f| f.pupil == pupil) {
                    f.muted = muted;
                    effects.push(Effect::Mute(pupil, muted));
                    room.broadcast(&ServerEvent::Floor { floor: room.floor.clone() });
                } else {
                    reply(error(ErrorCode::NotFound, "this pupil does not hold the floor"));
                }
            }
            ClientEvent::Admit { pupil } => {
                if !teacher {
                    reply(teacher_only("let a pupil in"));
                } else if !room.waiting.iter().any(|(c, _)| c.member.id == pupil) {
                    reply(error(ErrorCode::NotFound, "this pupil is not waiting"));
                } else {
                    let name =
                        room.waiting_list().into_iter().find(|m| m.id == pupil).map(|m| m.name).unwrap_or_default();
                    self.audit(class, &me, "pupil.admit", &format!("pupil:{pupil}"), name);
                    drop(rooms);
                    self.admit(class, &pupil);
                    return effects;
                }
            }
            ClientEvent::Remove { pupil } if room.waiting.iter().any(|(c, _)| c.member.id == pupil) => {
                if !teacher {
                    reply(teacher_only("remove a pupil"));
                } else {
                    let until = room.waiting.iter().find(|(c, _)| c.member.id == pupil).map_or(0, |(c, _)| c.token.exp);
                    self.audit(class, &me, "pupil.refuse", &format!("pupil:{pupil}"), String::new());
                    for (c, _) in room.waiting.iter().filter(|(c, _)| c.member.id == pupil) {
                        c.link.event(&ServerEvent::Removed { id: pupil.clone() });
                        c.link.deliver(Outgoing::Close);
                    }
                    room.waiting.retain(|(c, _)| c.member.id != pupil);
                    room.expelled.insert(pupil.clone());
                    room.announce_waiting();
                    effects.push(Effect::Expel { id: pupil, until });
                }
            }
            ClientEvent::Remove { pupil } => {
                if !teacher {
                    reply(teacher_only("remove a pupil"));
                } else if room.pupil(&pupil).is_none() {
                    reply(error(ErrorCode::NotFound, "no such pupil connected"));
                } else {
                    let until = room.token_of(&pupil).map_or(0, |t| t.exp);
                    if let Some(m) = room.pupil(&pupil) {
                        self.audit(class, &me, "pupil.remove", &format!("pupil:{pupil}"), m.name.clone());
                        self.presence(class, &m, true, false);
                    }
                    effects.push(Effect::Expel { id: pupil.clone(), until });
                    // The removed pupil knows the code: a new one keeps it from joining again.
                    effects.push(Effect::RotateCode);
                    room.expelled.insert(pupil.clone());
                    room.broadcast(&ServerEvent::Removed { id: pupil.clone() });
                    room.drop_member(&pupil);
                }
            }
            ClientEvent::Lock { locked, close_players } => {
                if !teacher {
                    reply(teacher_only("lock the class"));
                } else {
                    room.locked = locked;
                    let what = if locked { "class.lock" } else { "class.unlock" };
                    self.audit(
                        class,
                        &me,
                        what,
                        "",
                        if close_players { "players closed".into() } else { String::new() },
                    );
                    room.broadcast(&ServerEvent::Locked { locked });
                    if close_players {
                        let players: Vec<String> = room
                            .media
                            .iter()
                            .filter(|(id, p)| {
                                p.member.role == Role::Pupil && !room.conns.iter().any(|c| c.member.id == **id)
                            })
                            .map(|(id, _)| id.clone())
                            .collect();
                        for id in players {
                            if let Some(m) = room.pupil(&id) {
                                self.presence(class, &m, true, false);
                            }
                            room.drop_member(&id);
                            room.broadcast(&ServerEvent::Left { id: id.clone() });
                            effects.push(Effect::CloseSessions(id));
                        }
                    }
                }
            }
            ClientEvent::RotateCode => {
                if !teacher {
                    reply(teacher_only("change the join code"));
                } else {
                    self.audit(class, &me, "class.code", "", String::new());
                    effects.push(Effect::RotateCode);
                }
            }
            ClientEvent::SetLayout { layout } => {
                if !teacher {
                    reply(teacher_only("change the layout"));
                } else if !LAYOUTS.contains(&layout.as_str()) {
                    reply(error(ErrorCode::Invalid, format!("unknown layout '{layout}' ({})", LAYOUTS.join(", "))));
                } else {
                    room.layout = Some(layout.clone());
                    room.broadcast(&ServerEvent::Layout { layout: layout.clone() });
                    effects.push(Effect::Layout(layout));
                }
            }
            ClientEvent::EndClass => {
                if !teacher {
                    reply(teacher_only("end the class"));
                } else {
                    self.audit(class, &me, "class.end", "", String::new());
                    effects.push(Effect::EndClass);
                }
            }
        }
        effects
    }
}

/// A member for `claims`-like facts.
pub fn member(id: &str, role: Role, name: Option<&str>, client: ClientKind) -> Member {
    let name = match (name, role, client) {
        (Some(n), _, _) => n.to_owned(),
        (None, _, ClientKind::Studio) => "Studio".to_owned(),
        (None, Role::Teacher, _) => "Enseignant·e".to_owned(),
        (None, Role::Admin, _) => "Admin".to_owned(),
        (None, Role::Pupil, _) => "Élève".to_owned(),
    };
    Member { id: id.to_owned(), name, role, hand: false, quality: None, client, sessions: 0, transport: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ardoise_proto::{ClassState, Quality};
    use tokio::sync::mpsc::Receiver;

    fn class() -> ClassInfo {
        ClassInfo {
            id: ClassId("c".into()),
            code: JoinCode("code".into()),
            title: "C".into(),
            state: ClassState::Open,
            code_expires_at: None,
        }
    }

    fn join(hub: &ClassHub, id: &str, role: Role) -> (u64, Receiver<Outgoing>) {
        let (link, rx) = ConnLink::new();
        let name = (role == Role::Pupil).then_some(id);
        (hub.connect(&class(), member(id, role, name, ClientKind::Browser), link, TokenFacts { kv: 0, exp: 99 }), rx)
    }

    fn drain(rx: &mut Receiver<Outgoing>) -> Vec<ServerEvent> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            if let Outgoing::Event(t) = m {
                out.push(serde_json::from_str(&t).unwrap());
            }
        }
        out
    }

    #[test]
    fn a_node_that_only_plays_the_class_to_its_pupils_takes_up_the_class_s_state() {
        let hub = ClassHub::default();
        let id = class().id;
        let kept = LiveState { hands: vec!["alice".into()], locked: true, ..LiveState::default() };
        // An edge: media sessions of the class's pupils, whose pages follow the class on its
        // owner. The owner dies and the class moves here: its state comes with it.
        hub.media_opened(
            &id,
            member("bob", Role::Pupil, Some("bob"), ClientKind::Browser),
            TokenFacts { kv: 0, exp: 99 },
        );
        assert!(!hub.has_class_events(&id));
        assert!(hub.restore(&id, kept.clone()), "media sessions alone hold no state");
        assert_eq!(hub.live_state(&id).map(|s| (s.hands, s.locked)), Some((vec!["alice".to_owned()], true)));
        // Someone following the class here: what they did since is newer.
        let (_t, _rx) = join(&hub, "teacher", Role::Teacher);
        assert!(hub.has_class_events(&id));
        assert!(!hub.restore(&id, LiveState::default()), "a class with its pages here keeps its state");
        assert!(hub.live_state(&id).is_some_and(|s| s.locked));
    }

    #[test]
    fn hands_chat_and_floor() {
        let hub = ClassHub::default();
        let id = class().id;
        let (t, mut trx) = join(&hub, "teacher", Role::Teacher);
        let (a, mut arx) = join(&hub, "alice", Role::Pupil);
        assert!(matches!(drain(&mut arx)[0], ServerEvent::Welcome { ref members, .. } if members.len() == 2));
        assert!(drain(&mut trx).contains(&ServerEvent::Joined {
            member: member("alice", Role::Pupil, Some("alice"), ClientKind::Browser)
        }));

        assert!(hub.handle(&id, a, ClientEvent::RaiseHand).is_empty());
        assert!(drain(&mut trx).contains(&ServerEvent::Hand { id: "alice".into(), raised: true }));

        hub.handle(&id, a, ClientEvent::Quality { level: Quality::Weak });
        assert!(drain(&mut trx).contains(&ServerEvent::Quality { id: "alice".into(), level: Quality::Weak }));
        assert!(
            !drain(&mut arx).iter().any(|e| matches!(e, ServerEvent::Quality { .. })),
            "quality goes to teachers only"
        );

        // A pupil may not give the floor.
        hub.handle(&id, a, ClientEvent::GrantFloor { pupil: "alice".into(), camera: false });
        assert!(matches!(drain(&mut arx)[..], [ServerEvent::Error { code: ErrorCode::Forbidden, .. }]));

        hub.handle(&id, t, ClientEvent::GrantFloor { pupil: "alice".into(), camera: false });
        let got = drain(&mut arx);
        assert!(got.contains(&ServerEvent::Hand { id: "alice".into(), raised: false }), "granting lowers the hand");
        assert!(got.iter().any(|e| matches!(e, ServerEvent::Floor { floor: Some(f) } if f.pupil == "alice")));
        assert_eq!(hub.floor(&id).unwrap().name, "alice");

        assert_eq!(
            hub.handle(&id, t, ClientEvent::Mute { pupil: "alice".into(), muted: true }),
            vec![Effect::Mute("alice".into(), true)]
        );
        assert_eq!(
            hub.handle(&id, t, ClientEvent::RevokeFloor { pupil: "alice".into() }),
            vec![Effect::CloseFloorMedia("alice".into())]
        );
        assert!(hub.floor(&id).is_none());

        hub.handle(&id, a, ClientEvent::Chat { text: "  bonjour ".into(), private: false });
        let chat = drain(&mut trx).into_iter().find_map(|e| if let ServerEvent::Chat(c) = e { Some(c) } else { None });
        assert_eq!(chat.unwrap().text, "bonjour");
        hub.handle(&id, a, ClientEvent::Chat { text: "x".repeat(501), private: false });
        assert!(matches!(drain(&mut arx).last(), Some(ServerEvent::Error { code: ErrorCode::Invalid, .. })));

        // Late joiners get the chat history.
        let (_, mut brx) = join(&hub, "bruno", Role::Pupil);
        assert!(matches!(&drain(&mut brx)[0], ServerEvent::Welcome { chat, .. } if chat.len() == 1));
    }

    #[test]
    fn removing_a_pupil_closes_it_and_expels_its_media() {
        let hub = ClassHub::default();
        let id = class().id;
        let (t, _trx) = join(&hub, "teacher", Role::Teacher);
        let (_, mut crx) = join(&hub, "chloe", Role::Pupil);
        hub.handle(&id, t, ClientEvent::GrantFloor { pupil: "chloe".into(), camera: true });
        assert_eq!(
            hub.handle(&id, t, ClientEvent::Remove { pupil: "chloe".into() }),
            vec![Effect::Expel { id: "chloe".into(), until: 99 }, Effect::RotateCode]
        );
        let mut got = Vec::new();
        while let Ok(m) = crx.try_recv() {
            got.push(m);
        }
        assert!(matches!(got.last(), Some(Outgoing::Close)));
        assert!(got.iter().any(|m| matches!(m, Outgoing::Event(t) if t.contains("\"removed\""))));
        assert!(hub.floor(&id).is_none());
        assert!(hub.members(&id).iter().all(|m| m.id != "chloe"));
        assert_eq!(hub.handle(&id, t, ClientEvent::Remove { pupil: "chloe".into() }), vec![]);
    }

    #[test]
    fn lock_layout_and_end() {
        let hub = ClassHub::default();
        let id = class().id;
        let (t, mut trx) = join(&hub, "teacher", Role::Teacher);
        let (p, mut prx) = join(&hub, "p", Role::Pupil);
        hub.handle(&id, p, ClientEvent::Lock { locked: true, close_players: false });
        assert!(!hub.is_locked(&id));
        hub.handle(&id, t, ClientEvent::Lock { locked: true, close_players: false });
        assert!(hub.is_locked(&id));
        hub.handle(&id, t, ClientEvent::SetLayout { layout: "sideways".into() });
        assert!(matches!(drain(&mut trx).last(), Some(ServerEvent::Error { code: ErrorCode::Invalid, .. })));
        hub.handle(&id, t, ClientEvent::SetLayout { layout: "document+camera".into() });
        assert!(drain(&mut prx).contains(&ServerEvent::Layout { layout: "document+camera".into() }));
        assert_eq!(hub.handle(&id, t, ClientEvent::EndClass), vec![Effect::EndClass]);
        hub.end(&id);
        let mut last = None;
        while let Ok(m) = prx.try_recv() {
            last = Some(m);
        }
        assert!(matches!(last, Some(Outgoing::Close)));
        assert!(!hub.is_locked(&id), "an ended class forgets its state");
    }

    #[test]
    fn a_pupil_reconnecting_replaces_its_old_connection() {
        let hub = ClassHub::default();
        let id = class().id;
        let (_t, mut trx) = join(&hub, "teacher", Role::Teacher);
        let (old, mut orx) = join(&hub, "p", Role::Pupil);
        hub.handle(&id, old, ClientEvent::RaiseHand);
        let (_new, mut nrx) = join(&hub, "p", Role::Pupil);
        assert!(std::iter::from_fn(|| orx.try_recv().ok()).any(|m| matches!(m, Outgoing::Close)));
        assert!(matches!(&drain(&mut nrx)[0], ServerEvent::Welcome { you, .. } if you.hand), "the hand stays up");
        hub.disconnect(&id, old); // the old socket's late close changes nothing
        assert!(!drain(&mut trx).iter().any(|e| matches!(e, ServerEvent::Left { .. })));
        assert_eq!(hub.members(&id).len(), 2);
    }

    #[test]
    fn pupils_never_see_the_code_teachers_do() {
        let hub = ClassHub::default();
        let (_, mut trx) = join(&hub, "teacher", Role::Teacher);
        let (_, mut prx) = join(&hub, "p", Role::Pupil);
        assert!(matches!(&drain(&mut trx)[0], ServerEvent::Welcome { class, .. } if class.code.0 == "code"));
        assert!(matches!(&drain(&mut prx)[0], ServerEvent::Welcome { class, .. } if class.code.0.is_empty()));
    }

    #[test]
    fn a_player_without_a_page_is_shown_removed_and_closed_by_lock() {
        let hub = ClassHub::default();
        let id = class().id;
        let (t, mut trx) = join(&hub, "teacher", Role::Teacher);
        let spy = member("spy", Role::Pupil, Some("Spy"), ClientKind::Browser);
        hub.media_opened(&id, spy.clone(), TokenFacts { kv: 0, exp: 50 });
        let seen = drain(&mut trx);
        assert!(
            seen.iter().any(|e| matches!(e, ServerEvent::Joined { member } if member.id == "spy" && member.client == ClientKind::Player && member.sessions == 1)),
            "{seen:?}"
        );
        assert!(hub.is_present(&id, "spy"));
        hub.media_opened(&id, spy.clone(), TokenFacts { kv: 0, exp: 50 });
        assert_eq!(hub.members(&id).iter().find(|m| m.id == "spy").unwrap().sessions, 2);
        // Remove works on a player: its sessions are expelled until its token expires.
        assert_eq!(
            hub.handle(&id, t, ClientEvent::Remove { pupil: "spy".into() }),
            vec![Effect::Expel { id: "spy".into(), until: 50 }, Effect::RotateCode]
        );
        assert!(!hub.is_present(&id, "spy"));
        hub.media_closed(&id, "spy"); // the late close of its sessions changes nothing
        assert!(!hub.is_present(&id, "spy"));
        // Locking with close_players closes players, never pupils with the page.
        hub.media_opened(&id, member("other", Role::Pupil, Some("O"), ClientKind::Browser), TokenFacts::default());
        let (_, _prx) = join(&hub, "paged", Role::Pupil);
        hub.media_opened(&id, member("paged", Role::Pupil, Some("P"), ClientKind::Browser), TokenFacts::default());
        let effects = hub.handle(&id, t, ClientEvent::Lock { locked: true, close_players: true });
        assert_eq!(effects, vec![Effect::CloseSessions("other".into())]);
        assert!(hub.is_present(&id, "paged") && !hub.is_present(&id, "other"));
        // A page that closes while its media plays on leaves a player behind.
        assert!(hub.members(&id).iter().any(|m| m.id == "paged" && m.client == ClientKind::Browser && m.sessions == 1));
    }

    #[test]
    fn revoked_tokens_are_closed_everywhere() {
        let hub = ClassHub::default();
        let (_, mut prx) = join(&hub, "p", Role::Pupil);
        let (_, _trx) = join(&hub, "t", Role::Teacher);
        let closed = hub.close_refused(|_, role, facts| role == Role::Pupil && facts.kv < 1);
        assert_eq!(closed, vec![(class().id, "p".to_owned())]);
        assert!(std::iter::from_fn(|| prx.try_recv().ok()).any(|m| matches!(m, Outgoing::Close)));
        assert_eq!(hub.members(&class().id).len(), 1);
    }

    #[test]
    fn a_client_that_does_not_read_is_closed_not_waited_for() {
        let hub = ClassHub::default();
        let id = class().id;
        let (link, _rx) = ConnLink::new();
        let kill = link.kill.clone();
        let c = hub.connect(
            &class(),
            member("slow", Role::Pupil, Some("S"), ClientKind::Browser),
            link,
            TokenFacts::default(),
        );
        let (_, _other) = join(&hub, "t", Role::Teacher);
        for _ in 0..QUEUE_PER_CONNECTION + 1 {
            hub.handle(&id, c, ClientEvent::Ping);
        }
        assert!(kill.is_cancelled(), "its queue is full: the connection is closed");
    }
}
