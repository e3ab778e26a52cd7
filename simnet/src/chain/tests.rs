//! The fake chain's JSON-RPC answers, its encoding of a metagraph, and HTTP over a real socket.
//! (WebSocket is exercised by the syncer's tests, through subxt's client.)

use super::*;
use sn1_bittensor::metagraph::{decode_neurons_lite, decode_subnet_state, neuron_rows};
use sn1_contracts::metagraph::Neuron;

fn neuron(uid: u16, ip: &str, port: u16) -> Neuron {
    Neuron {
        uid,
        hotkey: sn1_bittensor::ss58::encode(&[uid as u8 + 1; 32]),
        coldkey: format!("sim-coldkey-{}", uid / 2),
        active: true,
        axon_ip: ip.into(),
        axon_port: port,
        axon_ip_type: if ip.contains(':') { 6 } else { 4 },
        stake_tao: f64::from(uid) * 2.5,
        incentive: f64::from(uid) / 4.0,
        validator_permit: uid == 0,
    }
}

fn metagraph() -> Metagraph {
    Metagraph {
        netuid: 1,
        block: 0,
        neurons: vec![
            neuron(0, "127.0.0.1", 8091),
            neuron(1, "2001:db8::1", 8092),
            neuron(3, "0.0.0.0", 0),
        ],
    }
}

fn chain() -> FakeChain {
    FakeChain::from_metagraph(
        &metagraph(),
        Head::Fixed {
            number: 0x68_9052,
            hash: format!("0x{}", "ab".repeat(32)),
        },
    )
    .unwrap()
}

fn call(chain: &FakeChain, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let reply: Value =
        serde_json::from_str(&chain.handle_text(&request.to_string()).unwrap()).unwrap();
    assert_eq!(reply["id"], 7);
    reply
}

#[test]
fn answers_the_calls_the_syncer_makes() {
    let c = chain();
    let hash = format!("0x{}", "ab".repeat(32));
    assert_eq!(
        call(&c, "chain_getFinalizedHead", json!([]))["result"],
        hash
    );
    let header = call(&c, "chain_getHeader", json!([hash]))["result"].clone();
    assert_eq!(header["number"], "0x689052");
    assert_eq!(call(&c, "chain_getHeader", json!([]))["result"], header);
    assert!(call(&c, "chain_getHeader", json!(["0x00"]))["result"].is_null());
    assert_eq!(
        call(&c, "chain_getBlockHash", json!([0x68_9052]))["result"],
        hash
    );
    assert_eq!(call(&c, "chain_getBlockHash", json!([]))["result"], hash);
    assert!(call(&c, "chain_getBlockHash", json!([5]))["result"].is_null());

    // Params with and without 0x, at the head or at no block.
    let (neurons, state) = encode_metagraph(&metagraph()).unwrap();
    for params in [
        json!([NEURONS_LITE, "0100", hash]),
        json!([NEURONS_LITE, "0x0100", null]),
    ] {
        let r = call(&c, "state_call", params);
        assert_eq!(r["result"], format!("0x{}", hex::encode(&neurons)));
    }
    let r = call(&c, "state_call", json!([SUBNET_STATE, "0100", hash]));
    assert_eq!(r["result"], format!("0x{}", hex::encode(&state)));
    // A subnet that does not exist: no neurons, no state.
    assert_eq!(
        call(&c, "state_call", json!([NEURONS_LITE, "0200"]))["result"],
        "0x00"
    );
    assert_eq!(
        call(&c, "state_call", json!([SUBNET_STATE, "0200"]))["result"],
        "0x00"
    );

    // Errors.
    let e = call(&c, "state_call", json!(["Nope_nope", "0100"]));
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    let e = call(&c, "state_call", json!([NEURONS_LITE, "0100", "0x1234"]));
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UnknownBlock")
    );
    assert_eq!(
        call(&c, "state_call", json!([NEURONS_LITE, "zz"]))["error"]["code"],
        -32602
    );
    assert_eq!(
        call(&c, "system_health", json!([]))["error"]["code"],
        -32601
    );
    c.set_failing(true);
    let e = call(&c, "chain_getFinalizedHead", json!([]));
    assert_eq!(e["error"]["message"], "simulated outage");
    c.set_failing(false);

    // Batches, notifications and garbage.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "chain_getFinalizedHead"},
        {"jsonrpc": "2.0", "method": "chain_getFinalizedHead"},
        {"jsonrpc": "2.0", "id": 2, "method": "chain_getBlockHash", "params": []}
    ]);
    let replies: Value = serde_json::from_str(&c.handle_text(&batch.to_string()).unwrap()).unwrap();
    assert_eq!(replies.as_array().map(Vec::len), Some(2));
    assert!(
        c.handle_text(r#"{"jsonrpc":"2.0","method":"chain_getFinalizedHead"}"#)
            .is_none()
    );
    let parse: Value = serde_json::from_str(&c.handle_text("{").unwrap()).unwrap();
    assert_eq!(parse["error"]["code"], -32700);
    assert!(
        c.calls()
            .iter()
            .any(|r| r.method == "state_call" && r.params[1] == "0x0100")
    );
}

