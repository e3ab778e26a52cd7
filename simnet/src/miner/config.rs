//! How a simulated miner behaves: its identity, its reply script, the misbehaviour it shows on
//! demand, its blacklist and its clock.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sn1_bittensor::keys::{Hotkey, KeyError};

/// The time the miner checks nonces and Epistula timestamps against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The system clock (`time.time_ns()`).
    System,
    /// A fixed instant in ns since the Unix epoch (for replaying captured requests).
    Fixed(u64),
}

impl Clock {
    /// Now, in ns since the Unix epoch.
    pub fn now_ns(&self) -> u64 {
        match self {
            Clock::System => sn1_bittensor::nonce::now_ns(),
            Clock::Fixed(ns) => *ns,
        }
    }
}

/// A custom blacklist rule: `Some(reason)` refuses the hotkey.
pub type BlacklistRule = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Which callers the miner refuses, checked before the signature as the real axon does.
#[derive(Clone, Default)]
pub enum Blacklist {
    /// Everyone is served.
    #[default]
    AllowAll,
    /// Only these dendrite hotkeys (SS58) are served; others get SN1's reason
    /// `Unrecognized hotkey {hotkey}` (403 for synapses, 401 "Signer not in metagraph" for
    /// Epistula).
    AllowList(HashSet<String>),
    /// Any rule: `Some(reason)` refuses the hotkey.
    Custom(BlacklistRule),
}

impl Blacklist {
    /// An allow-list of the given hotkeys.
    pub fn allow_only<I: IntoIterator<Item = S>, S: Into<String>>(hotkeys: I) -> Blacklist {
        Blacklist::AllowList(hotkeys.into_iter().map(Into::into).collect())
    }

    /// `Some(reason)` when `hotkey` is refused.
    pub fn check(&self, hotkey: &str) -> Option<String> {
        match self {
            Blacklist::AllowAll => None,
            Blacklist::AllowList(allowed) => {
                (!allowed.contains(hotkey)).then(|| format!("Unrecognized hotkey {hotkey}"))
            }
            Blacklist::Custom(rule) => rule(hotkey),
        }
    }
}

impl std::fmt::Debug for Blacklist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blacklist::AllowAll => f.write_str("AllowAll"),
            Blacklist::AllowList(list) => f.debug_tuple("AllowList").field(list).finish(),
            Blacklist::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What `POST /v1/chat/completions` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChatMode {
    /// An SN1 Epistula miner: the `Epistula-*` signature is checked (prompting's
    /// `verify_request`: 400 not for us / stale / mismatch, 401 blacklisted signer).
    #[default]
    Epistula,
    /// A plain OpenAI-compatible server: no checks.
    OpenAi,
    /// Not served: the path gets the axon's 404, like a pure bittensor axon.
    Disabled,
}

/// Something wrong the miner does after accepting a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Wait this long before the first chunk (the response head is sent at once).
    SlowFirstByte(Duration),
    /// Send this many chunks, then stall forever without closing.
    StallAfter {
        /// Chunks sent before the stall.
        chunks: usize,
    },
    /// 200 and no text at all.
    Empty,
    /// 200 and only whitespace.
    Whitespace,
    /// A refusal ("I'm sorry, but I can't help with that.").
    Refusal,
    /// This status with a `{"message": ...}` body (`{"detail": ...}` on the chat route).
    ErrorStatus(u16),
    /// A reply of this many bytes.
    Oversize(usize),
    /// Bytes that are not UTF-8 after the first chunk.
    InvalidUtf8,
    /// Abort the body after this many chunks: the client sees a broken connection.
    Reset {
        /// Chunks sent before the abort.
        after_chunks: usize,
    },
    /// Answer with the last message of the prompt, verbatim.
    EchoPrompt,
    /// 200 with an axon error body (`{"message":"..."}`) as the text.
    ErrorJsonAsText,
    /// This many one-byte chunks of a space (the hostile stall of the cleaning check).
    WhitespaceFlood(usize),
    /// This many one-byte chunks of letters (`abc…z` repeated), at the script's chunk gap: the
    /// hostile miner whose every chunk would grow the seed's accumulated events.
    ByteFlood(usize),
    /// Asked to continue a partial answer, answer the whole text from its start instead (as an
    /// OpenAI-style backend that starts a new assistant turn rather than continuing one).
    Restart,
}

/// The refusal text of [`Misbehaviour::Refusal`].
pub const REFUSAL_TEXT: &str = "I'm sorry, but I can't help with that.";
/// The text of [`Misbehaviour::Whitespace`].
pub const WHITESPACE_TEXT: &str = "  \n\t  \n ";

/// The normal reply: what to say and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyScript {
    /// The answer; `None` answers [`default_answer`] of the last message.
    pub text: Option<String>,
    /// Characters per chunk (at least 1).
    pub chunk_chars: usize,
    /// Pause between two chunks.
    pub chunk_delay: Duration,
    /// Pause before the first chunk.
    pub first_byte_delay: Duration,
    /// With no `text`: answer [`fleet_answer`] (the same for every miner, so another miner can
    /// continue it) instead of [`default_answer`] (which names the miner).
    pub same_for_all: bool,
}

