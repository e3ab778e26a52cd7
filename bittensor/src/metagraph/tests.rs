//! Round trips and edge cases that need no fixtures.

use super::*;

fn neuron(uid: u16, ip: u128, port: u16) -> NeuronLite {
    NeuronLite {
        hotkey: [uid as u8 + 1; 32],
        coldkey: [0xc0 ^ uid as u8; 32],
        uid,
        netuid: 1,
        active: uid.is_multiple_of(2),
        axon: AxonInfo {
            block: 6_575_906,
            version: 9_011_001,
            ip,
            port,
            ip_type: if ip > u128::from(u32::MAX) { 6 } else { 4 },
            protocol: 4,
            placeholder1: 0,
            placeholder2: 7,
        },
        prometheus: PrometheusInfo {
            block: 1,
            version: 2,
            ip: 3,
            port: 4,
            ip_type: 4,
        },
        stake: vec![([0xc0 ^ uid as u8; 32], 2_557_172_316), ([9; 32], u64::MAX)],
        rank: 0,
        emission_rao: 1 << 40,
        incentive: 65535,
        consensus: 64,
        trust: 16384,
        validator_trust: 63,
        dividends: 32768,
        last_update: 2_543_521,
        validator_permit: uid == 0,
        pruning_score: u16::MAX,
    }
}

fn sample_neurons() -> Vec<NeuronLite> {
    vec![
        neuron(0, u128::from(u32::from_be_bytes([192, 222, 59, 109])), 6028),
        neuron(1, 0x2001_0db8_0000_0000_0000_0000_0000_0001, 8091),
        neuron(2, 0, 0),
        neuron(300, u128::from(u32::MAX), 65535),
    ]
}

#[test]
fn neurons_round_trip_and_ip_strings() {
    let neurons = sample_neurons();
    let bytes = encode_neurons_lite(&neurons);
    assert_eq!(decode_neurons_lite(&bytes).unwrap(), neurons);
    assert_eq!(decode_neurons_lite_any(&bytes).unwrap(), neurons);
    let ips: Vec<String> = neurons.iter().map(|n| n.axon.ip_string()).collect();
    assert_eq!(
        ips,
        [
            "192.222.59.109",
            "2001:db8::1",
            "0.0.0.0",
            "255.255.255.255"
        ]
    );
    // 2^32 is the first value the SDK prints as IPv6.
    let v6 = AxonInfo {
        ip: 1 << 32,
        ..AxonInfo::default()
    };
    assert_eq!(v6.ip_string(), "::1:0:0");
    assert_eq!(encode_neurons_lite(&[]), [0]);
    assert!(decode_neurons_lite(&[0]).unwrap().is_empty());
    assert!(decode_neurons_lite_any(&[0]).unwrap().is_empty());
}

#[test]
fn legacy_wrapped_neurons_decode_and_strict_form_refuses_them() {
    let neurons = sample_neurons();
    let inner = encode_neurons_lite(&neurons);
    let mut w = Writer::new();
    w.compact(inner.len() as u64).bytes(&inner);
    let wrapped = w.into_bytes();
    assert_eq!(decode_neurons_lite_any(&wrapped).unwrap(), neurons);
    assert!(decode_neurons_lite(&wrapped).is_err());
    // A wrapper whose length is off by one is not legacy, and not a valid answer either.
    let mut w = Writer::new();
    w.compact(inner.len() as u64 + 1).bytes(&inner);
    assert!(decode_neurons_lite_any(&w.into_bytes()).is_err());
}

#[test]
fn neuron_errors_name_the_field_and_offset() {
    let bytes = encode_neurons_lite(&sample_neurons()[..1]);
    // Byte 1 + 64 + 1 + 1 is `active`.
    let mut bad = bytes.clone();
    bad[67] = 2;
    assert_eq!(
        decode_neurons_lite(&bad).unwrap_err(),
        DecodeError::InvalidBool {
            what: "neuron.active",
            offset: 67,
            byte: 2
        }
    );
    let err = decode_neurons_lite(&bytes[..100]).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::LengthTooLarge {
                what: "neurons",
                ..
            }
        ),
        "{err}"
    );
    let mut short = bytes.clone();
    short.truncate(bytes.len() - 1);
    let err = decode_neurons_lite(&short).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
    let mut long = bytes.clone();
    long.push(0);
    let err = decode_neurons_lite(&long).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TrailingBytes {
            what: "neurons",
            offset: bytes.len(),
            left: 1
        }
    );
}

