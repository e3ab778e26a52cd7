//! The metagraph the worker picks miners from: the newest stored snapshot of its netuid
//! (written by the metagraph syncer, reloaded on the bus's metagraph notices and by a periodic
//! check), or a static file (`--metagraph-file`, which overrides the store), or a fixed value
//! (tests, simnet). Store snapshots come from the chain, where anyone registers any axon IP:
//! they are screened by an [`AxonPolicy`] when loaded; a file or fixed value is the operator's
//! own list and is used as written. Readers take a cheap snapshot (`Arc`) so a reload never blocks a job, and a
//! failed reload keeps the current metagraph.

use crate::axon_policy::AxonPolicy;
use sn1_contracts::bus::MetagraphUpdates;
use sn1_contracts::metagraph::{Metagraph, MetagraphFileError};
use sn1_contracts::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the metagraph comes from.
#[derive(Clone, Default)]
enum Source {
    #[default]
    Fixed,
    File(PathBuf),
    Store {
        store: Store,
        netuid: u16,
        /// Id of the loaded snapshot (0: none yet).
        loaded: Arc<AtomicI64>,
        /// Which axons of a snapshot may be asked.
        axons: AxonPolicy,
    },
}

/// Why the metagraph could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The metagraph file.
    #[error(transparent)]
    File(#[from] MetagraphFileError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The current metagraph, swappable.
#[derive(Clone, Default)]
pub struct Directory {
    current: Arc<RwLock<Arc<Metagraph>>>,
    source: Source,
}

impl Directory {
    /// A directory holding `metagraph` (tests, simnet).
    pub fn fixed(metagraph: Metagraph) -> Self {
        Directory {
            current: Arc::new(RwLock::new(Arc::new(metagraph))),
            source: Source::Fixed,
        }
    }

    /// A directory backed by a metagraph file, read now.
    pub fn from_file(path: &Path) -> Result<Self, MetagraphFileError> {
        let metagraph = Metagraph::load(path)?;
        Ok(Directory {
            current: Arc::new(RwLock::new(Arc::new(metagraph))),
            source: Source::File(path.to_path_buf()),
        })
    }

    /// A directory backed by the syncer's snapshots of `netuid` in `store`: checks the schema (a
    /// clear error if `sn1-gateway migrate` has not run) and loads the newest snapshot; with
    /// none yet it starts empty (not ready) and picks the first one up later. Every snapshot
    /// loaded is screened by `axons`: neurons on addresses it refuses are left out.
    pub async fn from_store(
        store: Store,
        netuid: u16,
        axons: AxonPolicy,
    ) -> Result<Self, StoreError> {
        store.check_migrations().await?;
        let directory = Directory {
            current: Arc::new(RwLock::new(Arc::new(Metagraph {
                netuid,
                block: 0,
                neurons: Vec::new(),
            }))),
            source: Source::Store {
                store,
                netuid,
                loaded: Arc::default(),
                axons,
            },
        };
        if !directory.refresh_store().await? {
            tracing::warn!(
                netuid,
                "no metagraph snapshot in the database yet; waiting for the metagraph syncer"
            );
        }
        Ok(directory)
    }

    /// Reads the file again (file-backed directories only; others are unchanged). Keeps the
    /// current metagraph when the file is unreadable.
    pub fn reload(&self) -> Result<(), MetagraphFileError> {
        if let Source::File(path) = &self.source {
            let metagraph = Metagraph::load(path)?;
            self.replace(metagraph);
        }
        Ok(())
    }

    /// Brings the metagraph up to date with its source: the file is read again; from the store,
    /// the newest snapshot is loaded when it is not the one held. Returns whether it changed.
    pub async fn refresh(&self) -> Result<bool, DirectoryError> {
        match &self.source {
            Source::Fixed => Ok(false),
            Source::File(_) => {
                self.reload()?;
                Ok(true)
            }
            Source::Store { .. } => Ok(self.refresh_store().await?),
        }
    }

    /// [`Directory::refresh`] of a store-backed directory (`false` for the others).
    async fn refresh_store(&self) -> Result<bool, StoreError> {
        match &self.source {
            Source::Fixed | Source::File(_) => Ok(false),
            Source::Store {
                store,
                netuid,
                loaded,
                axons,
            } => {
                let held = loaded.load(Ordering::SeqCst);
                match store.latest_snapshot(*netuid).await?.map(|s| s.id) {
                    None => return Ok(false),
                    Some(id) if id == held => return Ok(false),
                    Some(_) => {}
                }
                let Some((info, mut metagraph)) = store.latest_metagraph(*netuid).await? else {
                    return Ok(false);
                };
                let refused: usize = axons.screen(&mut metagraph).values().sum();
                let age = (chrono::Utc::now() - info.taken_at).num_seconds();
                tracing::info!(
                    netuid = info.netuid,
                    block = info.block,
                    snapshot_id = info.id,
                    neurons = metagraph.neurons.len(),
                    refused,
                    age_seconds = age,
                    "metagraph loaded from the store"
                );
                loaded.store(info.id, Ordering::SeqCst);
                self.replace(metagraph);
                Ok(true)
            }
        }
    }

    /// The id of the loaded store snapshot (store-backed directories that loaded one).
    pub fn snapshot_id(&self) -> Option<i64> {
        match &self.source {
            Source::Store { loaded, .. } => {
                Some(loaded.load(Ordering::SeqCst)).filter(|id| *id > 0)
            }
            _ => None,
        }
    }

    /// Keeps a store-backed directory current until `shutdown`: refreshes on every notice of
    /// `updates` for its netuid and every `poll` (in case a notice was missed). Returns at once
    /// for other directories.
    pub async fn follow_updates(
        &self,
        mut updates: MetagraphUpdates,
        poll: Duration,
        shutdown: CancellationToken,
    ) {
        let Source::Store { netuid, .. } = &self.source else {
            return;
        };
        let netuid = *netuid;
        let mut ticker = tokio::time::interval(poll.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
                update = updates.next() => match update {
                    Some(u) if u.netuid == netuid => {
                        tracing::debug!(block = u.block, snapshot_id = u.snapshot_id, "metagraph updated");
                    }
                    Some(_) => continue,
                    None => {
                        updates = MetagraphUpdates::none();
                        continue;
                    }
                },
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot reload the metagraph; keeping the current one");
            }
        }
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
