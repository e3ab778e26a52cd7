//! Our `Dendrite` against a simulated miner over real sockets: every protocol, every
//! misbehaviour and its `OutcomeKind`, and a dropped reply closing the miner's stream.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use std::time::Duration;

use common::{VALIDATOR_SS58, wallet_hotkey};
use sn1_bittensor::dendrite::{
    Deadline, Dendrite, DendriteConfig, MinerProtocol, MinerReply, Outcome, OutcomeKind, Prompt,
    ReplyLimits,
};
use sn1_bittensor::synapse::SynapseShape;
use sn1_simnet::miner::{
    Blacklist, CallProtocol, ChatMode, Misbehaviour, REFUSAL_TEXT, ReplyScript, SimMiner,
    SimMinerConfig, SimMinerHandle, WHITESPACE_TEXT, default_answer, sim_hotkey,
};
use tokio::time::Instant;

const QUESTION: &str = "What is the capital of France? Answer in one wörd 😀.";

fn dendrite() -> Dendrite {
    Dendrite::new(wallet_hotkey("sn1-validator"), DendriteConfig::default()).unwrap()
}

fn config(uid: u16) -> SimMinerConfig {
    let mut config = SimMinerConfig::new(uid, sim_hotkey(uid).unwrap());
    config.reply = ReplyScript {
        chunk_chars: 7,
        chunk_delay: Duration::from_millis(2),
        ..ReplyScript::default()
    };
    config
}

async fn miner(uid: u16, misbehaviour: Option<Misbehaviour>) -> SimMinerHandle {
    let mut config = config(uid);
    config.misbehaviour = misbehaviour;
    SimMiner::spawn(config).await.unwrap()
}

fn prompt() -> Prompt {
    Prompt {
        roles: vec!["system".into(), "user".into()],
        messages: vec!["Be brief.".into(), QUESTION.into()],
        seed: Some(42),
        sampling: Default::default(),
    }
}

fn limits() -> ReplyLimits {
    ReplyLimits {
        first_byte_timeout: Duration::from_secs(5),
        max_bytes: 64 * 1024,
    }
}

/// Time a query gets unless a test says otherwise.
const BUDGET: Duration = Duration::from_secs(5);

fn deadline() -> Deadline {
    Deadline::after(BUDGET)
}

fn classic() -> MinerProtocol {
    MinerProtocol::Synapse(SynapseShape::Classic)
}

fn v212() -> MinerProtocol {
    MinerProtocol::Synapse(SynapseShape::V212 {
        task_name: "QuestionAnsweringTask".into(),
        target_model: None,
        seed: None,
    })
}

async fn run(mut reply: MinerReply) -> (Vec<String>, Outcome) {
    let mut chunks = Vec::new();
    while let Some(chunk) = reply.next_chunk().await {
        chunks.push(chunk);
    }
    (chunks, reply.outcome())
}

async fn query(
    miner: &SimMinerHandle,
    protocol: &MinerProtocol,
    limits: ReplyLimits,
    within: Duration,
) -> Outcome {
    let reply = dendrite().query(
        &miner.target(),
        &prompt(),
        protocol,
        limits,
        Deadline::after(within),
    );
    run(reply).await.1
}

#[tokio::test]
async fn every_protocol_streams_the_full_answer() {
    let cases = [
        (classic(), ChatMode::Epistula, CallProtocol::Synapse),
        (v212(), ChatMode::Epistula, CallProtocol::Synapse),
        (
            MinerProtocol::Epistula,
            ChatMode::Epistula,
            CallProtocol::Epistula,
        ),
        (
            MinerProtocol::OpenAi,
            ChatMode::OpenAi,
            CallProtocol::OpenAi,
        ),
    ];
    for (i, (protocol, chat, recorded)) in cases.into_iter().enumerate() {
        let uid = 10 + i as u16;
        let mut config = config(uid);
        config.chat = chat;
        config.require_task_name = protocol == v212();
        config.blacklist = Blacklist::allow_only([VALIDATOR_SS58]);
        let miner = SimMiner::spawn(config).await.unwrap();
        let (chunks, outcome) =
            run(dendrite().query(&miner.target(), &prompt(), &protocol, limits(), deadline()))
                .await;
        let expected = default_answer(uid, QUESTION);
        assert_eq!(outcome.kind, OutcomeKind::Ok, "{protocol:?}: {outcome:?}");
        assert_eq!(outcome.text, expected, "{protocol:?}");
        assert_eq!(chunks.concat(), expected);
        assert!(chunks.len() > 5, "{protocol:?} streamed: {chunks:?}");
        assert_eq!(outcome.chunks, chunks.len());
        assert_eq!(outcome.http_status, Some(200));
        assert!(outcome.time_to_first_byte.is_some());

        let calls = miner.calls();
        assert_eq!(calls.len(), 1, "{protocol:?}");
        assert_eq!(calls[0].protocol, recorded);
        assert!(calls[0].accepted);
        assert_eq!(calls[0].messages, vec!["Be brief.", QUESTION]);
        assert_eq!(calls[0].roles, vec!["system", "user"]);
        let expected_hotkey = match recorded {
            CallProtocol::OpenAi => None,
            _ => Some(VALIDATOR_SS58),
        };
        assert_eq!(calls[0].dendrite_hotkey.as_deref(), expected_hotkey);
    }
}

