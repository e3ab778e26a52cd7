//! Neurons as the worker needs them (chain snapshots are stored as the decoder's
//! [`NeuronRow`] and read back as [`Neuron`]), the syncer's [`MetagraphUpdated`] notice, and the
//! static metagraph file (`--metagraph-file`) that
//! private deployments and the simulated subnet use instead of chain snapshots.
//!
//! File format (JSON): `{"netuid": 1, "block": 0, "neurons": [{"uid": 0, "hotkey": "5…",
//! "axon_ip": "127.0.0.1", "axon_port": 8901, …}]}`. Only `uid`, `hotkey`, `axon_ip` and
//! `axon_port` are required; the other fields default to what a fresh chain neuron has.

use serde::{Deserialize, Serialize};
pub use sn1_bittensor::metagraph::NeuronRow;
use std::path::Path;

/// One neuron of the subnet, with the SDK's normalisation (u16/65535, rao/1e9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neuron {
    /// Position in the subnet.
    pub uid: u16,
    /// Hotkey, SS58.
    pub hotkey: String,
    /// Coldkey, SS58 (empty when unknown).
    #[serde(default)]
    pub coldkey: String,
    /// Whether the neuron is active.
    #[serde(default = "yes")]
    pub active: bool,
    /// Axon IP as text, `0.0.0.0` when the neuron serves no axon.
    pub axon_ip: String,
    /// Axon port, 0 when unset.
    pub axon_port: u16,
    /// 4 or 6.
    #[serde(default = "four")]
    pub axon_ip_type: u8,
    /// Stake `S` in τ, as the SDK reports it.
    #[serde(default)]
    pub stake_tao: f64,
    /// Incentive `I` in 0..=1.
    #[serde(default)]
    pub incentive: f64,
    /// Whether the neuron holds a validator permit.
    #[serde(default)]
    pub validator_permit: bool,
}

fn yes() -> bool {
    true
}

fn four() -> u8 {
    4
}

impl Neuron {
    /// An axon is served when the IP is not `0.0.0.0` and the port is not 0.
    pub fn is_serving(&self) -> bool {
        self.axon_port != 0 && self.axon_ip != "0.0.0.0" && !self.axon_ip.is_empty()
    }

    /// A validator holds a permit and at least `threshold_tao` of stake.
    pub fn is_validator(&self, threshold_tao: f64) -> bool {
        self.validator_permit && self.stake_tao >= threshold_tao
    }
}

/// A whole metagraph: the neurons of one subnet at one block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metagraph {
    /// Subnet id.
    #[serde(default = "one")]
    pub netuid: u16,
    /// Block the snapshot was read at (0 for a static file).
    #[serde(default)]
    pub block: u64,
    /// The neurons.
    pub neurons: Vec<Neuron>,
}

fn one() -> u16 {
    1
}

/// The message the syncer sends (on the bus) after storing a new snapshot, so workers reload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetagraphUpdated {
    /// Subnet.
    pub netuid: u16,
    /// Block of the new snapshot.
    pub block: u64,
    /// Its id in the store.
    pub snapshot_id: i64,
}

impl From<&NeuronRow> for Neuron {
    fn from(r: &NeuronRow) -> Neuron {
        Neuron {
            uid: r.uid,
            hotkey: r.hotkey.clone(),
            coldkey: r.coldkey.clone(),
            active: r.active,
            axon_ip: r.axon_ip.clone(),
            axon_port: r.axon_port,
            axon_ip_type: r.axon_ip_type,
            stake_tao: r.stake_tao,
            incentive: r.incentive,
            validator_permit: r.validator_permit,
        }
    }
}

/// Why a metagraph file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetagraphFileError {
    /// The file could not be read or written.
    #[error("metagraph file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid metagraph.
    #[error("metagraph file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Metagraph {
    /// Reads and checks a metagraph file.
    pub fn load(path: &Path) -> Result<Metagraph, MetagraphFileError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| MetagraphFileError::Io {
            path: shown.clone(),
            source,
        })?;
        let metagraph: Metagraph =
            serde_json::from_slice(&bytes).map_err(|e| MetagraphFileError::Invalid {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let mut seen = std::collections::HashSet::new();
        for n in &metagraph.neurons {
            if !seen.insert(n.uid) {
                return Err(MetagraphFileError::Invalid {
                    path: shown,
                    message: format!("uid {} appears twice", n.uid),
                });
            }
        }
        Ok(metagraph)
    }

    /// Writes the file atomically: a temporary file in the same directory, then a rename, so a
    /// reader never sees half a file.
    pub fn save_atomically(&self, path: &Path) -> Result<(), MetagraphFileError> {
        let io = |source| MetagraphFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_duplicates() {
        let dir = std::env::temp_dir().join(format!("mg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mg.json");
        std::fs::write(
            &path,
            r#"{"neurons":[{"uid":3,"hotkey":"h","axon_ip":"127.0.0.1","axon_port":9}]}"#,
        )
        .unwrap();
        let mg = Metagraph::load(&path).unwrap();
        assert_eq!(mg.netuid, 1);
        assert!(mg.neurons[0].is_serving());
        assert!(mg.neurons[0].active);
        mg.save_atomically(&path).unwrap();
        assert_eq!(Metagraph::load(&path).unwrap(), mg);

        std::fs::write(&path, r#"{"neurons":[{"uid":3,"hotkey":"h","axon_ip":"1.1.1.1","axon_port":9},{"uid":3,"hotkey":"g","axon_ip":"1.1.1.1","axon_port":9}]}"#).unwrap();
        let err = Metagraph::load(&path).unwrap_err().to_string();
        assert!(err.contains("uid 3 appears twice"), "{err}");
        std::fs::write(&path, "{").unwrap();
        assert!(
            Metagraph::load(&path)
                .unwrap_err()
                .to_string()
                .contains("not valid")
        );
    }
}
