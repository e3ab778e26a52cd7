//! The metagraph decoders against real finney answers (block 6852690, netuid 1; spec 208,
//! netuid 23), read from `../shared/protocol/fixtures/` beside the repository (third-party data,
//! not copied here; see SOURCES.md there). Without that directory each test says so and passes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sn1_bittensor::metagraph::{
    DecodeError, NeuronLite, SubnetState, decode_neurons_lite, decode_neurons_lite_any,
    decode_subnet_state, hex_result, neuron_rows,
};
use sn1_bittensor::ss58;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/protocol/fixtures"
);
const NEURONS_1: &str = "finney_b6852690_netuid1_NeuronInfoRuntimeApi_get_neurons_lite.hex";
const STATE_1: &str = "finney_b6852690_netuid1_SubnetInfoRuntimeApi_get_subnet_state.hex.gz";
const FIRST16: &str = "finney_b6852690_netuid1_expected_first16.csv";
const LEGACY_23: &str = "finney_spec208_netuid23_NeuronInfoRuntimeApi_get_neurons_lite.hex";

/// The fixtures directory, or `None` after telling stderr that the test is skipped.
fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(FIXTURES);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: fixtures not found at {}", dir.display());
        None
    }
}

fn read_text(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if name.ends_with(".gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        String::from_utf8(raw).unwrap()
    }
}

fn bytes(dir: &Path, name: &str) -> Vec<u8> {
    hex_result(&read_text(dir, name)).unwrap()
}

fn neurons_and_state(dir: &Path) -> (Vec<NeuronLite>, SubnetState) {
    let neurons = decode_neurons_lite(&bytes(dir, NEURONS_1)).unwrap();
    let state = decode_subnet_state(&bytes(dir, STATE_1))
        .unwrap()
        .expect("subnet 1 exists");
    (neurons, state)
}

/// The CSV as one `column -> value` map per row.
fn csv_rows(dir: &Path) -> Vec<HashMap<String, String>> {
    let text = read_text(dir, FIRST16);
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect()
        })
        .collect()
}

fn num<T: std::str::FromStr>(row: &HashMap<String, String>, col: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    row[col]
        .parse()
        .unwrap_or_else(|e| panic!("column {col}: {e:?}"))
}

#[test]
fn neurons_lite_netuid1_decode_and_match_the_sdk_first16() {
    let Some(dir) = fixtures() else { return };
    let raw = bytes(&dir, NEURONS_1);
    assert_eq!(raw.len(), 186_526);
    let started = Instant::now();
    let neurons = decode_neurons_lite(&raw).unwrap();
    let took = started.elapsed();
    eprintln!(
        "decode_neurons_lite: 1024 neurons, {} bytes in {took:?}",
        raw.len()
    );
    assert_eq!(neurons.len(), 1024);
    for (i, n) in neurons.iter().enumerate() {
        assert_eq!((usize::from(n.uid), n.netuid), (i, 1));
        assert_eq!(n.stake.len(), 1, "uid {i}: one (coldkey, stake) entry");
        assert_eq!(
            n.stake[0].0, n.coldkey,
            "uid {i}: stake is keyed by the coldkey"
        );
    }
    let rows = csv_rows(&dir);
    assert_eq!(rows.len(), 16);
    for row in &rows {
        let uid: usize = num(row, "uid");
        let n = &neurons[uid];
        assert_eq!(ss58::encode(&n.hotkey), row["hotkey"], "uid {uid}");
        assert_eq!(ss58::encode(&n.coldkey), row["coldkey"], "uid {uid}");
        assert_eq!(n.active, num::<u8>(row, "active") == 1, "uid {uid}");
        assert_eq!(n.axon.ip_string(), row["axon_ip"], "uid {uid}");
        assert_eq!(n.axon.port, num::<u16>(row, "axon_port"), "uid {uid}");
        assert_eq!(n.axon.ip_type, num::<u8>(row, "axon_ip_type"), "uid {uid}");
        assert_eq!(
            n.axon.protocol,
            num::<u8>(row, "axon_protocol"),
            "uid {uid}"
        );
        assert_eq!(n.axon.version, num::<u32>(row, "axon_version"), "uid {uid}");
        assert_eq!(n.axon.block, num::<u64>(row, "axon_block"), "uid {uid}");
        assert_eq!(
            n.lite_stake_rao(),
            num::<u64>(row, "lite_stake_rao"),
            "uid {uid}"
        );
        assert_eq!(n.emission_rao, num::<u64>(row, "emission_rao"), "uid {uid}");
        assert_eq!(n.incentive, num::<u16>(row, "incentive_u16"), "uid {uid}");
        assert_eq!(n.consensus, num::<u16>(row, "consensus_u16"), "uid {uid}");
        assert_eq!(n.dividends, num::<u16>(row, "dividends_u16"), "uid {uid}");
        assert_eq!(
            n.validator_trust,
            num::<u16>(row, "validator_trust_u16"),
            "uid {uid}"
        );
        assert_eq!(n.last_update, num::<u64>(row, "last_update"), "uid {uid}");
        assert_eq!(
            n.validator_permit,
            num::<u8>(row, "validator_permit") == 1,
            "uid {uid}"
        );
    }
}

