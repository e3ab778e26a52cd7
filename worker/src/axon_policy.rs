//! Which axon addresses the worker may connect to when the metagraph comes from the chain.
//!
//! Anyone can register an axon on chain with any IP, so a store-backed metagraph (the syncer's
//! snapshots) is untrusted input: a neuron serving on a loopback, private, link-local, CGNAT,
//! multicast, broadcast, unspecified, documentation or otherwise non-global address would make
//! the worker send signed POSTs inside the cluster (the cloud metadata endpoint 169.254.169.254
//! included). [`AxonPolicy::screen`] drops such neurons before selection unless an explicit
//! allowlist ([`Cidr`], `--axon-allow`) admits them. An axon IP that is not an IP address at all
//! (the chain stores integers, so text there is malformed) is always refused. A
//! `--metagraph-file` is the operator's own list and is never screened.
//!
//! Entry points: [`AxonPolicy::screen`], [`classify`], [`Cidr`].

use sn1_contracts::metagraph::{Metagraph, Neuron};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an axon address is refused (the `reason` label of `sn1_worker_axons_refused_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// Not an IP address.
    Malformed,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), IPv6 ULA `fc00::/7`, site-local `fec0::/10`.
    Private,
    /// `169.254/16` (cloud metadata included), `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64/10`.
    Cgnat,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`.
    Documentation,
    /// Anything else that is not global unicast: `192.0.0/24`, `198.18/15`, `240/4`, IPv6
    /// outside `2000::/3`, the deprecated IPv4-compatible form.
    Reserved,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Unspecified => "unspecified",
            Refusal::Loopback => "loopback",
            Refusal::Private => "private",
            Refusal::LinkLocal => "link_local",
            Refusal::Cgnat => "cgnat",
            Refusal::Multicast => "multicast",
            Refusal::Broadcast => "broadcast",
            Refusal::Documentation => "documentation",
            Refusal::Reserved => "reserved",
        }
    }
}

/// What is wrong with `ip` as a public axon address, `None` when it is global unicast.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => Refusal::Unspecified,
        (127, _, _) => Refusal::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Refusal::Private,
        (169, 254, _) => Refusal::LinkLocal,
        (100, 64..=127, _) => Refusal::Cgnat,
        (224..=239, _, _) => Refusal::Multicast,
        _ if ip.is_broadcast() => Refusal::Broadcast,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Refusal::Documentation,
        (192, 0, 0) | (198, 18..=19, _) | (240..=255, _, _) => Refusal::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Refusal::Unspecified,
        [0, 0, 0, 0, 0, 0, 0, 1] => Refusal::Loopback,
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they embed.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0x2002, hi, lo, ..] => {
            return classify_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
        }
        [x, ..] if x & 0xfe00 == 0xfc00 => Refusal::Private,
        [x, ..] if x & 0xffc0 == 0xfec0 => Refusal::Private,
        [x, ..] if x & 0xffc0 == 0xfe80 => Refusal::LinkLocal,
        [x, ..] if x & 0xff00 == 0xff00 => Refusal::Multicast,
        [0x2001, 0x0db8, ..] => Refusal::Documentation,
        [x, ..] if x & 0xe000 == 0x2000 => return None,
        _ => Refusal::Reserved,
    })
}

/// An address block, `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `127.0.0.0/8`, where simulated subnets (`standalone --simnet`) run their miners.
    pub const IPV4_LOOPBACK: Cidr = Cidr {
        network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        prefix: 8,
    };

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address is tested as its IPv4 form).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The rule for chain-sourced axons: global unicast, or inside one of `allow`.
#[derive(Clone, Debug, Default)]
pub struct AxonPolicy {
    /// Blocks admitted although not global (`--axon-allow`; `standalone --simnet` adds
    /// `127.0.0.0/8` for its own miners).
    pub allow: Vec<Cidr>,
}

impl AxonPolicy {
    /// Why the worker must not connect to `neuron`'s axon, `None` when it may.
    pub fn check(&self, neuron: &Neuron) -> Option<Refusal> {
        let Ok(ip) = neuron.axon_ip.trim().parse::<IpAddr>() else {
            return Some(Refusal::Malformed);
        };
        let refusal = classify(ip)?;
        (!self.allow.iter().any(|c| c.contains(ip))).then_some(refusal)
    }

