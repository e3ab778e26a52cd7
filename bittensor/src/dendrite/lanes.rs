//! Nonce lanes: why concurrent queries to one axon never trip its replay check.
//!
//! A 10.x axon remembers the last nonce per (dendrite hotkey, uuid) and refuses any request whose
//! nonce is not newer (401 "a newer one was last processed"). Two queries to the same axon sent
//! at once travel on different connections and can arrive in either order, so with one uuid
//! the later-signed one may arrive first and the other is refused — bittensor's own dendrite
//! has this race. Here each in-flight query to an axon holds a *lane*: a uuid that no other
//! in-flight query to that axon is using. The nonce is taken when the lane is, and the lane is
//! held until the axon has answered the request's headers (it has checked the nonce by then).
//!
//! Lane 0 is the process's main uuid; more lanes (at most [`MAX_LANES`]) are made only when a
//! miner is asked more than once at the same time, so each miner remembers at most that many
//! uuids of ours. More concurrent queries than that to one axon wait for a lane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most uuids (and so concurrent queries) per axon.
pub const MAX_LANES: usize = 16;

/// Most axons tracked; beyond that the table is cleared of idle axons.
const MAX_AXONS: usize = 8192;

pub(super) struct Lanes {
    uuids: Vec<String>,
    axons: Mutex<HashMap<String, Arc<AxonLanes>>>,
}

struct AxonLanes {
    permits: Arc<Semaphore>,
    free: Mutex<Vec<usize>>,
}

/// A lane held for one query; given back on drop.
pub(super) struct LaneGuard {
    axon: Arc<AxonLanes>,
    lane: usize,
    uuid: String,
    _permit: OwnedSemaphorePermit,
}

impl LaneGuard {
    /// The uuid to send on this lane.
    pub(super) fn uuid(&self) -> &str {
        &self.uuid
    }
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        self.axon
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.lane);
    }
}

impl Lanes {
    /// Lanes whose first uuid is `main` and whose others are uuid v1 on `node_id`.
    pub(super) fn new(main: String, node_id: &[u8; 6]) -> Lanes {
        let mut uuids = vec![main];
        for _ in 1..MAX_LANES {
            uuids.push(uuid::Uuid::now_v1(node_id).to_string());
        }
        Lanes {
            uuids,
            axons: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a free lane to `axon` (lowest free index first).
    pub(super) async fn acquire(&self, axon: &str) -> LaneGuard {
        let entry = {
            let mut axons = self.axons.lock().unwrap_or_else(|e| e.into_inner());
            if axons.len() >= MAX_AXONS && !axons.contains_key(axon) {
                axons.retain(|_, a| Arc::strong_count(a) > 1);
            }
            axons
                .entry(axon.to_string())
                .or_insert_with(|| {
                    Arc::new(AxonLanes {
                        permits: Arc::new(Semaphore::new(MAX_LANES)),
                        free: Mutex::new((0..MAX_LANES).rev().collect()),
                    })
                })
                .clone()
        };
        // The semaphore is never closed.
        let permit = entry
            .permits
            .clone()
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("lane semaphore closed"));
        let lane = {
            let mut free = entry.free.lock().unwrap_or_else(|e| e.into_inner());
            // Lowest index first, so a miner asked one query at a time only ever sees lane 0.
            free.sort_unstable_by(|a, b| b.cmp(a));
            free.pop().unwrap_or(0)
        };
        LaneGuard {
            uuid: self.uuids[lane].clone(),
            axon: entry,
            lane,
            _permit: permit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_queries_to_one_axon_get_distinct_uuids() {
        let lanes = Lanes::new("main".into(), &[1, 2, 3, 4, 5, 6]);
        let a = lanes.acquire("x").await;
        let b = lanes.acquire("x").await;
        let c = lanes.acquire("y").await;
        assert_eq!(a.uuid(), "main");
        assert_ne!(b.uuid(), "main");
        assert_eq!(c.uuid(), "main", "another axon starts at lane 0");
        drop(a);
        let d = lanes.acquire("x").await;
        assert_eq!(d.uuid(), "main", "a freed lane is reused, lowest first");
        let held: Vec<_> =
            futures::future::join_all((0..MAX_LANES - 2).map(|_| lanes.acquire("x"))).await;
        let mut uuids: Vec<&str> = held.iter().map(|g| g.uuid()).collect();
        uuids.push(b.uuid());
        uuids.push(d.uuid());
        uuids.sort();
        uuids.dedup();
        assert_eq!(uuids.len(), MAX_LANES);
        // All lanes busy: the next one waits until one is given back.
        let waiting = lanes.acquire("x");
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        drop(held);
        assert!(futures::poll!(waiting.as_mut()).is_ready());
    }
}
