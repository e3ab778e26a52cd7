//! Turning a reply script and a misbehaviour into the bytes of a reply body, and streaming
//! them with the scripted pauses: raw chunked text for synapses (as a real axon sends it), SSE
//! `chat.completion.chunk` events for the chat route.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio_util::sync::CancellationToken;

use super::config::{
    Misbehaviour, REFUSAL_TEXT, ReplyScript, WHITESPACE_TEXT, default_answer, fleet_answer,
};
use super::record::StreamGuard;

/// How the body ends after its pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Cleanly (the terminating chunk).
    End,
    /// Never: the body stays open until the client leaves.
    Stall,
    /// With an error, so the server aborts the connection mid-body.
    Reset,
}

/// The body to stream: pieces (raw text bytes, possibly not UTF-8) and pauses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Text pieces, one HTTP chunk (or one SSE event) each.
    pub pieces: Vec<Vec<u8>>,
    /// Pause before the first piece.
    pub first_delay: Duration,
    /// Pause between pieces.
    pub gap: Duration,
    /// How it ends.
    pub tail: Tail,
}

/// [`Misbehaviour::ByteFlood`]'s text: `n` letters, `abc…z` repeated (the reply a client can
/// check byte for byte).
pub fn byte_flood(n: usize) -> String {
    (b'a'..=b'z').cycle().take(n).map(char::from).collect()
}

/// Text of `len` bytes for [`Misbehaviour::Oversize`].
fn filler(len: usize) -> String {
    const WORDS: &str = "lorem ipsum dolor sit amet ";
    WORDS.repeat(len / WORDS.len() + 1)[..len].to_owned()
}

fn split_chars(text: &str, chunk_chars: usize) -> Vec<Vec<u8>> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(chunk_chars.max(1))
        .map(|c| c.iter().collect::<String>().into_bytes())
        .collect()
}

/// A request to continue an answer: the conversation ends with an `assistant` turn (the
/// partial answer). Returns (the last message before it, the partial answer); `None` when the
/// last message is not an assistant turn.
pub fn continuation<'a>(roles: &[String], messages: &'a [String]) -> Option<(&'a str, &'a str)> {
    let last = messages.len().checked_sub(1)?;
    if roles.get(last).map(String::as_str) != Some("assistant") {
        return None;
    }
    let question = messages[..last].last().map(String::as_str).unwrap_or("");
    Some((question, messages[last].as_str()))
}

/// The plan for an accepted request. `ErrorStatus` is answered before any body and is not
/// planned here (it plans as a normal reply). A continuation request (see [`continuation`])
/// gets what its normal answer to the question adds after the partial answer (the whole
/// answer when the partial is not a prefix of it, or with [`Misbehaviour::Restart`]).
pub fn plan(
    script: &ReplyScript,
    misbehaviour: Option<&Misbehaviour>,
    uid: u16,
    (roles, messages): (&[String], &[String]),
    dendrite_hotkey: &str,
) -> Plan {
    let last = messages.last().map(String::as_str).unwrap_or("");
    let normal = || {
        let (question, partial) = continuation(roles, messages).unwrap_or((last, ""));
        let whole = match &script.text {
            Some(text) => text.clone(),
            None if script.same_for_all => fleet_answer(question),
            None => default_answer(uid, question),
        };
        match whole.strip_prefix(partial) {
            Some(rest) if misbehaviour != Some(&Misbehaviour::Restart) => rest.to_owned(),
            _ => whole,
        }
    };
    let text = match misbehaviour {
        Some(Misbehaviour::Empty) => String::new(),
        Some(Misbehaviour::Whitespace) => WHITESPACE_TEXT.to_owned(),
        Some(Misbehaviour::Refusal) => REFUSAL_TEXT.to_owned(),
        Some(Misbehaviour::Oversize(len)) => filler(*len),
        Some(Misbehaviour::EchoPrompt) => last.to_owned(),
        Some(Misbehaviour::WhitespaceFlood(chunks)) => " ".repeat(*chunks),
        Some(Misbehaviour::ByteFlood(chunks)) => byte_flood(*chunks),
        Some(Misbehaviour::ErrorJsonAsText) => sn1_bittensor::verify::error_body(&format!(
            "Forbidden. Key is blacklisted: Unrecognized hotkey {dendrite_hotkey}."
        )),
        _ => normal(),
    };
    // Big replies go in bigger chunks so an oversize test does not take thousands of pauses.
    let chunk_chars = match misbehaviour {
        Some(Misbehaviour::Oversize(len)) => script.chunk_chars.max(len / 64),
        Some(Misbehaviour::WhitespaceFlood(_) | Misbehaviour::ByteFlood(_)) => 1,
        _ => script.chunk_chars,
    };
    let mut pieces = split_chars(&text, chunk_chars);
    let mut tail = Tail::End;
    let mut first_delay = script.first_byte_delay;
    match misbehaviour {
        Some(Misbehaviour::SlowFirstByte(delay)) => first_delay = *delay,
        Some(Misbehaviour::StallAfter { chunks }) => {
            pieces.truncate(*chunks);
            tail = Tail::Stall;
        }
        Some(Misbehaviour::Reset { after_chunks }) => {
            pieces.truncate(*after_chunks);
            tail = Tail::Reset;
        }
        Some(Misbehaviour::InvalidUtf8) => {
            let at = pieces.len().min(1);
            pieces.insert(at, b"\xff\xfe broken".to_vec());
        }
        _ => {}
    }
    Plan {
        pieces,
        first_delay,
        gap: script.chunk_delay,
        tail,
    }
}

