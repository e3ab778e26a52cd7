//! The sync loop, the same for both modes: hold the store's sync lock (one writer per netuid;
//! other replicas stand by and retry), read the metagraph at the finalized head, write it in one
//! transaction, notify the workers on the bus, prune old snapshots. Chain errors back off
//! exponentially (capped) and keep the last snapshot; a lost database connection gives the lock
//! up so another replica can take over.

use crate::rpc::ChainClient;
use crate::snapshot::{SnapshotError, read_snapshot};
use crate::status::SyncStatus;
use sn1_contracts::bus::Bus;
use sn1_contracts::metagraph::MetagraphUpdated;
use sn1_contracts::retry::{Backoff, sleep_or_stop};
use sn1_contracts::store::{Retention, SnapshotInfo, Store, StoreError, StoreOutcome, SyncLock};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// What the syncer needs to know.
#[derive(Clone, Debug)]
pub struct SyncerConfig {
    /// Subtensor WebSocket URL (see [`crate::network::resolve_network`]).
    pub chain_url: String,
    /// Subnet to sync.
    pub netuid: u16,
    /// Time between syncs.
    pub interval: Duration,
    /// How long snapshots are kept.
    pub retention: Retention,
    /// Limit for connecting and for each RPC call.
    pub rpc_timeout: Duration,
    /// Longest wait between retries after errors.
    pub max_backoff: Duration,
    /// How often a standby replica tries the lock.
    pub lock_retry: Duration,
}

impl SyncerConfig {
    /// Defaults: every 60 s, 7 days of snapshots, 30 s per call, back-off up to 60 s.
    pub fn new(chain_url: impl Into<String>, netuid: u16) -> Self {
        SyncerConfig {
            chain_url: chain_url.into(),
            netuid,
            interval: Duration::from_secs(60),
            retention: Retention {
                max_age: Some(Duration::from_secs(7 * 86_400)),
                keep_last: None,
            },
            rpc_timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(60),
            lock_retry: Duration::from_secs(5),
        }
    }
}

/// Why a sync (or the syncer) failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Postgres failed or is not migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain failed or answered something unusable.
    #[error(transparent)]
    Chain(#[from] SnapshotError),
    /// Another syncer kept the lock for too long (`--once`).
    #[error("another metagraph syncer held the lock for netuid {netuid} for {waited:?}")]
    LockTimeout {
        /// The subnet.
        netuid: u16,
        /// How long this one waited.
        waited: Duration,
    },
    /// Shutdown was requested before the sync finished.
    #[error("stopped before the sync finished")]
    Cancelled,
}

/// The outcome of one successful sync.
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// The snapshot, new or already stored.
    pub snapshot: SnapshotInfo,
    /// Whether it was written now.
    pub stored: bool,
    /// Neurons in it.
    pub neurons: usize,
    /// Of which serve an axon.
    pub serving: usize,
    /// Time in RPC calls.
    pub fetch_time: Duration,
    /// Time decoding.
    pub decode_time: Duration,
    /// Time writing (the transaction).
    pub write_time: Duration,
    /// Old snapshots deleted afterwards.
    pub pruned: u64,
}

/// The metagraph syncer of one netuid.
pub struct Syncer {
    config: SyncerConfig,
    store: Store,
    bus: Option<Bus>,
    status: Arc<SyncStatus>,
}

impl Syncer {
    /// A syncer writing to `store` (checked to be migrated: fails clearly if not) and telling
    /// workers on `bus`. Without a bus, snapshots are stored but nobody is told (warned once).
    pub async fn new(
        config: SyncerConfig,
        store: Store,
        bus: Option<Bus>,
    ) -> Result<Syncer, SyncError> {
        store.check_migrations().await?;
        if bus.is_none() {
            tracing::warn!("NATS_URL not set: snapshots are stored but workers are not notified");
        }
        let status = Arc::new(SyncStatus::new(config.netuid));
        Ok(Syncer {
            config,
            store,
            bus,
            status,
        })
    }