#[test]
fn subnet_state_netuid1_matches_the_neurons_and_the_sdk_stake() {
    let Some(dir) = fixtures() else { return };
    let (neurons, _) = neurons_and_state(&dir);
    let raw = bytes(&dir, STATE_1);
    let started = Instant::now();
    let state = decode_subnet_state(&raw).unwrap().expect("subnet 1 exists");
    eprintln!(
        "decode_subnet_state: {} bytes in {:?}",
        raw.len(),
        started.elapsed()
    );
    assert_eq!(state.netuid, 1);
    let per_uid = [
        state.hotkeys.len(),
        state.coldkeys.len(),
        state.active.len(),
        state.validator_permit.len(),
        state.pruning_score.len(),
        state.last_update.len(),
        state.emission.len(),
        state.dividends.len(),
        state.incentives.len(),
        state.consensus.len(),
        state.trust.len(),
        state.rank.len(),
        state.block_at_registration.len(),
        state.alpha_stake.len(),
        state.tao_stake.len(),
        state.total_stake.len(),
    ];
    assert_eq!(per_uid, [1024; 16]);
    assert_eq!(state.emission_history.len(), 129, "one entry per subnet");
    assert!(
        state.emission_history.iter().all(|h| h.len() == 1024),
        "one entry per hotkey"
    );
    let hotkeys: Vec<[u8; 32]> = neurons.iter().map(|n| n.hotkey).collect();
    assert_eq!(state.hotkeys, hotkeys);
    let coldkeys: Vec<[u8; 32]> = neurons.iter().map(|n| n.coldkey).collect();
    assert_eq!(state.coldkeys, coldkeys);
    for (i, n) in neurons.iter().enumerate() {
        assert_eq!(state.validator_permit[i], n.validator_permit, "uid {i}");
        assert_eq!(state.incentives[i], n.incentive, "uid {i}");
        assert_eq!(state.emission[i], n.emission_rao, "uid {i}");
    }
    // total_stake = alpha_stake + 0.18 × tao_stake (ROOT_TAO_STAKE_WEIGHT), up to the chain's
    // fixed-point rounding.
    for i in 0..1024 {
        let expected = state.alpha_stake[i] as f64 + 0.18 * state.tao_stake[i] as f64;
        let total = state.total_stake[i] as f64;
        assert!(
            (total - expected).abs() <= 1.0 + 1e-9 * expected,
            "uid {i}: {total} vs {expected}"
        );
    }
    // So the lite stake is not S: they differ for 21 uids here, 10 of them validators (every
    // permit holder with root stake), the rest small root stakes and two stale alpha figures.
    let differ: Vec<usize> = (0..1024)
        .filter(|&i| neurons[i].lite_stake_rao() != state.total_stake[i])
        .collect();
    assert_eq!(differ.len(), 21, "{differ:?}");
    let permits = differ
        .iter()
        .filter(|&&i| neurons[i].validator_permit)
        .count();
    assert_eq!(permits, 10, "{differ:?}");
    assert!(
        (0..1024)
            .filter(|&i| neurons[i].validator_permit && state.tao_stake[i] > 0)
            .all(|i| differ.contains(&i))
    );

    let rows = neuron_rows(&neurons, Some(&state));
    for row in &csv_rows(&dir) {
        let uid: usize = num(row, "uid");
        assert_eq!(
            state.total_stake[uid],
            num::<u64>(row, "state_total_stake_rao"),
            "uid {uid}"
        );
        assert_eq!(
            state.alpha_stake[uid],
            num::<u64>(row, "state_alpha_stake_rao"),
            "uid {uid}"
        );
        assert_eq!(
            state.tao_stake[uid],
            num::<u64>(row, "state_tao_stake_rao"),
            "uid {uid}"
        );
        // The SDK holds S and I in float32 tensors (about 7 significant digits) and the CSV
        // prints them widened to float64: 2.557172316 τ appears as 2.5571722984313965.
        let sdk_s: f64 = num(row, "sdk_S");
        let ours = rows[uid].stake_tao;
        assert!(
            (ours - sdk_s).abs() <= 1e-6 * sdk_s.abs(),
            "uid {uid}: S {ours} vs SDK {sdk_s}"
        );
        assert_eq!(ours, state.total_stake[uid] as f64 / 1e9);
        let sdk_i: f64 = num(row, "sdk_I");
        assert!((rows[uid].incentive - sdk_i).abs() <= 1e-6, "uid {uid}");
    }
}