    /// Removes the serving neurons the worker must not connect to (neurons serving no axon are
    /// left: selection skips them anyway); returns how many were removed, by reason. Counts
    /// them in `sn1_worker_axons_refused_total{reason}` and logs them once.
    pub fn screen(&self, metagraph: &mut Metagraph) -> BTreeMap<Refusal, usize> {
        let mut refused = BTreeMap::new();
        metagraph.neurons.retain(|n| {
            let Some(reason) = n.is_serving().then(|| self.check(n)).flatten() else {
                return true;
            };
            tracing::debug!(uid = n.uid, axon_ip = %n.axon_ip, reason = reason.as_str(), "axon refused");
            *refused.entry(reason).or_insert(0) += 1;
            false
        });
        for (reason, count) in &refused {
            metrics::counter!("sn1_worker_axons_refused_total", "reason" => reason.as_str())
                .increment(*count as u64);
        }
        if !refused.is_empty() {
            let summary: Vec<String> = refused
                .iter()
                .map(|(r, n)| format!("{}={n}", r.as_str()))
                .collect();
            tracing::warn!(
                netuid = metagraph.netuid,
                block = metagraph.block,
                refused = summary.join(","),
                "axons on non-public addresses left out (allow them with AXON_ALLOW)"
            );
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<Refusal> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_ipv4_class() {
        use Refusal::*;
        for (ip, want) in [
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("100.64.0.1", Some(Cgnat)),
            ("100.127.255.254", Some(Cgnat)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("192.0.2.7", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.7", Some(Documentation)),
            ("192.0.0.8", Some(Reserved)),
            ("198.18.0.1", Some(Reserved)),
            ("240.0.0.1", Some(Reserved)),
            // Neighbours of the blocks above are public.
            ("172.15.255.255", None),
            ("172.32.0.1", None),
            ("100.63.255.255", None),
            ("100.128.0.1", None),
            ("169.253.1.1", None),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("65.108.1.2", None),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn every_ipv6_class_and_the_mapped_forms() {
        use Refusal::*;
        for (ip, want) in [
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fec0::1", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("100::1", Some(Reserved)),
            ("::7f00:1", Some(Reserved)), // IPv4-compatible (deprecated)
            ("4000::1", Some(Reserved)),
            // IPv4-mapped, NAT64 and 6to4 forms are judged by the IPv4 address inside.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:100.64.0.1", Some(Cgnat)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:255.255.255.255", Some(Broadcast)),
            ("64:ff9b::192.168.0.1", Some(Private)),
            ("2002:a00:1::1", Some(Private)),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::8.8.8.8", None),
            ("2606:4700::1111", None),
            ("2a01:4f8::1", None),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn cidr_parsing_and_membership() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.9.8.7".parse().unwrap()));
        assert!(c.contains("::ffff:10.9.8.7".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("fd00::1".parse().unwrap()));
        let one: Cidr = " 192.168.1.5 ".parse().unwrap();
        assert_eq!(one.to_string(), "192.168.1.5/32");
        assert!(one.contains("192.168.1.5".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("127.0.0.1".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "miner.example",
            "10.0.0.0/x",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    fn neuron(uid: u16, ip: &str) -> Neuron {
        Neuron {
            uid,
            hotkey: format!("hk{uid}"),
            coldkey: String::new(),
            active: true,
            axon_ip: ip.into(),
            axon_port: 8091,
            axon_ip_type: if ip.contains(':') { 6 } else { 4 },
            stake_tao: 0.0,
            incentive: 0.0,
            validator_permit: false,
        }
    }

    #[test]
    fn screen_keeps_public_and_allowed_axons_and_counts_the_rest() {
        let mut mg = Metagraph {
            netuid: 1,
            block: 7,
            neurons: vec![
                neuron(0, "8.8.8.8"),
                neuron(1, "10.0.0.5"),
                neuron(2, "127.0.0.1"),
                neuron(3, "169.254.169.254"),
                neuron(4, "miner.example.com"),
                neuron(5, "0.0.0.0"), // serves nothing: not a refusal, selection skips it
                neuron(6, "::ffff:192.168.0.1"),
                neuron(7, "2a01:4f8::1"),
            ],
        };
        let allow = AxonPolicy {
            allow: vec!["10.0.0.0/24".parse().unwrap()],
        };
        let refused = allow.screen(&mut mg);
        let uids: Vec<u16> = mg.neurons.iter().map(|n| n.uid).collect();
        assert_eq!(uids, vec![0, 1, 5, 7]);
        assert_eq!(
            refused.into_iter().collect::<Vec<_>>(),
            vec![
                (Refusal::Malformed, 1),
                (Refusal::Loopback, 1),
                (Refusal::Private, 1),
                (Refusal::LinkLocal, 1),
            ]
        );
        // The allowlist never admits a name, and the default admits no private address.
        let any = AxonPolicy {
            allow: vec!["0.0.0.0/0".parse().unwrap()],
        };
        assert_eq!(
            any.check(&neuron(9, "miner.example.com")),
            Some(Refusal::Malformed)
        );
        assert_eq!(any.check(&neuron(9, "127.0.0.1")), None);
        assert_eq!(
            AxonPolicy::default().check(&neuron(9, "10.0.0.5")),
            Some(Refusal::Private)
        );
    }
}