    /// The shared status (for the ops endpoints).
    pub fn status(&self) -> Arc<SyncStatus> {
        self.status.clone()
    }

    /// The store written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One sync under `lock`: read, write, notify, prune. Drops `chain` on chain errors so the
    /// next try reconnects. Each sync is a trace of its own (a root span with the block,
    /// neurons and whether a snapshot was stored; an error status when it failed).
    pub async fn sync(
        &self,
        lock: &mut SyncLock,
        chain: &mut Option<ChainClient>,
    ) -> Result<SyncReport, SyncError> {
        let span = tracing::info_span!(
            parent: None,
            "metagraph sync",
            otel.status_code = tracing::field::Empty,
            sn1.netuid = self.config.netuid,
            sn1.metagraph.block = tracing::field::Empty,
            sn1.metagraph.neurons = tracing::field::Empty,
            sn1.metagraph.stored = tracing::field::Empty,
        );
        let result = self
            .sync_untraced(lock, chain)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(r) => {
                span.record("sn1.metagraph.block", r.snapshot.block);
                span.record("sn1.metagraph.neurons", r.neurons);
                span.record("sn1.metagraph.stored", r.stored);
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        result
    }

    async fn sync_untraced(
        &self,
        lock: &mut SyncLock,
        chain: &mut Option<ChainClient>,
    ) -> Result<SyncReport, SyncError> {
        let netuid = self.config.netuid;
        let client = match chain.take() {
            Some(c) => c,
            None => ChainClient::connect(&self.config.chain_url, self.config.rpc_timeout)
                .await
                .map_err(SnapshotError::from)?,
        };
        let snapshot = read_snapshot(&client, netuid).await?;
        *chain = Some(client);
        let started = Instant::now();
        let outcome = lock
            .store_snapshot(snapshot.block, &snapshot.block_hash, &snapshot.rows)
            .await?;
        let write_time = started.elapsed();
        let stored = matches!(outcome, StoreOutcome::Stored(_));
        let info = outcome.snapshot().clone();
        if stored && let Some(bus) = &self.bus {
            let update = MetagraphUpdated {
                netuid,
                block: info.block,
                snapshot_id: info.id,
            };
            if let Err(e) = bus.publish_metagraph_updated(&update).await {
                tracing::warn!(error = %e, "snapshot stored, but the workers were not notified");
            }
        }
        let pruned = match lock.prune(self.config.retention).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "pruning old snapshots failed");
                0
            }
        };
        Ok(SyncReport {
            snapshot: info,
            stored,
            neurons: snapshot.rows.len(),
            serving: snapshot.rows.iter().filter(|r| r.is_serving()).count(),
            fetch_time: snapshot.fetch_time,
            decode_time: snapshot.decode_time,
            write_time,
            pruned,
        })
    }

    fn record(&self, result: &Result<SyncReport, SyncError>, took: Duration) {
        self.status.record(result, took);
        if let Ok(r) = result {
            tracing::info!(
                netuid = self.config.netuid,
                block = r.snapshot.block,
                snapshot_id = r.snapshot.id,
                stored = r.stored,
                neurons = r.neurons,
                serving = r.serving,
                fetch_ms = r.fetch_time.as_millis() as u64,
                decode_ms = r.decode_time.as_millis() as u64,
                write_ms = r.write_time.as_millis() as u64,
                pruned = r.pruned,
                "{}",
                if r.stored {
                    "metagraph snapshot stored"
                } else {
                    "metagraph unchanged (block already stored)"
                }
            );
        }
    }

    /// Waits (up to `lock_wait`) for the lock, then syncs once, retrying chain errors up to
    /// `attempts` times with back-off. What `--once` does.
    pub async fn run_once(
        &self,
        shutdown: &CancellationToken,
        lock_wait: Duration,
        attempts: u32,
    ) -> Result<SyncReport, SyncError> {
        let netuid = self.config.netuid;
        let waiting = Instant::now();
        let mut lock = loop {
            if let Some(lock) = self.store.try_lock_sync(netuid).await? {
                break lock;
            }
            if waiting.elapsed() >= lock_wait {
                return Err(SyncError::LockTimeout {
                    netuid,
                    waited: waiting.elapsed(),
                });
            }
            tracing::info!(netuid, "another syncer holds the lock; waiting");
            if !sleep_or_stop(self.config.lock_retry.min(lock_wait), shutdown).await {
                return Err(SyncError::Cancelled);
            }
        };
        self.status.set_leader(true);
        let mut chain = None;
        let mut backoff = Backoff::new(Duration::from_secs(1), self.config.max_backoff);
        let mut result = Err(SyncError::Cancelled);
        for attempt in 1..=attempts.max(1) {
            let started = Instant::now();
            result = self.sync(&mut lock, &mut chain).await;
            self.record(&result, started.elapsed());
            match &result {
                Ok(_) => break,
                Err(e) => tracing::warn!(attempt, error = %e, "sync failed"),
            }
            if attempt < attempts && !sleep_or_stop(backoff.next_delay(), shutdown).await {
                break;
            }
        }
        lock.release().await;
        self.status.set_leader(false);
        result
    }

    /// Syncs every interval until `shutdown`. Never returns an error for chain or database
    /// trouble: it logs, backs off and retries, keeping the last snapshot.
    pub async fn run(&self, shutdown: CancellationToken) {
        let netuid = self.config.netuid;
        let mut lock: Option<SyncLock> = None;
        let mut chain: Option<ChainClient> = None;
        let mut backoff = Backoff::new(Duration::from_secs(1), self.config.max_backoff);
        let mut standby_logged = false;
        while !shutdown.is_cancelled() {
            let mut held = match lock.take() {
                Some(mut l) => {
                    if l.is_alive().await {
                        l
                    } else {
                        tracing::warn!(netuid, "lost the lock connection; trying again");
                        self.status.set_leader(false);
                        continue;
                    }
                }
                None => match self.store.try_lock_sync(netuid).await {
                    Ok(Some(l)) => {
                        tracing::info!(netuid, "holding the syncer lock: this replica writes");
                        self.status.set_leader(true);
                        standby_logged = false;
                        l
                    }
                    Ok(None) => {
                        if !standby_logged {
                            tracing::info!(netuid, "another syncer holds the lock; standing by");
                            standby_logged = true;
                        }
                        if !sleep_or_stop(self.config.lock_retry, &shutdown).await {
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        self.status.record_error(&e.to_string());
                        tracing::warn!(error = %e, "cannot reach the database for the lock");
                        if !sleep_or_stop(backoff.next_delay(), &shutdown).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            let started = Instant::now();
            let result = tokio::select! {
                _ = shutdown.cancelled() => Err(SyncError::Cancelled),
                r = self.sync(&mut held, &mut chain) => r,
            };
            self.record(&result, started.elapsed());
            let wait = match &result {
                Ok(_) => {
                    backoff.reset();
                    lock = Some(held);
                    self.config.interval.saturating_sub(started.elapsed())
                }
                Err(SyncError::Cancelled) => {
                    lock = Some(held);
                    break;
                }
                Err(e @ SyncError::Chain(_)) => {
                    chain = None;
                    lock = Some(held);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?wait, "chain unavailable; keeping the last snapshot");
                    wait
                }
                Err(e) => {
                    // The database (or the lock connection) failed: give the lock up.
                    self.status.set_leader(false);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?wait, "database error; releasing the lock");
                    wait
                }
            };
            if !sleep_or_stop(wait, &shutdown).await {
                break;
            }
        }
        if let Some(l) = lock {
            l.release().await;
        }
        self.status.set_leader(false);
    }
}
