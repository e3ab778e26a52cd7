//! Which miners a job asks: candidates from the metagraph (serving axons that are not
//! validators, minus `exclude`, optionally one per coldkey / IP), then k of them by the job's
//! sampling mode.

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

/// The neurons a job may ask, in uid order.
pub fn candidates<'a>(
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
    if policy.one_per_coldkey {
        let mut seen = HashSet::new();
        neurons.retain(|n| n.coldkey.is_empty() || seen.insert(n.coldkey.clone()));
    }
    if policy.one_per_ip {
        let mut seen = HashSet::new();
        neurons.retain(|n| seen.insert(n.axon_ip.clone()));
    }
    neurons
}

/// Picks `k` of the candidates (all of them when there are fewer).
pub fn sample<'a>(
    mut candidates: Vec<&'a Neuron>,
    k: usize,
    mode: SamplingMode,
    rng: &mut impl rand::Rng,
) -> Vec<&'a Neuron> {
    match mode {
        SamplingMode::Random => {
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

    fn uids(ns: &[&Neuron]) -> Vec<u16> {
        ns.iter().map(|n| n.uid).collect()
    }

    #[test]
    fn serving_non_validators_minus_exclude() {
        let mg = graph();
        let p = SelectionPolicy::default();
        assert_eq!(uids(&candidates(&mg, &[], &p)), vec![0, 4, 5, 6, 7, 8, 9]);
        let ex = [Exclusion::Uid(5), Exclusion::Hotkey("hk7".into())];
        assert_eq!(uids(&candidates(&mg, &ex, &p)), vec![0, 4, 6, 8, 9]);
    }

    #[test]
    fn one_per_coldkey_and_ip() {
        let mg = graph();
        let p = SelectionPolicy {
            one_per_coldkey: true,
            ..Default::default()
        };
        assert_eq!(uids(&candidates(&mg, &[], &p)), vec![0, 4, 6, 8]);
        let p = SelectionPolicy {
            one_per_ip: true,
            ..Default::default()
        };
        assert_eq!(uids(&candidates(&mg, &[], &p)), vec![0, 4, 6, 9]);
    }

    #[test]
    fn sampling_modes() {
        let mg = graph();
        let p = SelectionPolicy::default();
        let mut rng = rand::rng();
        let top = sample(
            candidates(&mg, &[], &p),
            3,
            SamplingMode::TopIncentive,
            &mut rng,
        );
        assert_eq!(uids(&top), vec![9, 8, 7]);
        let all = sample(candidates(&mg, &[], &p), 50, SamplingMode::Random, &mut rng);
        assert_eq!(all.len(), 7);
        let two = sample(candidates(&mg, &[], &p), 2, SamplingMode::Random, &mut rng);
        assert_eq!(two.len(), 2);
        assert_ne!(two[0].uid, two[1].uid);
    }
}
