//! Which miners a job asks: candidates from the metagraph (serving axons that are not
//! validators, minus `exclude`: [`eligible`]), then k of them by the job's sampling mode
//! ([`rank`] orders them all: the first k are asked, the next are the spares a stalled answer
//! fails over to). One per coldkey / IP, when asked for, applies to that order, so it keeps
//! each operator's best neuron; `reliable` also spreads the k slots over coldkeys.

use crate::reliability::{LITTLE_DATA, MinerKey, Scoreboard};
use rand::Rng;
use rand::seq::SliceRandom;
use sn1_contracts::job::{Exclusion, SamplingMode};
use sn1_contracts::metagraph::{Metagraph, Neuron};
use std::collections::HashSet;

/// Rules that hold for every job of a deployment.
#[derive(Clone, Debug)]
pub struct SelectionPolicy {
    /// A neuron with a validator permit and at least this stake (τ) is a validator, never asked.
    pub validator_stake_threshold: f64,
    /// Ask at most one miner per coldkey (one operator's many hotkeys count once).
    pub one_per_coldkey: bool,
    /// Ask at most one miner per IP address.
    pub one_per_ip: bool,
}

impl Default for SelectionPolicy {
    fn default() -> Self {
        SelectionPolicy {
            validator_stake_threshold: 4096.0,
            one_per_coldkey: false,
            one_per_ip: false,
        }
    }
}

/// The serving non-validators minus `exclude`, in uid order, every neuron of a coldkey or IP
/// kept: what [`rank`] orders (one per coldkey / IP applies after that).
pub fn eligible<'a>(
    metagraph: &'a Metagraph,
    exclude: &[Exclusion],
    policy: &SelectionPolicy,
) -> Vec<&'a Neuron> {
    let excluded_uids: HashSet<u16> = exclude
        .iter()
        .filter_map(|e| match e {
            Exclusion::Uid(uid) => Some(*uid),
            Exclusion::Hotkey(_) => None,
        })
        .collect();
    let excluded_hotkeys: HashSet<&str> = exclude
        .iter()
        .filter_map(|e| match e {
            Exclusion::Hotkey(h) => Some(h.as_str()),
            Exclusion::Uid(_) => None,
        })
        .collect();
    let mut neurons: Vec<&Neuron> = metagraph
        .neurons
        .iter()
        .filter(|n| n.is_serving())
        .filter(|n| !n.is_validator(policy.validator_stake_threshold))
        .filter(|n| !excluded_uids.contains(&n.uid))
        .filter(|n| !excluded_hotkeys.contains(n.hotkey.as_str()))
        .collect();
    neurons.sort_by_key(|n| n.uid);
    neurons
}

/// `ranked` (best first) with the policy's one per coldkey / IP applied, the first (best)
/// neuron of each kept; then the first `slots` places go to the best neuron of as many
/// coldkeys as there are places (an empty coldkey counts as its own), the rest following in
/// their order. So one operator's hotkeys take a second of those places only when fewer
/// coldkeys than places are left, while the places after them (failover spares) stay in rank
/// order. IPs are only spread by `one_per_ip`: several miners of one operator behind one
/// address are common, and spreading them by default would trade good miners for bad ones.
fn spread<T>(
    ranked: Vec<T>,
    neuron: impl Fn(&T) -> &Neuron,
    policy: &SelectionPolicy,
    slots: usize,
) -> Vec<T> {
    let mut coldkeys: HashSet<String> = HashSet::new();
    let mut ips: HashSet<String> = HashSet::new();
    let mut kept = Vec::with_capacity(ranked.len());
    for item in ranked {
        let n = neuron(&item);
        let seen_coldkey = !n.coldkey.is_empty() && coldkeys.contains(&n.coldkey);
        let seen_ip = ips.contains(&n.axon_ip);
        if (policy.one_per_coldkey && seen_coldkey) || (policy.one_per_ip && seen_ip) {
            continue;
        }
        coldkeys.insert(n.coldkey.clone());
        ips.insert(n.axon_ip.clone());
        kept.push(item);
    }
    let mut front = Vec::with_capacity(kept.len());
    let mut rest = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    for item in kept {
        let n = neuron(&item);
        if front.len() < slots && (n.coldkey.is_empty() || taken.insert(n.coldkey.clone())) {
            front.push(item);
        } else {
            rest.push(item);
        }
    }
    front.extend(rest);
    front
}

