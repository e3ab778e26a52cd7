//! Behaviour profiles: a realistic, reproducible mix of miners to measure answer quality on.
//!
//! On a real subnet most miners are not good. A [`Profile`] gives the share of each
//! [`Behaviour`] (fast and good, slow and good, empty, refusing, stalling after a few chunks,
//! erroring, garbage); [`Profile::assign`] turns it into one behaviour per uid, shuffled with a
//! seed so a fleet is the same run after run. [`Behaviour::configure`] applies one behaviour to
//! a miner's config. Every miner of a profile fleet gives the same answer to the same prompt
//! ([`crate::miner::fleet_answer`]), so a continuation by another miner lines up with the text
//! a stalled one already sent.

use crate::miner::{Misbehaviour, SimMinerConfig};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::str::FromStr;
use std::time::Duration;

/// One kind of miner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// First chunk after 20–120 ms, then the whole answer.
    FastGood,
    /// First chunk after 0.6–2.5 s, then the whole answer.
    SlowGood,
    /// 200 and no text.
    Empty,
    /// A refusal.
    Refusing,
    /// A fast start, then silence after 2–6 chunks (the connection stays open).
    Stalling,
    /// An HTTP 500, or a connection reset after one chunk.
    Erroring,
    /// 200 with text nobody can use: the prompt echoed, whitespace, or an axon error body.
    Garbage,
}

impl Behaviour {
    /// Every behaviour, in the order of [`Profile`]'s fields and of `--profile`.
    pub const ALL: [Behaviour; 7] = [
        Behaviour::FastGood,
        Behaviour::SlowGood,
        Behaviour::Empty,
        Behaviour::Refusing,
        Behaviour::Stalling,
        Behaviour::Erroring,
        Behaviour::Garbage,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::FastGood => "fast_good",
            Behaviour::SlowGood => "slow_good",
            Behaviour::Empty => "empty",
            Behaviour::Refusing => "refusing",
            Behaviour::Stalling => "stalling",
            Behaviour::Erroring => "erroring",
            Behaviour::Garbage => "garbage",
        }
    }

    /// Whether a miner of this kind gives a complete usable answer.
    pub fn is_good(self) -> bool {
        matches!(self, Behaviour::FastGood | Behaviour::SlowGood)
    }

    /// Sets up `config` (uid `variant` picks among the kind's variations: latency, chunks
    /// before a stall, which error or garbage) to behave this way.
    pub fn configure(self, config: &mut SimMinerConfig, variant: u64) {
        config.reply.same_for_all = true;
        let spread = |lo: u64, hi: u64| Duration::from_millis(lo + variant * 37 % (hi - lo + 1));
        config.reply.first_byte_delay = spread(20, 120);
        config.misbehaviour = match self {
            Behaviour::FastGood => None,
            Behaviour::SlowGood => {
                config.reply.first_byte_delay = spread(600, 2500);
                None
            }
            Behaviour::Empty => Some(Misbehaviour::Empty),
            Behaviour::Refusing => Some(Misbehaviour::Refusal),
            Behaviour::Stalling => Some(Misbehaviour::StallAfter {
                chunks: 2 + (variant % 5) as usize,
            }),
            Behaviour::Erroring => Some(if variant.is_multiple_of(2) {
                Misbehaviour::ErrorStatus(500)
            } else {
                Misbehaviour::Reset { after_chunks: 1 }
            }),
            Behaviour::Garbage => Some(match variant % 3 {
                0 => Misbehaviour::EchoPrompt,
                1 => Misbehaviour::Whitespace,
                _ => Misbehaviour::ErrorJsonAsText,
            }),
        };
    }
}

/// Shares of each behaviour in a fleet (any non-negative weights; they are normalised).
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Weight of each of [`Behaviour::ALL`], in that order.
    pub weights: [f64; 7],
}

impl Default for Profile {
    /// The default mix, loosely after what the finney snapshot shows (most serving axons are
    /// not good): 35% fast-good, 20% slow-good, 8% empty, 8% refusing, 14% stalling, 8%
    /// erroring, 7% garbage.
    fn default() -> Self {
        Profile {
            weights: [35.0, 20.0, 8.0, 8.0, 14.0, 8.0, 7.0],
        }
    }
}

impl Profile {
    /// One behaviour per miner for `miners` miners: counts by largest remainder (so 100 miners
    /// of the default profile are exactly 35/20/8/8/14/8/7), shuffled with `seed`.
    pub fn assign(&self, miners: u16, seed: u64) -> Vec<Behaviour> {
        let total: f64 = self.weights.iter().map(|w| w.max(0.0)).sum();
        let n = usize::from(miners);
        if total <= 0.0 {
            return vec![Behaviour::FastGood; n];
        }
        let exact: Vec<f64> = self
            .weights
            .iter()
            .map(|w| w.max(0.0) / total * n as f64)
            .collect();
        let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
        let mut by_remainder: Vec<usize> = (0..exact.len()).collect();
        by_remainder.sort_by(|&a, &b| {
            (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor()))
        });
        let short = n - counts.iter().sum::<usize>();
        for &i in by_remainder.iter().take(short) {
            counts[i] += 1;
        }
        let mut out: Vec<Behaviour> = Behaviour::ALL
            .iter()
            .zip(&counts)
            .flat_map(|(b, &c)| std::iter::repeat_n(*b, c))
            .collect();
        out.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        out
    }
}

impl FromStr for Profile {
    type Err = String;

    /// `fast_good=35,slow_good=20,…` (names of [`Behaviour::name`]; a name left out weighs 0),
    /// or `default`.
    fn from_str(s: &str) -> Result<Profile, String> {
        if s.trim() == "default" {
            return Ok(Profile::default());
        }
        let mut weights = [0.0; 7];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not NAME=WEIGHT"))?;
            let i = Behaviour::ALL
                .iter()
                .position(|b| b.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<_> = Behaviour::ALL.iter().map(|b| b.name()).collect();
                    format!("unknown behaviour `{name}` (one of {})", names.join(", "))
                })?;
            weights[i] = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| format!("`{value}` is not a non-negative number"))?;
        }
        if weights.iter().sum::<f64>() <= 0.0 {
            return Err("the weights add up to 0".into());
        }
        Ok(Profile { weights })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_of_100_miners_has_exact_counts_and_a_stable_order() {
        let a = Profile::default().assign(100, 7);
        let count = |b| a.iter().filter(|x| **x == b).count();
        assert_eq!(count(Behaviour::FastGood), 35);
        assert_eq!(count(Behaviour::Stalling), 14);
        assert_eq!(count(Behaviour::Garbage), 7);
        assert_eq!(a, Profile::default().assign(100, 7));
        assert_ne!(a, Profile::default().assign(100, 8));
    }

    #[test]
    fn profiles_parse_from_the_command_line() {
        let p: Profile = "fast_good=1, stalling=1".parse().unwrap();
        assert_eq!(p.assign(4, 1).iter().filter(|b| b.is_good()).count(), 2);
        assert!("fast=1".parse::<Profile>().is_err());
        assert!("fast_good=-1".parse::<Profile>().is_err());
        assert!("empty=0".parse::<Profile>().is_err());
        assert_eq!("default".parse::<Profile>().unwrap(), Profile::default());
    }
}
