//! Where bittensor keeps a wallet's keys (docs/protocol.md §9):
//! `<path>/<name>/coldkey`, `coldkeypub.txt`, `hotkeys/<hotkey>`, `hotkeys/<hotkey>pub.txt`.
//!
//! [`WalletLocation`] defaults to `~/.bittensor/wallets`, wallet `default`, hotkey `default`
//! (bittensor reads `BT_WALLET_PATH`, `BT_WALLET_NAME`, `BT_WALLET_HOTKEY`; the binary's config
//! maps those, this module reads no environment except `HOME` to expand a leading `~`).
//! [`load_hotkey`] loads the hotkey file with [`crate::keyfile::load_keyfile`].

use std::path::{Path, PathBuf};

use crate::keyfile::{KeyfileError, KeyfileErrorKind, load_keyfile};
use crate::keys::Hotkey;

/// bittensor's default wallets directory.
pub const DEFAULT_WALLET_PATH: &str = "~/.bittensor/wallets";
/// bittensor's default wallet and hotkey name.
pub const DEFAULT_NAME: &str = "default";

/// A wallet directory, wallet name and hotkey name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletLocation {
    /// The wallets directory (a leading `~` is expanded to `$HOME`).
    pub path: PathBuf,
    /// The wallet (coldkey) name.
    pub name: String,
    /// The hotkey name.
    pub hotkey: String,
}

impl Default for WalletLocation {
    fn default() -> Self {
        WalletLocation {
            path: PathBuf::from(DEFAULT_WALLET_PATH),
            name: DEFAULT_NAME.to_string(),
            hotkey: DEFAULT_NAME.to_string(),
        }
    }
}

/// Expands a leading `~` (alone or followed by `/`) to the home directory.
pub fn expand_tilde(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix("~") else {
        return path.to_path_buf();
    };
    match std::env::home_dir() {
        Some(home) => home.join(rest),
        None => path.to_path_buf(),
    }
}

impl WalletLocation {
    /// `<path>/<name>`, with `~` expanded.
    pub fn wallet_dir(&self) -> PathBuf {
        expand_tilde(&self.path).join(&self.name)
    }

    /// `<path>/<name>/hotkeys/<hotkey>`.
    pub fn hotkey_file(&self) -> PathBuf {
        self.wallet_dir().join("hotkeys").join(&self.hotkey)
    }

    /// `<path>/<name>/hotkeys/<hotkey>pub.txt` (bittensor-wallet 4.x).
    pub fn hotkeypub_file(&self) -> PathBuf {
        self.wallet_dir()
            .join("hotkeys")
            .join(format!("{}pub.txt", self.hotkey))
    }

    /// `<path>/<name>/coldkey`.
    pub fn coldkey_file(&self) -> PathBuf {
        self.wallet_dir().join("coldkey")
    }

    /// `<path>/<name>/coldkeypub.txt`.
    pub fn coldkeypub_file(&self) -> PathBuf {
        self.wallet_dir().join("coldkeypub.txt")
    }
}

/// A wallet or hotkey name must be one plain path component.
fn check_name(name: &str, file: &Path) -> Result<(), KeyfileError> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(())
    } else {
        Err(KeyfileError {
            path: Some(file.to_path_buf()),
            kind: KeyfileErrorKind::BadName(name.to_string()),
        })
    }
}

/// Loads the wallet's hotkey (normally unencrypted; `password` for a `$NACL` one).
pub fn load_hotkey(loc: &WalletLocation, password: Option<&str>) -> Result<Hotkey, KeyfileError> {
    let file = loc.hotkey_file();
    check_name(&loc.name, &file)?;
    check_name(&loc.hotkey, &file)?;
    load_keyfile(&file, password)
}

/// Loads the wallet's coldkey (normally `$NACL`-encrypted: give its password). A validator
/// process never needs it; tests and tools do.
pub fn load_coldkey(loc: &WalletLocation, password: Option<&str>) -> Result<Hotkey, KeyfileError> {
    let file = loc.coldkey_file();
    check_name(&loc.name, &file)?;
    load_keyfile(&file, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_bittensor_layout() {
        let loc = WalletLocation {
            path: PathBuf::from("/w"),
            name: "sn1".into(),
            hotkey: "hk".into(),
        };
        assert_eq!(loc.hotkey_file(), PathBuf::from("/w/sn1/hotkeys/hk"));
        assert_eq!(
            loc.hotkeypub_file(),
            PathBuf::from("/w/sn1/hotkeys/hkpub.txt")
        );
        assert_eq!(loc.coldkey_file(), PathBuf::from("/w/sn1/coldkey"));
        let def = WalletLocation::default();
        assert!(
            def.hotkey_file()
                .ends_with(".bittensor/wallets/default/hotkeys/default")
        );
        assert!(!def.hotkey_file().starts_with("~"));
    }

    #[test]
    fn refuses_path_tricks_in_names() {
        let loc = WalletLocation {
            path: PathBuf::from("/w"),
            name: "..".into(),
            hotkey: "hk".into(),
        };
        let err = load_hotkey(&loc, None).unwrap_err();
        assert!(matches!(err.kind, KeyfileErrorKind::BadName(_)), "{err}");
    }
}
