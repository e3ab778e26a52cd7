//! Keys and keyfiles against the public test wallets (tests/data/wallets, TEST_VECTORS.json).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use sn1_bittensor::keyfile::{KeyfileErrorKind, decrypt_nacl, load_keyfile};
use sn1_bittensor::keys::{Hotkey, SignatureError, verify_hex};
use sn1_bittensor::ss58;
use sn1_bittensor::wallet::{WalletLocation, load_coldkey, load_hotkey};

const WALLETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wallets");

fn vectors() -> Value {
    let text = std::fs::read_to_string(Path::new(WALLETS).join("TEST_VECTORS.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn location(wallet: &str) -> WalletLocation {
    WalletLocation {
        path: PathBuf::from(WALLETS),
        name: wallet.to_string(),
        hotkey: "default".to_string(),
    }
}

#[test]
fn every_mnemonic_derives_its_public_key() {
    let v = vectors();
    for (name, key_name) in [
        ("sn1-validator/hotkey", "sn1-validator/hotkey"),
        ("sn1-miner/hotkey", "sn1-miner/hotkey"),
        ("sn1-validator/coldkey", "sn1-validator/coldkeypub"),
        ("sn1-miner/coldkey", "sn1-miner/coldkeypub"),
    ] {
        let phrase = v["mnemonics"][name].as_str().unwrap();
        let expected = &v["keys"][key_name];
        let key = Hotkey::from_mnemonic(phrase).unwrap();
        assert_eq!(key.ss58(), expected["ss58"].as_str().unwrap(), "{name}");
        assert_eq!(
            format!("0x{}", hex::encode(key.public())),
            expected["public_key"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(ss58::decode(key.ss58()).unwrap(), key.public());
        // The secret-as-text entry point picks the mnemonic path.
        assert_eq!(Hotkey::from_secret_str(phrase).unwrap().ss58(), key.ss58());
        // Debug shows the address only.
        let dbg = format!("{key:?}");
        assert!(dbg.contains(key.ss58()) && !dbg.contains(phrase.split(' ').next().unwrap()));
    }
}

#[test]
fn hotkey_files_derive_from_seed_private_key_and_phrase() {
    let v = vectors();
    for wallet in ["sn1-validator", "sn1-miner"] {
        let expected = v["keys"][format!("{wallet}/hotkey")]["ss58"]
            .as_str()
            .unwrap();
        let file = Path::new(WALLETS).join(wallet).join("hotkeys/default");
        let json = read_json(&file);
        let from_seed = Hotkey::from_seed_hex(json["secretSeed"].as_str().unwrap()).unwrap();
        let from_private =
            Hotkey::from_private_key_hex(json["privateKey"].as_str().unwrap()).unwrap();
        let from_seed_text = Hotkey::from_secret_str(json["secretSeed"].as_str().unwrap()).unwrap();
        let from_private_text =
            Hotkey::from_secret_str(json["privateKey"].as_str().unwrap()).unwrap();
        for key in [
            &from_seed,
            &from_private,
            &from_seed_text,
            &from_private_text,
        ] {
            assert_eq!(key.ss58(), expected, "{wallet}");
        }
        assert_eq!(load_keyfile(&file, None).unwrap().ss58(), expected);
        assert_eq!(
            load_hotkey(&location(wallet), None).unwrap().ss58(),
            expected
        );

        // A key loaded from privateKey alone signs verifiable signatures.
        let sig = from_private.sign_hex(b"from the private key");
        verify_hex(expected, b"from the private key", &sig).unwrap();
    }
}

#[test]
fn recorded_signatures_verify_and_tampered_ones_do_not() {
    let v = vectors();
    let sigs = v["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 3);
    for s in sigs {
        let signer = s["signer_ss58"].as_str().unwrap();
        let message = s["message_utf8"].as_str().unwrap().as_bytes();
        let signature = s["signature"].as_str().unwrap();
        assert_eq!(verify_hex(signer, message, signature), Ok(()), "{s}");

        let mut tampered_msg = message.to_vec();
        tampered_msg[0] ^= 1;
        assert_eq!(
            verify_hex(signer, &tampered_msg, signature),
            Err(SignatureError::Mismatch)
        );
        let mut tampered_sig = signature.to_string();
        let last = if tampered_sig.ends_with('0') {
            "1"
        } else {
            "0"
        };
        tampered_sig.replace_range(tampered_sig.len() - 1.., last);
        assert_eq!(
            verify_hex(signer, message, &tampered_sig),
            Err(SignatureError::Mismatch)
        );
        // Wrong signer.
        assert_eq!(
            verify_hex(
                v["keys"]["sn1-miner/hotkey"]["ss58"].as_str().unwrap(),
                message,
                signature
            ),
            Err(SignatureError::Mismatch)
        );
        // No 0x prefix is refused like bittensor-wallet does.
        assert_eq!(
            verify_hex(signer, message, &signature[2..]),
            Err(SignatureError::Format)
        );
    }
    // The third one is the <Bytes>-wrapped signature: it does not verify over the raw
    // message with a plain sr25519 check, only through the wrapping.
    let wrapped = &sigs[2];
    let public = ss58::decode(wrapped["signer_ss58"].as_str().unwrap()).unwrap();
    let mut raw = [0u8; 64];
    hex::decode_to_slice(&wrapped["signature"].as_str().unwrap()[2..], &mut raw).unwrap();
    let msg = wrapped["message_utf8"].as_str().unwrap();
    assert!(!sn1_bittensor::keys::verify_bytes(
        &public,
        msg.as_bytes(),
        &raw
    ));
    assert!(sn1_bittensor::keys::verify_bytes(
        &public,
        format!("<Bytes>{msg}</Bytes>").as_bytes(),
        &raw
    ));
}

/// One test for all argon2 work: each decryption takes 512 MiB and a few seconds.
#[test]
fn encrypted_coldkey_decrypts_and_bad_inputs_give_clear_errors() {
    let v = vectors();
    let password = v["coldkey_password_sn1_validator"].as_str().unwrap();
    let coldkeypub = &v["keys"]["sn1-validator/coldkeypub"];
    let file = Path::new(WALLETS).join("sn1-validator/coldkey");
    let raw = std::fs::read(&file).unwrap();
    assert!(raw.starts_with(b"$NACL"));

    // decrypt_nacl gives the JSON keyfile.
    let plain = decrypt_nacl(&raw, password).unwrap();
    let json: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(json["ss58Address"], coldkeypub["ss58"]);

    // load_keyfile / load_coldkey derive the coldkeypub.
    let key = load_coldkey(&location("sn1-validator"), Some(password)).unwrap();
    assert_eq!(key.ss58(), coldkeypub["ss58"].as_str().unwrap());
    let pubfile = read_json(&Path::new(WALLETS).join("sn1-validator/coldkeypub.txt"));
    assert_eq!(pubfile["ss58Address"].as_str().unwrap(), key.ss58());

    // Wrong password: names the file, not the password.
    let wrong = "not-the-bittensor-password";
    let err = load_keyfile(&file, Some(wrong)).unwrap_err();
    assert!(matches!(err.kind, KeyfileErrorKind::WrongPassword), "{err}");
    let text = err.to_string();
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(!text.contains(wrong) && !text.contains(password), "{text}");
    assert!(!format!("{err:?}").contains(wrong));

    // No password at all.
    let err = load_keyfile(&file, None).unwrap_err();
    assert!(
        matches!(err.kind, KeyfileErrorKind::PasswordRequired),
        "{err}"
    );
    assert!(err.to_string().contains("coldkey"));

    // A truncated $NACL file is malformed before any argon2 work.
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, &raw[..20]).unwrap();
    let err = load_keyfile(&short, Some(password)).unwrap_err();
    assert!(matches!(err.kind, KeyfileErrorKind::Malformed(_)), "{err}");
    assert!(err.to_string().contains(&short.display().to_string()));
    assert!(!err.to_string().contains(password));

    // A flipped ciphertext byte fails authentication.
    let mut corrupt = raw.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let corrupt_file = dir.path().join("corrupt");
    std::fs::write(&corrupt_file, &corrupt).unwrap();
    let err = load_keyfile(&corrupt_file, Some(password)).unwrap_err();
    assert!(matches!(err.kind, KeyfileErrorKind::WrongPassword), "{err}");
    assert!(!err.to_string().contains(password));
}

/// Which error kind a case expects.
type KindCheck = fn(&KeyfileErrorKind) -> bool;

#[test]
fn malformed_and_legacy_keyfiles_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let secret_seed = "0xdd01c9fa1a74202b8b085bd4e92b0979e374000bb4d487a6db88b4e6e48592b4";
    let cases: Vec<(PathBuf, KindCheck)> = vec![
        (write("garbage", b"{not json"), |k| matches!(k, KeyfileErrorKind::Malformed(_))),
        (write("array", b"[1, 2]"), |k| matches!(k, KeyfileErrorKind::Malformed(_))),
        (write("empty", b"{}"), |k| matches!(k, KeyfileErrorKind::Malformed(_))),
        (
            write("vault", b"$ANSIBLE_VAULT;1.1;AES256\n3836..."),
            |k| matches!(k, KeyfileErrorKind::LegacyEncryption("ansible-vault")),
        ),
        (
            write("fernet", b"gAAAAABkZ2V0dGluZyBzdGFydGVk"),
            |k| matches!(k, KeyfileErrorKind::LegacyEncryption("Fernet")),
        ),
        (
            write(
                "pub.txt",
                br#"{"ss58Address":"5F3pTX3CVAfy3Wzq9pb4vE7d3gtYLnGNQgQEqddSDqGhEEo5","cryptoType":1}"#,
            ),
            |k| matches!(k, KeyfileErrorKind::PublicOnly(_)),
        ),
        (
            write("badseed", br#"{"secretSeed":"0xdd01zz"}"#),
            |k| matches!(k, KeyfileErrorKind::Key(_)),
        ),
        (
            // A valid seed whose recorded address is someone else's.
            write(
                "mismatch",
                format!(
                    r#"{{"secretSeed":"{secret_seed}","ss58Address":"5H72RD9q51B4V7W18K2YCbnpPuGG4QqxxirziLrPvTXRU2d7"}}"#
                )
                .as_bytes(),
            ),
            |k| matches!(k, KeyfileErrorKind::PublicKeyMismatch(_)),
        ),
        (dir.path().join("missing"), |k| matches!(k, KeyfileErrorKind::Io(_))),
        (
            write("huge", &vec![b' '; 70 * 1024]),
            |k| matches!(k, KeyfileErrorKind::TooLarge),
        ),
    ];
    for (path, expected) in cases {
        let err = load_keyfile(&path, Some("pw-secret")).unwrap_err();
        assert!(expected(&err.kind), "{}: {err}", path.display());
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            !text.contains("pw-secret") && !text.contains("dd01c9fa"),
            "{text}"
        );
    }
    // The legacy error says why.
    let err = load_keyfile(&dir.path().join("fernet"), None).unwrap_err();
    assert!(
        err.to_string().contains("unsupported legacy encryption"),
        "{err}"
    );

    // A plain keyfile with the seed only loads.
    let ok = write(
        "seedonly",
        format!(r#"{{"secretSeed":"{secret_seed}"}}"#).as_bytes(),
    );
    assert_eq!(
        load_keyfile(&ok, None).unwrap().ss58(),
        "5F3pTX3CVAfy3Wzq9pb4vE7d3gtYLnGNQgQEqddSDqGhEEo5"
    );
}