fn sample_state() -> SubnetState {
    SubnetState {
        netuid: 300,
        hotkeys: vec![[1; 32], [2; 32]],
        coldkeys: vec![[3; 32], [4; 32]],
        active: vec![true, false],
        validator_permit: vec![false, true],
        pruning_score: vec![u16::MAX, 0],
        last_update: vec![2_543_521, u64::MAX],
        emission: vec![0, 1 << 30],
        dividends: vec![0, 65535],
        incentives: vec![64, 63],
        consensus: vec![16383, 16384],
        trust: vec![0, 0],
        rank: vec![0, 1],
        block_at_registration: vec![1, 2],
        alpha_stake: vec![2_557_172_316, 0],
        tao_stake: vec![0, 5_000_000_000_000],
        total_stake: vec![2_557_172_316, 4_096_000_000_000],
        emission_history: vec![vec![1, 2], vec![], vec![u64::MAX, 0]],
    }
}

#[test]
fn subnet_state_round_trip_and_none() {
    let state = sample_state();
    let bytes = encode_subnet_state(&state);
    assert_eq!(bytes[0], 1);
    assert_eq!(decode_subnet_state(&bytes).unwrap(), Some(state));
    assert_eq!(decode_subnet_state(&[0]).unwrap(), None);
    let err = decode_subnet_state(&[0, 0]).unwrap_err();
    assert!(matches!(err, DecodeError::TrailingBytes { .. }), "{err}");
    let err = decode_subnet_state(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
    assert!(decode_subnet_state(&[]).is_err());
}

#[test]
fn hex_result_accepts_0x_text_only() {
    assert_eq!(hex_result(" 0x0100\n").unwrap(), [1, 0]);
    assert_eq!(hex_result("0X").unwrap(), Vec::<u8>::new());
    assert_eq!(
        hex_result("0100").unwrap_err(),
        DecodeError::MissingHexPrefix
    );
    assert!(matches!(
        hex_result("0x0g"),
        Err(DecodeError::InvalidHex(_))
    ));
    assert!(matches!(
        hex_result("0x010"),
        Err(DecodeError::InvalidHex(_))
    ));
}

#[test]
fn rows_take_stake_from_state_when_hotkeys_agree() {
    let mut neurons = sample_neurons();
    neurons.truncate(2);
    neurons[0].hotkey = [1; 32];
    neurons[1].hotkey = [2; 32];
    neurons[1].validator_permit = true;
    let state = sample_state();
    let rows = neuron_rows(&neurons, Some(&state));
    assert_eq!(rows[0].stake_tao, 2.557172316);
    assert_eq!(rows[1].stake_tao, 4096.0);
    assert!(rows[1].is_validator() && !rows[0].is_validator());
    assert!(rows[0].is_serving());
    assert_eq!(rows[0].hotkey, crate::ss58::encode(&[1; 32]));
    assert_eq!(rows[0].axon_ip, "192.222.59.109");
    assert_eq!(
        (rows[0].incentive, rows[0].dividends),
        (1.0, 32768.0 / 65535.0)
    );
    assert_eq!(rows[0].emission_tao, (1u64 << 40) as f64 / 1e9);
    // Without a state (or with a hotkey that differs) the lite stake is summed.
    let lite = neurons[0].lite_stake_rao();
    assert_eq!(lite, u64::MAX);
    assert_eq!(
        neuron_rows(&neurons, None)[0].stake_tao,
        u64::MAX as f64 / 1e9
    );
    neurons[1].hotkey = [7; 32];
    let rows = neuron_rows(&neurons, Some(&state));
    assert_eq!(rows[1].stake_tao, u64::MAX as f64 / 1e9);
    assert_eq!(rows[0].stake_tao, 2.557172316);
    let zero = neuron_rows(&sample_neurons()[2..3], None);
    assert!(!zero[0].is_serving());
}