impl Default for ReplyScript {
    /// The default answer in 16-character chunks 5 ms apart: streams visibly, tests stay fast.
    fn default() -> Self {
        ReplyScript {
            text: None,
            chunk_chars: 16,
            chunk_delay: Duration::from_millis(5),
            first_byte_delay: Duration::ZERO,
            same_for_all: false,
        }
    }
}

/// The deterministic default answer of miner `uid` to `last_message`.
pub fn default_answer(uid: u16, last_message: &str) -> String {
    let question: String = last_message.chars().take(60).collect();
    let ellipsis = if last_message.chars().count() > 60 {
        "…"
    } else {
        ""
    };
    format!(
        "Miner {uid} answers: you asked \"{question}{ellipsis}\". This is a simulated reply, \
         streamed in chunks."
    )
}

/// Sentences [`fleet_answer`] is made of.
const SENTENCES: [&str; 8] = [
    "The short version is that it depends on what you value most.",
    "Start with the simplest thing that could work, then measure it.",
    "Most of the cost hides in the parts nobody looks at twice.",
    "A good answer names its assumptions before it draws conclusions.",
    "When two options look equal, prefer the one that is easier to undo.",
    "Small, steady steps beat a single heroic leap almost every time.",
    "Write down what you expect to see, then check whether you saw it.",
    "In the end, the details decide whether the plan survives contact.",
];

/// The answer every miner of a profile fleet gives to `question` (the last user message): a
/// deterministic function of the question alone, ~450 characters, so any miner can continue
/// another's partial answer word for word.
pub fn fleet_answer(question: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in question.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let topic: String = question.chars().take(60).collect();
    let mut text = format!("You asked about \"{topic}\".");
    for i in 0..7 {
        let pick = (hash >> (i * 3)) as usize % SENTENCES.len();
        text.push(' ');
        text.push_str(SENTENCES[pick]);
    }
    text
}

/// Everything a simulated miner needs.
#[derive(Clone, Debug)]
pub struct SimMinerConfig {
    /// The uid it pretends to have (used in the default answer).
    pub uid: u16,
    /// Its own hotkey: synapse signatures must be made for it.
    pub hotkey: Hotkey,
    /// Where to listen (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// The normal reply.
    pub reply: ReplyScript,
    /// Misbehaviour on every accepted request (changeable at run time through the handle).
    pub misbehaviour: Option<Misbehaviour>,
    /// Who is refused.
    pub blacklist: Blacklist,
    /// The clock for nonces and timestamps (changeable at run time through the handle).
    pub clock: Clock,
    /// The chat completions route.
    pub chat: ChatMode,
    /// Behave like a prompting v2.8–v2.12.1 miner: the synapse needs `task_name` (500 without).
    pub require_task_name: bool,
    /// Most call records kept (the oldest are dropped first).
    pub max_records: usize,
}

impl SimMinerConfig {
    /// A well-behaved miner with this uid and hotkey, on `127.0.0.1:0`.
    pub fn new(uid: u16, hotkey: Hotkey) -> SimMinerConfig {
        SimMinerConfig {
            uid,
            hotkey,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            reply: ReplyScript::default(),
            misbehaviour: None,
            blacklist: Blacklist::AllowAll,
            clock: Clock::System,
            chat: ChatMode::Epistula,
            require_task_name: false,
            max_records: 10_000,
        }
    }

    /// A well-behaved miner with this uid and its [`sim_hotkey`].
    pub fn for_uid(uid: u16) -> Result<SimMinerConfig, KeyError> {
        Ok(SimMinerConfig::new(uid, sim_hotkey(uid)?))
    }
}

/// A deterministic hotkey for simulated miner `uid` (mini secret `0x00…005151{uid:04x}`). Test
/// keys: never fund or register them.
pub fn sim_hotkey(uid: u16) -> Result<Hotkey, KeyError> {
    Hotkey::from_seed_hex(&format!("0x{:0>60}{uid:04x}", "5151"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_hotkeys_differ_per_uid_and_are_stable() {
        let a = sim_hotkey(1).unwrap();
        let b = sim_hotkey(2).unwrap();
        assert_ne!(a.ss58(), b.ss58());
        assert_eq!(a.ss58(), sim_hotkey(1).unwrap().ss58());
    }

    #[test]
    fn allow_list_uses_sn1_reason() {
        let list = Blacklist::allow_only(["5A"]);
        assert_eq!(list.check("5A"), None);
        assert_eq!(list.check("5B").as_deref(), Some("Unrecognized hotkey 5B"));
    }

    #[test]
    fn default_answer_is_deterministic_and_bounded() {
        assert_eq!(
            default_answer(3, "What is 2+2?"),
            "Miner 3 answers: you asked \"What is 2+2?\". This is a simulated reply, streamed in chunks."
        );
        assert!(default_answer(3, &"x".repeat(1000)).len() < 200);
    }
}
