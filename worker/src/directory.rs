//! The metagraph the worker picks miners from. Today it is read from a static file
//! (`--metagraph-file`); the syncer's Postgres snapshots plug in here later. Readers take a
//! cheap snapshot (`Arc`) so a reload never blocks a job.

use sn1_contracts::metagraph::{Metagraph, MetagraphFileError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The current metagraph, swappable.
#[derive(Clone, Default)]
pub struct Directory {
    current: Arc<RwLock<Arc<Metagraph>>>,
    file: Option<PathBuf>,
}

impl Directory {
    /// A directory holding `metagraph` (tests, simnet).
    pub fn fixed(metagraph: Metagraph) -> Self {
        Directory {
            current: Arc::new(RwLock::new(Arc::new(metagraph))),
            file: None,
        }
    }

    /// A directory backed by a metagraph file, read now.
    pub fn from_file(path: &Path) -> Result<Self, MetagraphFileError> {
        let metagraph = Metagraph::load(path)?;
        Ok(Directory {
            current: Arc::new(RwLock::new(Arc::new(metagraph))),
            file: Some(path.to_path_buf()),
        })
    }

    /// Reads the file again (on a metagraph-updated notification or SIGHUP). Keeps the current
    /// metagraph when the file is unreadable.
    pub fn reload(&self) -> Result<(), MetagraphFileError> {
        if let Some(path) = &self.file {
            let metagraph = Metagraph::load(path)?;
            self.replace(metagraph);
        }
        Ok(())
    }

    /// Installs a new metagraph.
    pub fn replace(&self, metagraph: Metagraph) {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(metagraph);
    }

    /// The current metagraph.
    pub fn snapshot(&self) -> Arc<Metagraph> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