#[test]
fn clock_head_advances_and_knows_earlier_blocks() {
    let c = FakeChain::new(Head::clock(Duration::from_millis(10)));
    let (first, hash) = c.head();
    assert_eq!(hash.len(), 66);
    std::thread::sleep(Duration::from_millis(30));
    let (later, _) = c.head();
    assert!(later > first);
    let header = call(&c, "chain_getHeader", json!([hash]))["result"].clone();
    assert_eq!(header["number"], format!("0x{first:x}"));
    assert_eq!(
        call(&c, "chain_getBlockHash", json!([first]))["result"],
        hash
    );
    // Another run's hashes differ for the same number.
    let other = FakeChain::new(Head::clock(Duration::from_millis(10)));
    assert!(call(&other, "chain_getHeader", json!([hash]))["result"].is_null());
}

#[test]
fn encoded_metagraph_decodes_to_the_same_neurons() {
    let mg = metagraph();
    let (neurons, state) = encode_metagraph(&mg).unwrap();
    let lite = decode_neurons_lite(&neurons).unwrap();
    let state = decode_subnet_state(&state).unwrap().unwrap();
    assert_eq!(state.hotkeys.len(), 4, "slots up to the highest uid");
    let rows = neuron_rows(&lite, Some(&state));
    assert_eq!(rows.len(), 3);
    for (row, n) in rows.iter().zip(&mg.neurons) {
        assert_eq!((row.uid, &row.hotkey), (n.uid, &n.hotkey));
        assert_eq!(
            (row.axon_ip.as_str(), row.axon_port),
            (n.axon_ip.as_str(), n.axon_port)
        );
        assert_eq!(row.stake_tao, n.stake_tao);
        assert!((row.incentive - n.incentive).abs() < 1e-4);
        assert_eq!(row.validator_permit, n.validator_permit);
    }
    assert_eq!(rows[1].axon_ip, "2001:db8::1");
    // Non-SS58 coldkeys become stable accounts: uids 0 and 1 share one, 3 has another.
    assert_eq!(rows[0].coldkey, rows[1].coldkey);
    assert_ne!(rows[0].coldkey, rows[2].coldkey);

    let mut bad = metagraph();
    bad.neurons[0].hotkey = "hk0".into();
    let err = encode_metagraph(&bad).unwrap_err().to_string();
    assert!(err.contains("uid 0") && err.contains("SS58"), "{err}");
    let mut bad = metagraph();
    bad.neurons[1].axon_ip = "localhost".into();
    assert!(
        encode_metagraph(&bad)
            .unwrap_err()
            .to_string()
            .contains("not an IP")
    );
}

#[tokio::test]
async fn serves_json_rpc_over_http_post() {
    let c = chain();
    let server = c.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let reply: Value = reqwest::Client::new()
        .post(server.http_url())
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":[]}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["result"]["number"], "0x689052");
    assert!(server.ws_url().starts_with("ws://127.0.0.1:"));
    server.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gone = reqwest::Client::new()
        .post(server.http_url())
        .body("{}")
        .send()
        .await;
    assert!(gone.is_err(), "still serving after stop");
}

#[test]
fn serves_the_recorded_fixtures_when_present() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/protocol/fixtures"
    ));
    if !dir.is_dir() {
        eprintln!("SKIPPED: fixtures not found at {}", dir.display());
        return;
    }
    let c = FakeChain::from_fixture_dir(dir).unwrap();
    let (number, hash) = c.head();
    assert_eq!(number, 6_852_690);
    let r = call(&c, "state_call", json!([NEURONS_LITE, "0100", hash]));
    assert_eq!(r["result"].as_str().unwrap().len(), 2 + 2 * 186_526);
    let r = call(&c, "state_call", json!([SUBNET_STATE, "0x1700", hash]));
    assert_eq!(r["result"], "0x00", "no state recorded for netuid 23");
    assert!(FakeChain::from_fixture_dir(Path::new("/nonexistent")).is_err());
}