#[test]
fn serving_and_validator_counts_match_the_issue() {
    let Some(dir) = fixtures() else { return };
    let (neurons, state) = neurons_and_state(&dir);
    let rows = neuron_rows(&neurons, Some(&state));
    let ip_nonzero = rows.iter().filter(|r| r.axon_ip != "0.0.0.0").count();
    let port_nonzero = rows.iter().filter(|r| r.axon_port != 0).count();
    let serving = rows.iter().filter(|r| r.is_serving()).count();
    let permits = rows.iter().filter(|r| r.validator_permit).count();
    let validators = rows.iter().filter(|r| r.is_validator()).count();
    let serving_miners = rows
        .iter()
        .filter(|r| r.is_serving() && !r.is_validator())
        .count();
    eprintln!(
        "netuid 1: ip!=0 {ip_nonzero}, port!=0 {port_nonzero}, serving {serving}, \
         permits {permits}, validators {validators}, serving non-validators {serving_miners}"
    );
    assert_eq!((ip_nonzero, port_nonzero, serving), (827, 827, 827));
    assert_eq!(validators, 12);
    assert_eq!(serving_miners, 820);
    // On this block the permit alone, or S >= 4096 τ alone, picks the same 12 neurons.
    assert_eq!(permits, 12);
    let rich = rows.iter().filter(|r| r.stake_tao >= 4096.0).count();
    assert_eq!(rich, 12);
}

#[test]
fn legacy_wrapped_netuid23_answer_decodes() {
    let Some(dir) = fixtures() else { return };
    let raw = bytes(&dir, LEGACY_23);
    let neurons = decode_neurons_lite_any(&raw).unwrap();
    assert_eq!(neurons.len(), 19);
    for (i, n) in neurons.iter().enumerate() {
        assert_eq!((usize::from(n.uid), n.netuid), (i, 23));
    }
    // The strict decoder reads the wrapper length as a neuron count and refuses it.
    assert!(decode_neurons_lite(&raw).is_err());
}

#[test]
fn truncated_flipped_and_oversized_fixture_bytes_never_panic() {
    let Some(dir) = fixtures() else { return };
    let raw = bytes(&dir, NEURONS_1);
    for len in (0..raw.len()).step_by(997).chain([raw.len() - 1]) {
        assert!(
            decode_neurons_lite(&raw[..len]).is_err(),
            "prefix of {len} bytes"
        );
        assert!(
            decode_neurons_lite_any(&raw[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
    let (mut ok, mut err) = (0, 0);
    for (i, at) in (0..raw.len()).step_by(331).enumerate() {
        let mut bad = raw.clone();
        bad[at] ^= [0xff, 0x01, 0x80, 0x03][i % 4];
        match decode_neurons_lite(&bad) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    eprintln!("byte flips: {ok} still decode, {err} refused");
    assert!(err > 0);
    let state = bytes(&dir, STATE_1);
    for len in (0..state.len()).step_by(997) {
        assert!(
            decode_subnet_state(&state[..len]).is_err(),
            "state prefix of {len} bytes"
        );
    }
    // 2^30 - 1 neurons declared in front of the real ones: refused before allocating.
    let mut huge = vec![0xfe, 0xff, 0xff, 0xff];
    huge.extend_from_slice(&raw[2..]);
    let err = decode_neurons_lite(&huge).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::LengthTooLarge {
                what: "neurons",
                len: 0x3fff_ffff,
                ..
            }
        ),
        "{err}"
    );
}