#[tokio::test]
async fn concurrent_queries_to_one_axon_are_all_accepted() {
    // A real axon refuses a nonce that is not newer than the last one it saw for the same
    // (hotkey, uuid); concurrent requests travel on different connections and may arrive out
    // of order. The dendrite's per-axon uuid lanes must keep every one of them acceptable.
    let miner = miner(20, None).await;
    let dendrite = dendrite();
    for _round in 0..3 {
        let replies: Vec<MinerReply> = (0..24)
            .map(|_| dendrite.query(&miner.target(), &prompt(), &classic(), limits(), deadline()))
            .collect();
        let outcomes = futures::future::join_all(replies.into_iter().map(run)).await;
        for (_, outcome) in &outcomes {
            assert_eq!(outcome.kind, OutcomeKind::Ok, "{outcomes:?}");
        }
    }
    // Several uuids were used at once, the main one among them, never more than MAX_LANES.
    let calls = miner.calls();
    assert_eq!(calls.len(), 72);
    assert!(calls.iter().all(|c| c.accepted));
    // One after the other they are all accepted too.
    for _ in 0..3 {
        let reply = dendrite.query(&miner.target(), &prompt(), &classic(), limits(), deadline());
        assert_eq!(run(reply).await.1.kind, OutcomeKind::Ok);
    }
}

#[tokio::test]
async fn blacklisted_dendrite_gets_axon_errors_on_both_protocols() {
    let mut config = config(30);
    config.blacklist = Blacklist::allow_only(["5SomebodyElse"]);
    let miner = SimMiner::spawn(config).await.unwrap();
    let outcome = query(&miner, &classic(), limits(), BUDGET).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::AxonError {
            status: 403,
            message: format!(
                "Forbidden. Key is blacklisted: Unrecognized hotkey {VALIDATOR_SS58}."
            ),
        }
    );
    assert_eq!(outcome.text, "");
    let outcome = query(&miner, &MinerProtocol::Epistula, limits(), BUDGET).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::AxonError {
            status: 401,
            message: "Signer not in metagraph".into()
        }
    );
}

