//! The seed's wallet flags (`--wallet.path`, `--wallet.name`, `--wallet.hotkey`) plus the two
//! ways a container gets a hotkey without wallet files: a secret in the environment, or (for
//! the simulated subnet only) a throwaway key made up at start.

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sn1_bittensor::keys::Hotkey;
use sn1_bittensor::wallet::{WalletLocation, load_hotkey};
use std::path::PathBuf;

/// Where the validator hotkey comes from.
#[derive(clap::Args, Debug, Clone)]
pub struct WalletArgs {
    /// Directory holding bittensor wallets (`~` is expanded).
    #[arg(
        long = "wallet.path",
        env = "BT_WALLET_PATH",
        default_value = "~/.bittensor/wallets"
    )]
    pub wallet_path: String,
    /// Wallet name (a folder under the wallet path).
    #[arg(
        long = "wallet.name",
        env = "BT_WALLET_NAME",
        default_value = "default"
    )]
    pub wallet_name: String,
    /// Hotkey name (a file under `<wallet>/hotkeys/`).
    #[arg(
        long = "wallet.hotkey",
        env = "BT_WALLET_HOTKEY",
        default_value = "default"
    )]
    pub wallet_hotkey: String,
    /// Password of a `$NACL`-encrypted hotkey file.
    #[arg(
        long = "wallet.password",
        env = "BT_WALLET_PASSWORD",
        hide_env_values = true,
        value_parser = secret
    )]
    pub wallet_password: Option<SecretString>,
    /// The hotkey itself, as a BIP39 mnemonic or a `0x` seed (for Kubernetes Secrets); when
    /// set, the wallet files are not read.
    #[arg(
        long = "wallet.secret",
        env = "BT_HOTKEY_SECRET",
        hide_env_values = true,
        value_parser = secret
    )]
    pub hotkey_secret: Option<SecretString>,
    /// Make up a throwaway hotkey at start. Only useful against the simulated subnet: real
    /// miners refuse hotkeys that are not registered validators.
    #[arg(long = "wallet.ephemeral", env = "BT_WALLET_EPHEMERAL")]
    pub ephemeral: bool,
}

/// A secret flag's value, kept in memory that is wiped when dropped (and never printed).
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

impl WalletArgs {
    /// Loads the hotkey from the first source that is configured.
    pub fn load(&self) -> anyhow::Result<Hotkey> {
        if self.ephemeral {
            let seed: [u8; 32] = rand::random();
            return Hotkey::from_seed_hex(&format!("0x{}", hex::encode(seed)))
                .context("could not make up an ephemeral hotkey");
        }
        if let Some(secret) = &self.hotkey_secret {
            return Hotkey::from_secret_str(secret.expose_secret().trim())
                .context("BT_HOTKEY_SECRET / --wallet.secret is not a valid mnemonic or 0x seed");
        }
        let location = WalletLocation {
            path: expand_home(&self.wallet_path),
            name: self.wallet_name.clone(),
            hotkey: self.wallet_hotkey.clone(),
        };
        let password = self.wallet_password.as_ref().map(|p| p.expose_secret());
        load_hotkey(&location, password).with_context(|| {
            format!(
                "could not load the hotkey {}",
                location.hotkey_file().display()
            )
        })
    }
}

fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(rest))
            .unwrap_or_else(|| PathBuf::from(path)),
        None => PathBuf::from(path),
    }
}
