//! Class events: the typed JSON messages of the per-participant WebSocket (`/ws/{class}`).
//!
//! The contract with the pages is written down in `docs/CLASS_EVENTS.md`.

use crate::{ClassInfo, Role};
use serde::{Deserialize, Serialize};

/// Largest client message, bytes.
pub const MAX_EVENT_BYTES: usize = 2048;
/// Longest chat message, characters.
pub const MAX_CHAT_CHARS: usize = 500;
/// Layouts the studio knows (the teacher console offers these).
pub const LAYOUTS: [&str; 6] = ["camera", "document", "screen", "document+camera", "screen+camera", "side-by-side"];

/// A pupil's connection quality, as its page measures it (`getStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Video plays smoothly.
    Good,
    /// Loss or delay is visible.
    Weak,
    /// Nothing arrives.
    Offline,
}

/// What kind of program holds the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// A web page.
    #[default]
    Browser,
    /// The classroom studio (plays granted pupils on the classroom speaker, applies layouts).
    /// Only a teacher token may say so.
    Studio,
    /// A media session (WHEP/WHIP) with no class-events connection: a player such as VLC or
    /// OBS, or a script. Shown to the teacher so that nobody watches unseen.
    Player,
}

/// A participant as the class sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Token subject (random, never personal data).
    pub id: String,
    /// First name (pupils) or a role label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Hand raised.
    pub hand: bool,
    /// Last reported connection quality.
    pub quality: Option<Quality>,
    /// Page, studio or player.
    pub client: ClientKind,
    /// Media sessions (WHEP/WHIP) this member holds now.
    #[serde(default)]
    pub sessions: u32,
    /// How its media travels (the last of its sessions to connect), once known.
    #[serde(default)]
    pub transport: Option<crate::Transport>,
}

/// Who holds the floor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Floor {
    /// The pupil's id.
    pub pupil: String,
    /// The pupil's first name.
    pub name: String,
    /// Camera granted too.
    pub camera: bool,
    /// The teacher muted the pupil (the server stops relaying the voice).
    pub muted: bool,
}

/// One chat line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Author id.
    pub id: String,
    /// Author name.
    pub name: String,
    /// Author role.
    pub role: Role,
    /// The text.
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// A pupil's private message to the teachers (only they and its author see it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

/// A message from a participant's page (or the studio) to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientEvent {
    /// First message: who is this.
    Hello {
        /// The bearer token.
        token: String,
        /// Page or studio.
        #[serde(default)]
        client: ClientKind,
    },
    /// A pupil raises its hand.
    RaiseHand,
    /// A pupil lowers its hand, or the teacher lowers `pupil`'s.
    LowerHand {
        /// Whose hand (teacher only); the sender's own when absent.
        #[serde(default)]
        pupil: Option<String>,
    },
    /// A chat message to the class.
    Chat {
        /// 1 to 500 characters.
        text: String,
        /// From a pupil, to the teachers only (when the class allows private messages).
        #[serde(default)]
        private: bool,
    },
    /// A pupil reports its connection quality.
    Quality {
        /// Level.
        level: Quality,
    },
    /// The teacher gives a pupil the floor.
    GrantFloor {
        /// Pupil id.
        pupil: String,
        /// The camera too.
        #[serde(default)]
        camera: bool,
    },
    /// The teacher takes the floor back.
    RevokeFloor {
        /// Pupil id.
        pupil: String,
    },
    /// The teacher mutes or unmutes the pupil holding the floor.
    Mute {
        /// Pupil id.
        pupil: String,
        /// Muted or not.
        muted: bool,
    },
    /// The teacher removes a pupil (its token stops working).
    Remove {
        /// Pupil id.
        pupil: String,
    },
    /// The teacher locks the class (no new joins, no new sessions from pupils who are not
    /// in the class) or unlocks it.
    Lock {
        /// Locked or not.
        locked: bool,
        /// Also close the sessions of pupils who watch with a player and no class page.
        #[serde(default)]
        close_players: bool,
    },
    /// The teacher lets a pupil in from the waiting room.
    Admit {
        /// Pupil id.
        pupil: String,
    },
    /// The teacher replaces the join code (the old one stops working at once).
    RotateCode,
    /// The teacher switches the studio's layout.
    SetLayout {
        /// One of [`LAYOUTS`].
        layout: String,
    },
    /// The teacher ends the class.
    EndClass,
    /// Keep-alive.
    Ping,
}

/// Error codes of [`ServerEvent::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a valid message.
    Invalid,
    /// Not allowed for this role.
    Forbidden,
    /// Too many messages.
    RateLimited,
    /// No or bad token.
    Unauthorized,
    /// Unknown pupil or class.
    NotFound,
}