/// How pieces are framed on the wire.
#[derive(Clone, Debug)]
pub enum Framing {
    /// Raw text, one HTTP chunk per piece (the synapse reply).
    Raw,
    /// One SSE chunk event per piece, then a stop chunk and `data: [DONE]` on a clean end.
    Sse {
        /// `id` of the completion.
        id: String,
        /// `created` (Unix seconds).
        created: u64,
        /// `model` reported.
        model: String,
    },
}

impl Framing {
    fn frame(&self, piece: &[u8]) -> Bytes {
        match self {
            Framing::Raw => Bytes::copy_from_slice(piece),
            Framing::Sse { id, created, model } => match std::str::from_utf8(piece) {
                Ok(text) => sn1_bittensor::sse::chunk_event(id, *created, model, text).into(),
                // Not UTF-8 (the InvalidUtf8 misbehaviour): spliced raw into the JSON string.
                Err(_) => {
                    let mut event =
                        br#"data: {"choices":[{"index":0,"delta":{"content":""#.to_vec();
                    event.extend_from_slice(piece);
                    event.extend_from_slice(b"\"}}]}\n\n");
                    event.into()
                }
            },
        }
    }

    fn trailer(&self) -> Option<Bytes> {
        match self {
            Framing::Raw => None,
            Framing::Sse { id, created, model } => {
                Some(sn1_bittensor::sse::final_events(id, *created, model).into())
            }
        }
    }
}

struct BodyState {
    pieces: VecDeque<Bytes>,
    trailer: Option<Bytes>,
    first: bool,
    first_delay: Duration,
    gap: Duration,
    tail: Tail,
    guard: StreamGuard,
    cancel: CancellationToken,
    finished: bool,
}

/// Pause before a simulated reset (see [`Tail::Reset`] in [`body`]).
const RESET_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// The error a body yields to make the server abort the connection.
fn abort(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, why.to_owned())
}