#[tokio::test]
async fn epistula_for_another_miner_is_refused() {
    let miner = miner(31, None).await;
    let mut target = miner.target();
    target.hotkey = sim_hotkey(99).unwrap().ss58().to_owned();
    let reply = dendrite().query(
        &target,
        &prompt(),
        &MinerProtocol::Epistula,
        limits(),
        deadline(),
    );
    let outcome = run(reply).await.1;
    assert_eq!(
        outcome.kind,
        OutcomeKind::AxonError {
            status: 400,
            message: "Bad Request, message is not intended for self".into()
        }
    );
    // The synapse is signed for the wrong axon hotkey too: a signature mismatch.
    let reply = dendrite().query(&target, &prompt(), &classic(), limits(), deadline());
    match run(reply).await.1.kind {
        OutcomeKind::AxonError {
            status: 401,
            message,
        } => {
            assert!(
                message.starts_with("Not Verified with error: Signature mismatch"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn misbehaviours_map_to_their_outcomes_on_every_protocol() {
    for protocol in [classic(), MinerProtocol::Epistula] {
        let check = async |m: Misbehaviour, limits: ReplyLimits, within: Duration| -> Outcome {
            let miner = miner(40, Some(m)).await;
            let outcome = query(&miner, &protocol, limits, within).await;
            miner.shutdown().await;
            outcome
        };
        let name = format!("{protocol:?}");

        let slow = ReplyLimits {
            first_byte_timeout: Duration::from_millis(200),
            ..limits()
        };
        let o = check(
            Misbehaviour::SlowFirstByte(Duration::from_secs(3)),
            slow,
            BUDGET,
        )
        .await;
        assert_eq!(
            o.kind,
            OutcomeKind::Timeout {
                before_first_byte: true
            },
            "{name}"
        );
        assert!(o.total_time < Duration::from_secs(1), "{name}");

        let short = Duration::from_millis(500);
        let o = check(Misbehaviour::StallAfter { chunks: 2 }, limits(), short).await;
        assert_eq!(
            o.kind,
            OutcomeKind::Timeout {
                before_first_byte: false
            },
            "{name}"
        );
        assert_eq!(
            o.text,
            default_answer(40, QUESTION)
                .chars()
                .take(14)
                .collect::<String>(),
            "{name}"
        );

        let o = check(Misbehaviour::ErrorStatus(500), limits(), BUDGET).await;
        match &o.kind {
            OutcomeKind::AxonError {
                status: 500,
                message,
            } => {
                assert!(
                    message.starts_with("Internal Server Error #"),
                    "{name}: {message}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(o.text, "", "{name}");

        let capped = ReplyLimits {
            max_bytes: 1000,
            ..limits()
        };
        let o = check(Misbehaviour::Oversize(5000), capped, BUDGET).await;
        assert_eq!(o.kind, OutcomeKind::Oversize, "{name}");
        assert_eq!(o.text.len(), 1000, "{name}");

        let o = check(Misbehaviour::InvalidUtf8, limits(), BUDGET).await;
        assert!(
            matches!(o.kind, OutcomeKind::Malformed { .. }),
            "{name}: {o:?}"
        );
        assert_eq!(
            o.text, "Miner 4",
            "{name}: the text before the bad bytes is kept"
        );

        let o = check(Misbehaviour::Reset { after_chunks: 2 }, limits(), BUDGET).await;
        assert!(
            matches!(o.kind, OutcomeKind::Malformed { .. }),
            "{name}: {o:?}"
        );
        assert_eq!(o.text, "Miner 40 answe", "{name}");

        let o = check(Misbehaviour::Empty, limits(), BUDGET).await;
        assert_eq!((o.kind, o.text.as_str()), (OutcomeKind::Ok, ""), "{name}");

        let o = check(Misbehaviour::Whitespace, limits(), BUDGET).await;
        assert_eq!(
            (o.kind, o.text.as_str()),
            (OutcomeKind::Ok, WHITESPACE_TEXT),
            "{name}"
        );

        let o = check(Misbehaviour::Refusal, limits(), BUDGET).await;
        assert_eq!(
            (o.kind, o.text.as_str()),
            (OutcomeKind::Ok, REFUSAL_TEXT),
            "{name}"
        );

        let o = check(Misbehaviour::EchoPrompt, limits(), BUDGET).await;
        assert_eq!(
            (o.kind, o.text.as_str()),
            (OutcomeKind::Ok, QUESTION),
            "{name}"
        );

        let o = check(Misbehaviour::ErrorJsonAsText, limits(), BUDGET).await;
        assert_eq!(o.kind, OutcomeKind::Ok, "{name}");
        assert_eq!(
            o.text,
            format!(
                r#"{{"message":"Forbidden. Key is blacklisted: Unrecognized hotkey {VALIDATOR_SS58}."}}"#
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn dropping_a_reply_mid_stream_closes_the_miners_stream() {
    for protocol in [classic(), MinerProtocol::Epistula] {
        let miner = miner(50, Some(Misbehaviour::StallAfter { chunks: 1 })).await;
        let mut reply =
            dendrite().query(&miner.target(), &prompt(), &protocol, limits(), deadline());
        assert_eq!(reply.next_chunk().await.as_deref(), Some("Miner 5"));
        assert_eq!(miner.open_streams(), 1);
        let dropped = Instant::now();
        drop(reply);
        let deadline = dropped + Duration::from_secs(1);
        let closed = loop {
            if let Some(at) = miner.calls()[0].closed_at {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "{protocol:?}: the miner never saw the close"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(closed.duration_since(dropped) < Duration::from_secs(1));
        let call = &miner.calls()[0];
        assert!(call.dropped_early(), "{call:?}");
        assert_eq!(call.chunks_sent, 1);
        assert_eq!(miner.open_streams(), 0);
    }
}

#[tokio::test]
async fn shutdown_ends_stalled_streams_and_stops_listening() {
    let miner = miner(60, Some(Misbehaviour::StallAfter { chunks: 1 })).await;
    let target = miner.target();
    let mut reply = dendrite().query(&target, &prompt(), &classic(), limits(), deadline());
    assert!(reply.next_chunk().await.is_some());
    let started = Instant::now();
    miner.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    while reply.next_chunk().await.is_some() {}
    assert!(matches!(
        reply.outcome().kind,
        OutcomeKind::Malformed { .. }
    ));
    let outcome = run(dendrite().query(&target, &prompt(), &classic(), limits(), deadline()))
        .await
        .1;
    assert!(
        matches!(outcome.kind, OutcomeKind::ConnectFailure { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn misbehaviour_can_change_at_run_time() {
    let miner = miner(70, None).await;
    assert_eq!(
        query(&miner, &classic(), limits(), BUDGET).await.kind,
        OutcomeKind::Ok
    );
    miner.set_misbehaviour(Some(Misbehaviour::ErrorStatus(503)));
    let kind = query(&miner, &classic(), limits(), BUDGET).await.kind;
    assert!(
        matches!(kind, OutcomeKind::AxonError { status: 503, .. }),
        "{kind:?}"
    );
    miner.set_misbehaviour(None);
    assert_eq!(
        query(&miner, &classic(), limits(), BUDGET).await.kind,
        OutcomeKind::Ok
    );
}