/// A message from the server to a participant.
// Made and serialized once per message, never kept in bulk: the size of `Welcome` is fine.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The state of the class, right after `hello`.
    Welcome {
        /// The receiver itself.
        you: Member,
        /// The class.
        class: ClassInfo,
        /// Everyone connected.
        members: Vec<Member>,
        /// Who holds the floor.
        floor: Option<Floor>,
        /// The studio's current layout, if set from the console.
        layout: Option<String>,
        /// No new joins.
        locked: bool,
        /// The class picture is published.
        live: bool,
        /// The class is being recorded (the programme: the teacher and the studio's picture).
        #[serde(default)]
        recording: bool,
        /// The last chat messages.
        chat: Vec<ChatLine>,
    },
    /// Someone connected.
    Joined {
        /// Who.
        member: Member,
    },
    /// Someone disconnected.
    Left {
        /// Who.
        id: String,
    },
    /// A hand went up or down.
    Hand {
        /// Whose.
        id: String,
        /// Up or down.
        raised: bool,
    },
    /// A chat message.
    Chat(ChatLine),
    /// The floor changed (`None`: nobody).
    Floor {
        /// Holder.
        floor: Option<Floor>,
    },
    /// A pupil was removed by the teacher.
    Removed {
        /// Who.
        id: String,
    },
    /// The studio's layout changed.
    Layout {
        /// New layout.
        layout: String,
    },
    /// The join code changed (to teachers and admins only).
    Code {
        /// The new code.
        code: crate::JoinCode,
        /// When it expires, seconds since the Unix epoch.
        expires_at: Option<u64>,
    },
    /// The class was locked or unlocked.
    Locked {
        /// Locked or not.
        locked: bool,
    },
    /// The class picture started or stopped.
    Live {
        /// Published or not.
        live: bool,
    },
    /// A pupil's connection quality (to teachers).
    Quality {
        /// Whose.
        id: String,
        /// Level.
        level: Quality,
    },
    /// This pupil's video stopped because its connection is too weak (`audio_only`), or came back.
    Video {
        /// Only audio is sent now.
        audio_only: bool,
        /// Why (`weak_connection`), when audio only.
        reason: Option<String>,
    },
    /// This pupil waits until the teacher admits it (the class has a waiting room); its
    /// welcome comes then.
    Waiting {
        /// The class's title.
        title: String,
    },
    /// Who waits in the waiting room (to teachers, on every change).
    WaitingRoom {
        /// The pupils waiting, in order of arrival.
        pupils: Vec<Member>,
    },
    /// The class is over.
    ClassEnded,
    /// A recording of the class started (`true`) or stopped: every page shows it.
    Recording {
        /// Recording now.
        on: bool,
        /// Why it stopped when no one stopped it: `disk_full`, `write_error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The server lost this class's media sessions (a media worker failed and was replaced):
    /// open them again now instead of waiting for the connection to time out.
    Reconnect,
    /// Another server of the cluster owns this class now: load the page again (its server
    /// sends it to the owner) and open everything there.
    Moved,
    /// The last message was refused.
    Error {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// Answer to `ping`.
    Pong,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_events_are_tagged_snake_case() {
        let e: ClientEvent = serde_json::from_str(r#"{"type":"grant_floor","pupil":"p1","camera":true}"#).unwrap();
        assert_eq!(e, ClientEvent::GrantFloor { pupil: "p1".into(), camera: true });
        let e: ClientEvent = serde_json::from_str(r#"{"type":"raise_hand"}"#).unwrap();
        assert_eq!(e, ClientEvent::RaiseHand);
        let e: ClientEvent = serde_json::from_str(r#"{"type":"hello","token":"t"}"#).unwrap();
        assert_eq!(e, ClientEvent::Hello { token: "t".into(), client: ClientKind::Browser });
        assert!(serde_json::from_str::<ClientEvent>(r#"{"type":"chat","text":"a","extra":1}"#).is_err());
        assert!(serde_json::from_str::<ClientEvent>(r#"{"type":"fly"}"#).is_err());
    }

    #[test]
    fn server_events_round_trip() {
        let line = ChatLine {
            id: "a".into(),
            name: "Alice".into(),
            role: Role::Pupil,
            text: "bonjour".into(),
            at: 1,
            private: false,
        };
        let text = serde_json::to_string(&ServerEvent::Chat(line.clone())).unwrap();
        assert!(text.starts_with(r#"{"type":"chat","id":"a""#), "{text}");
        assert_eq!(serde_json::from_str::<ServerEvent>(&text).unwrap(), ServerEvent::Chat(line));
        let text = serde_json::to_string(&ServerEvent::Floor { floor: None }).unwrap();
        assert_eq!(text, r#"{"type":"floor","floor":null}"#);
        assert_eq!(serde_json::to_string(&ServerEvent::ClassEnded).unwrap(), r#"{"type":"class_ended"}"#);
    }
}