/// Picks `k` of the candidates (all of them when there are fewer).
pub fn sample<'a>(
    mut candidates: Vec<&'a Neuron>,
    k: usize,
    mode: SamplingMode,
    rng: &mut impl rand::Rng,
) -> Vec<&'a Neuron> {
    match mode {
        SamplingMode::Random | SamplingMode::Reliable => {
            candidates.shuffle(rng);
        }
        SamplingMode::TopIncentive => {
            // Ties broken at random so equal miners share the load.
            candidates.shuffle(rng);
            candidates.sort_by(|a, b| b.incentive.total_cmp(&a.incentive));
        }
    }
    candidates.truncate(k);
    candidates
}

/// One miner picked, as the audit log records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Pick {
    /// The miner.
    pub uid: u16,
    /// Its reliability score when picked (`None`: never judged).
    pub score: Option<f64>,
    /// Judged replies behind the score (decayed).
    pub judged: f64,
    /// Picked to explore (at random among little-known miners), not for its score.
    pub explored: bool,
}

/// Every candidate in the order `mode` prefers them, one per coldkey / IP as `policy` asks
/// (the preferred one kept), and how the first `k` were picked (empty unless the mode is
/// [`SamplingMode::Reliable`]). `reliable` ranks by score, then spreads operators: a coldkey
/// gets a second of the k slots only when fewer than k coldkeys are left, so many hotkeys of
/// one operator cannot fill every slot. Each slot is, with probability `exploration`, a random
/// little-known miner instead (of a coldkey not yet picked, under the same rule); when there
/// is none, the ranked one is kept: known miners are not tried at random, a recovered one
/// comes back once its tally has decayed below [`LITTLE_DATA`].
pub fn rank<'a>(
    candidates: Vec<&'a Neuron>,
    k: usize,
    mode: SamplingMode,
    policy: &SelectionPolicy,
    board: &Scoreboard,
    exploration: f64,
    rng: &mut impl Rng,
) -> (Vec<&'a Neuron>, Vec<Pick>) {
    if mode != SamplingMode::Reliable {
        let n = candidates.len();
        let ordered = sample(candidates, n, mode, rng);
        return (spread(ordered, |n| *n, policy, 0), Vec::new());
    }
    let key = |n: &Neuron| MinerKey::new(&n.hotkey, &n.axon_ip, n.axon_port);
    let mut scored: Vec<(&Neuron, Option<crate::reliability::Tally>)> = candidates
        .into_iter()
        .map(|n| (n, board.tally(&key(n))))
        .collect();
    // Ties (e.g. every unknown miner) broken at random so equal miners share the load.
    scored.shuffle(rng);
    let score = |t: &Option<crate::reliability::Tally>| t.unwrap_or_default().score();
    scored.sort_by(|a, b| score(&b.1).total_cmp(&score(&a.1)));
    let mut scored = spread(scored, |(n, _)| *n, policy, k);
    let mut picks = Vec::with_capacity(k);
    // Coldkeys among the picks so far (an empty coldkey counts as its own).
    let mut taken: HashSet<&str> = HashSet::new();
    for slot in 0..k.min(scored.len()) {
        // While a coldkey not yet picked is left, every pick (explored or not) is one: spread
        // ordered the ranked ones so, and an exploration pick must not undo it.
        let fresh = |n: &Neuron| n.coldkey.is_empty() || !taken.contains(n.coldkey.as_str());
        let mut pool: Vec<usize> = (slot..scored.len())
            .filter(|&i| fresh(scored[i].0))
            .collect();
        if pool.is_empty() {
            pool = (slot..scored.len()).collect();
        }
        // A little-known miner from further down the ranking; none: the ranked one is kept.
        let little: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&i| scored[i].1.is_none_or(|t| t.judged < LITTLE_DATA))
            .collect();
        let explore = !little.is_empty() && rng.random_bool(exploration.clamp(0.0, 1.0));
        let choice = match explore {
            true => little[rng.random_range(0..little.len())],
            false => pool[0],
        };
        scored[slot..=choice].rotate_right(1);
        let (n, tally) = scored[slot];
        taken.insert(n.coldkey.as_str());
        picks.push(Pick {
            uid: n.uid,
            score: tally.map(|t| (t.score() * 1000.0).round() / 1000.0),
            judged: tally.map_or(0.0, |t| (t.judged * 10.0).round() / 10.0),
            explored: explore,
        });
    }
    (scored.into_iter().map(|(n, _)| n).collect(), picks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neuron(uid: u16, ip: &str, port: u16) -> Neuron {
        Neuron {
            uid,
            hotkey: format!("hk{uid}"),
            coldkey: format!("ck{}", uid / 2),
            active: true,
            axon_ip: ip.into(),
            axon_port: port,
            axon_ip_type: 4,
            stake_tao: 0.0,
            incentive: uid as f64 / 100.0,
            validator_permit: false,
        }
    }

    fn graph() -> Metagraph {
        let mut neurons: Vec<Neuron> = (0..10)
            .map(|u| neuron(u, &format!("10.0.0.{}", u / 3), 8000 + u))
            .collect();
        neurons[1].axon_ip = "0.0.0.0".into();
        neurons[2].axon_port = 0;
        neurons[3].validator_permit = true;
        neurons[3].stake_tao = 5000.0;
        neurons[4].validator_permit = true; // permit but little stake: still a miner
        neurons[4].stake_tao = 10.0;
        Metagraph {
            netuid: 1,
            block: 0,
            neurons,
        }
    }

    /// [`rank`] in `reliable` mode over every candidate of `mg` under `p`.
    fn reliable<'a>(
        mg: &'a Metagraph,
        k: usize,
        p: &SelectionPolicy,
        board: &Scoreboard,
        exploration: f64,
    ) -> (Vec<&'a Neuron>, Vec<Pick>) {
        let candidates = eligible(mg, &[], p);
        let mode = SamplingMode::Reliable;
        rank(candidates, k, mode, p, board, exploration, &mut rand::rng())
    }

    fn uids(ns: &[&Neuron]) -> Vec<u16> {
        ns.iter().map(|n| n.uid).collect()
    }

    #[test]
    fn serving_non_validators_minus_exclude() {
        let mg = graph();
        let p = SelectionPolicy::default();
        assert_eq!(uids(&eligible(&mg, &[], &p)), vec![0, 4, 5, 6, 7, 8, 9]);
        let ex = [Exclusion::Uid(5), Exclusion::Hotkey("hk7".into())];
        assert_eq!(uids(&eligible(&mg, &ex, &p)), vec![0, 4, 6, 8, 9]);
    }

    #[test]
    fn one_per_coldkey_and_ip_keeps_the_preferred_neuron() {
        // Coldkeys pair uids (4 5, 6 7, 8 9), IPs group them by three (4 5, 6 7 8, 9);
        // top_incentive prefers the highest uid.
        let mg = graph();
        let board = Scoreboard::new(std::time::Duration::from_secs(300));
        let kept = |p: &SelectionPolicy| {
            let pool = eligible(&mg, &[], p);
            let mode = SamplingMode::TopIncentive;
            uids(&rank(pool, 0, mode, p, &board, 0.0, &mut rand::rng()).0)
        };
        let p = SelectionPolicy {
            one_per_coldkey: true,
            ..Default::default()
        };
        assert_eq!(kept(&p), vec![9, 7, 5, 0]);
        let p = SelectionPolicy {
            one_per_ip: true,
            ..Default::default()
        };
        assert_eq!(kept(&p), vec![9, 8, 5, 0]);
    }

    #[test]
    fn sampling_modes() {
        let mg = graph();
        let p = SelectionPolicy::default();
        let mut rng = rand::rng();
        let top = sample(
            eligible(&mg, &[], &p),
            3,
            SamplingMode::TopIncentive,
            &mut rng,
        );
        assert_eq!(uids(&top), vec![9, 8, 7]);
        let all = sample(eligible(&mg, &[], &p), 50, SamplingMode::Random, &mut rng);
        assert_eq!(all.len(), 7);
        let two = sample(eligible(&mg, &[], &p), 2, SamplingMode::Random, &mut rng);
        assert_eq!(two.len(), 2);
        assert_ne!(two[0].uid, two[1].uid);
    }

    #[test]
    fn reliable_ranks_by_score_and_explores_little_known_miners() {
        use crate::fanout::MinerRecord;
        use sn1_bittensor::reply::OutcomeKind;
        let mg = graph();
        let p = SelectionPolicy::default();
        let board = Scoreboard::new(std::time::Duration::from_secs(300));
        let record = |n: &Neuron, kind: OutcomeKind, text: &str| {
            MinerRecord::ended(target(n), kind, text, 30)
        };
        for _ in 0..5 {
            let records: Vec<MinerRecord> = mg
                .neurons
                .iter()
                .map(|n| match n.uid {
                    // 6 and 8 answer; 0 fails.
                    6 | 8 => record(n, OutcomeKind::Ok, ANSWER),
                    0 => record(
                        n,
                        OutcomeKind::AxonError {
                            status: 500,
                            message: "x".into(),
                        },
                        "",
                    ),
                    _ => record(n, OutcomeKind::Ok, ""),
                })
                .collect();
            board.observe(&records, "q");
        }
        let (order, picks) = reliable(&mg, 2, &p, &board, 0.0);
        let mut top = uids(&order[..2]);
        top.sort();
        assert_eq!(top, vec![6, 8]);
        assert_eq!(order.len(), 7, "the rest are spares");
        assert!(
            picks
                .iter()
                .all(|p| !p.explored && p.score.is_some_and(|s| s > 0.7))
        );
        // A changed axon starts fresh: uid 6 at another port is unknown.
        let mut moved = mg.clone();
        moved.neurons[6].axon_port += 1;
        let (order, _) = reliable(&moved, 1, &p, &board, 0.0);
        assert_eq!(order[0].uid, 8);
        // Exploration always, but no miner is little-known: the ranked ones are kept.
        let (order, picks) = reliable(&mg, 2, &p, &board, 1.0);
        let mut top = uids(&order[..2]);
        top.sort();
        assert_eq!(top, vec![6, 8]);
        assert!(picks.iter().all(|p| !p.explored));
        // A miner never seen (a new hotkey; uid 9's old one answered empty, and a bad score
        // follows its hotkey to another axon) is: exploration picks it.
        let mut fresh = mg.clone();
        fresh.neurons[9].hotkey = "hk-fresh".into();
        let (order, picks) = reliable(&fresh, 1, &p, &board, 1.0);
        assert_eq!(order[0].uid, 9);
        assert!(picks[0].explored && picks[0].score.is_none());
    }

    #[test]
    fn exploration_picks_do_not_give_one_coldkey_a_second_slot() {
        // One operator with 50 hotkeys never seen (uids 0..50); ten others, each with one
        // good, known hotkey (50..60).
        let neurons = (0..60)
            .map(|u| {
                let mut n = neuron(u, &format!("10.2.{}.{}", u / 200, u % 200), 8091);
                n.coldkey = if u < 50 {
                    "whale".into()
                } else {
                    format!("ck{u}")
                };
                n
            })
            .collect();
        let mg = Metagraph {
            netuid: 1,
            block: 0,
            neurons,
        };
        let board = Scoreboard::new(std::time::Duration::from_secs(300));
        for _ in 0..5 {
            let records: Vec<_> = mg.neurons[50..]
                .iter()
                .map(|n| answer(n, ANSWER, 100))
                .collect();
            board.observe(&records, "q");
        }
        let p = SelectionPolicy::default();
        let mut rng = rand::rng();
        for _ in 0..50 {
            let (order, picks) = reliable(&mg, 5, &p, &board, 1.0);
            let coldkeys: HashSet<&str> = order[..5].iter().map(|n| n.coldkey.as_str()).collect();
            // Before: every slot explored among the 50 fresh hotkeys, nearly all the whale's.
            assert_eq!(coldkeys.len(), 5, "{:?}", uids(&order[..5]));
            // The whale is explored once; the other slots keep the ranked miners.
            assert_eq!(picks.iter().filter(|p| p.explored).count(), 1);
            assert_eq!(order.len(), 60, "every other hotkey stays a spare");
        }
        // Fewer coldkeys than slots: a coldkey may take a second slot, by exploration too.
        let few: Vec<&Neuron> = eligible(&mg, &[], &p)
            .into_iter()
            .filter(|n| n.uid < 52)
            .collect();
        let (order, _) = rank(few, 5, SamplingMode::Reliable, &p, &board, 1.0, &mut rng);
        let whales = order[..5].iter().filter(|n| n.uid < 50).count();
        assert_eq!(whales, 3, "{:?}", uids(&order[..5]));
    }

    fn target(n: &Neuron) -> sn1_bittensor::dendrite::MinerTarget {
        sn1_bittensor::dendrite::MinerTarget {
            uid: n.uid,
            ip: n.axon_ip.clone(),
            port: n.axon_port,
            hotkey: n.hotkey.clone(),
        }
    }

    fn answer(n: &Neuron, text: &str, ttfb_ms: u64) -> crate::fanout::MinerRecord {
        let ok = sn1_bittensor::reply::OutcomeKind::Ok;
        crate::fanout::MinerRecord::ended(target(n), ok, text, ttfb_ms)
    }

    /// uids 0..10: one operator ("whale", ten hotkeys on ten IPs); 10..14: four others.
    fn operators() -> Metagraph {
        let neurons = (0..14)
            .map(|u| {
                let mut n = neuron(u, &format!("10.1.0.{u}"), 8091);
                n.coldkey = if u < 10 {
                    "whale".into()
                } else {
                    format!("ck{u}")
                };
                n
            })
            .collect();
        Metagraph {
            netuid: 1,
            block: 0,
            neurons,
        }
    }

    const ANSWER: &str = "A real answer of a few sentences, long enough to be one: the \
        question is answered, with the reasons and an example, as an LLM miner would.";

    #[test]
    fn fast_junk_miners_do_not_outrank_good_ones() {
        let mg = operators();
        let board = Scoreboard::new(std::time::Duration::from_secs(300));
        for _ in 0..10 {
            // The whale answers "ok" in 10 ms from every hotkey; the others answer in 600 ms.
            let records: Vec<_> = mg
                .neurons
                .iter()
                .map(|n| match n.uid < 10 {
                    true => answer(n, "ok", 10),
                    false => answer(n, ANSWER, 600),
                })
                .collect();
            board.observe(&records, "q");
        }
        let p = SelectionPolicy::default();
        for _ in 0..20 {
            let (order, _) = reliable(&mg, 3, &p, &board, 0.0);
            assert!(order[..3].iter().all(|n| n.uid >= 10), "{:?}", uids(&order));
        }
    }

    #[test]
    fn one_coldkey_with_many_hotkeys_cannot_take_every_slot() {
        let mg = operators();
        let board = Scoreboard::new(std::time::Duration::from_secs(300));
        for _ in 0..10 {
            // Everyone answers well; the whale's hotkeys are faster, uid 7 the fastest.
            let records: Vec<_> = mg
                .neurons
                .iter()
                .map(|n| match n.uid {
                    7 => answer(n, ANSWER, 5),
                    0..10 => answer(n, ANSWER, 20 + u64::from(n.uid)),
                    _ => answer(n, ANSWER, 400),
                })
                .collect();
            board.observe(&records, "q");
        }
        let p = SelectionPolicy::default();
        let mut rng = rand::rng();
        let (order, picks) = reliable(&mg, 3, &p, &board, 0.0);
        let whales: Vec<u16> = order[..3]
            .iter()
            .filter(|n| n.uid < 10)
            .map(|n| n.uid)
            .collect();
        assert_eq!(
            whales,
            vec![7],
            "one slot, its best hotkey: {:?}",
            uids(&order)
        );
        assert_eq!(picks.len(), 3);
        assert_eq!(order.len(), 14, "the other hotkeys stay spares");
        assert!(
            order[3..].iter().take(9).all(|n| n.uid < 10),
            "spares in rank order"
        );
        // Fewer coldkeys than slots: the whale fills the rest.
        let few = rank(
            eligible(&mg, &[], &p)
                .into_iter()
                .filter(|n| n.uid <= 10)
                .collect(),
            3,
            SamplingMode::Reliable,
            &p,
            &board,
            0.0,
            &mut rng,
        )
        .0;
        assert_eq!(few[..3].iter().filter(|n| n.uid < 10).count(), 2);
        // one_per_coldkey, applied after ranking, keeps the best hotkey (7), not the lowest uid.
        let strict = SelectionPolicy {
            one_per_coldkey: true,
            ..Default::default()
        };
        assert_eq!(
            uids(&eligible(&mg, &[], &strict))[0],
            0,
            "uid order before ranking"
        );
        let (order, _) = reliable(&mg, 3, &strict, &board, 0.0);
        assert_eq!(order.len(), 5);
        assert_eq!(order[0].uid, 7);
        // And for the other modes it applies to their order (here: incentive, uid / 100).
        let (order, _) = rank(
            eligible(&mg, &[], &strict),
            3,
            SamplingMode::TopIncentive,
            &strict,
            &board,
            0.0,
            &mut rng,
        );
        assert_eq!(uids(&order), vec![13, 12, 11, 10, 9]);
    }
}