/// The body stream of `plan`. It stops with an error when `cancel` fires (server shutdown),
/// and `guard` records its end and its drop.
pub fn body(
    plan: Plan,
    framing: Framing,
    guard: StreamGuard,
    cancel: CancellationToken,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let state = BodyState {
        pieces: plan.pieces.iter().map(|p| framing.frame(p)).collect(),
        trailer: if plan.tail == Tail::End {
            framing.trailer()
        } else {
            None
        },
        first: true,
        first_delay: plan.first_delay,
        gap: plan.gap,
        tail: plan.tail,
        guard,
        cancel,
        finished: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.finished {
            return None;
        }
        if let Some(piece) = st.pieces.pop_front() {
            let pause = if st.first { st.first_delay } else { st.gap };
            st.first = false;
            if !pause.is_zero() {
                tokio::select! {
                    _ = st.cancel.cancelled() => {
                        st.finished = true;
                        return Some((Err(abort("simulated miner shutting down")), st));
                    }
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            st.guard.chunk_sent();
            return Some((Ok(piece), st));
        }
        match st.tail {
            Tail::End => {
                if let Some(trailer) = st.trailer.take() {
                    return Some((Ok(trailer), st));
                }
                st.guard.ended();
                None
            }
            Tail::Stall => {
                st.cancel.cancelled().await;
                st.finished = true;
                Some((Err(abort("simulated miner shutting down")), st))
            }
            Tail::Reset => {
                // hyper drops what it has not written yet when the body fails; pausing first
                // lets it flush the chunks already handed over, so the client gets them.
                tokio::select! {
                    _ = st.cancel.cancelled() => {}
                    _ = tokio::time::sleep(st.gap.max(RESET_FLUSH_PAUSE)) => {}
                }
                st.finished = true;
                Some((Err(abort("simulated reset")), st))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::miner::config::ReplyScript;

    fn script(text: &str) -> ReplyScript {
        ReplyScript {
            text: Some(text.into()),
            chunk_chars: 4,
            ..ReplyScript::default()
        }
    }

    #[test]
    fn normal_plan_splits_on_characters() {
        let p = plan(&script("héllo wörld"), None, 1, (&[], &[]), "5X");
        let pieces: Vec<String> = p
            .pieces
            .iter()
            .map(|b| String::from_utf8(b.clone()).unwrap())
            .collect();
        assert_eq!(pieces, vec!["héll", "o wö", "rld"]);
        assert_eq!(p.tail, Tail::End);
    }

    #[test]
    fn misbehaviours_shape_the_plan() {
        let s = script("abcdefghijkl");
        let roles = ["user".to_owned()];
        let m = |m: Misbehaviour| plan(&s, Some(&m), 1, (&roles, &["q?".into()]), "5X");
        assert!(m(Misbehaviour::Empty).pieces.is_empty());
        let stall = m(Misbehaviour::StallAfter { chunks: 2 });
        assert_eq!((stall.pieces.len(), stall.tail), (2, Tail::Stall));
        let reset = m(Misbehaviour::Reset { after_chunks: 1 });
        assert_eq!((reset.pieces.len(), reset.tail), (1, Tail::Reset));
        assert_eq!(m(Misbehaviour::EchoPrompt).pieces.concat(), b"q?");
        let bytes = m(Misbehaviour::ByteFlood(30)).pieces;
        assert_eq!(bytes.len(), 30);
        assert_eq!(bytes[26], b"a");
        let flood = m(Misbehaviour::WhitespaceFlood(1000)).pieces;
        assert_eq!(flood.len(), 1000);
        assert!(flood.iter().all(|p| p == b" "));
        assert_eq!(m(Misbehaviour::Oversize(1000)).pieces.concat().len(), 1000);
        let bad = m(Misbehaviour::InvalidUtf8).pieces.concat();
        assert!(std::str::from_utf8(&bad).is_err());
        assert_eq!(
            String::from_utf8(m(Misbehaviour::ErrorJsonAsText).pieces.concat()).unwrap(),
            r#"{"message":"Forbidden. Key is blacklisted: Unrecognized hotkey 5X."}"#
        );
        let slow = m(Misbehaviour::SlowFirstByte(Duration::from_secs(3)));
        assert_eq!(slow.first_delay, Duration::from_secs(3));
    }

    #[test]
    fn a_continuation_gets_the_rest_of_the_same_answer() {
        let s = ReplyScript {
            same_for_all: true,
            chunk_chars: 1000,
            ..ReplyScript::default()
        };
        let text = |p: Plan| String::from_utf8(p.pieces.concat()).unwrap();
        let whole = text(plan(
            &s,
            None,
            1,
            (&["user".into()], &["Why?".into()]),
            "5X",
        ));
        assert_eq!(whole, fleet_answer("Why?"));
        let roles = ["user".to_owned(), "assistant".to_owned()];
        let partial = whole[..40].to_owned();
        let rest = text(plan(&s, None, 2, (&roles, &["Why?".into(), partial]), "5X"));
        assert_eq!(format!("{}{rest}", &whole[..40]), whole);
        // A restarting miner answers the whole text again.
        let again = plan(
            &s,
            Some(&Misbehaviour::Restart),
            2,
            (&roles, &["Why?".into(), whole[..40].to_owned()]),
            "5X",
        );
        assert_eq!(text(again), whole);
        // A stalling miner continues as far as it would have gone, then stalls again.
        let stall = plan(
            &s,
            Some(&Misbehaviour::StallAfter { chunks: 0 }),
            3,
            (&roles, &["Why?".into(), "x".into()]),
            "5X",
        );
        assert_eq!(stall.tail, Tail::Stall);
    }
}
