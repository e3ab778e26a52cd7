//! One managed-key admission at the store, run as a task of its own. Its client may stop
//! waiting (the admission timeout, a closed connection), but an admission already sent may still
//! take a token and a lease: so it runs to its end (at most [`STORE_LIMIT`]), and unless its
//! client read its verdict, the lease it may have taken is given back then — not before, or the
//! lease could be taken after its release.

use super::memory::RecentKeys;
use sn1_contracts::store::keys::Admission;
use sn1_contracts::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The longest an admission waits for the store: a connection cut off mid-query would
/// otherwise hold its place (and a pooled connection) until TCP gives up, many minutes later.
pub const STORE_LIMIT: Duration = Duration::from_secs(10);

/// An admission sent to the store.
pub(super) struct InFlight {
    call: Option<JoinHandle<Result<Admission, StoreError>>>,
    store: Store,
    recent: Arc<RecentKeys>,
    sha: String,
    request_id: uuid::Uuid,
    settled: bool,
}

impl InFlight {
    /// Asks `store` to admit request `request_id` with key `sha` (a lease of `lease`), holding
    /// `held` (the key's turn and a place at the store) until the store has answered.
    pub(super) fn start(
        store: &Store,
        recent: Arc<RecentKeys>,
        sha: &str,
        request_id: uuid::Uuid,
        lease: Duration,
        held: impl Send + 'static,
    ) -> InFlight {
        let call = tokio::spawn({
            let (store, sha) = (store.clone(), sha.to_string());
            async move {
                let _held = held;
                let admit = store.admit_key(&sha, request_id, lease);
                tokio::time::timeout(STORE_LIMIT, admit)
                    .await
                    .unwrap_or_else(|_| {
                        let late = format!("no answer from the key store within {STORE_LIMIT:?}");
                        Err(StoreError::Busy(late))
                    })
            }
        });
        InFlight {
            call: Some(call),
            store: store.clone(),
            recent,
            sha: sha.to_string(),
            request_id,
            settled: false,
        }
    }

    /// The store's answer if it comes within `within`, else `None`. A verdict is the caller's
    /// to act on (a lease it took included); after an error, or no answer in time, dropping
    /// this gives back whatever lease the admission took.
    pub(super) async fn answer(
        &mut self,
        within: Duration,
    ) -> Option<Result<Admission, StoreError>> {
        let call = self.call.as_mut()?;
        let answer = match tokio::time::timeout(within, call).await {
            Err(_) => return None,
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(StoreError::Query("the admission task failed".into())),
        };
        self.call = None;
        self.settled = answer.is_ok();
        Some(answer)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // shutting down: a lease expires by itself
        };
        let call = self.call.take();
        let (store, recent) = (self.store.clone(), self.recent.clone());
        let (sha, request_id) = (self.sha.clone(), self.request_id);
        runtime.spawn(async move {
            let late = match call {
                Some(call) => call.await.ok(),
                None => None,
            };
            match late {
                Some(Ok(Admission::Admitted { leased: false, .. }))
                | Some(Ok(Admission::OverRpm { .. } | Admission::OverStreams { .. })) => return,
                Some(Ok(
                    Admission::Unknown | Admission::Revoked { .. } | Admission::Expired { .. },
                )) => {
                    // Not to be let in during an outage either.
                    recent.forget(&sha);
                    return;
                }
                // Leased, or an error after which the store may have committed: give it back
                // (giving back a lease never taken changes nothing).
                Some(Ok(Admission::Admitted { leased: true, .. })) | Some(Err(_)) | None => {}
            }
            if let Err(e) = store.release_lease(request_id).await {
                tracing::warn!(error = %e, "key lease not given back (it expires by itself)");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sn1_contracts::store::keys::{KeyLimits, NewKey, key_sha256};

    const LEASE: Duration = Duration::from_secs(60);

    async fn one_stream_key() -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::sqlite(&dir.path().join("keys.sqlite3"))
            .await
            .expect("sqlite");
        let new = NewKey {
            name: "one stream".into(),
            limits: KeyLimits {
                rpm: None,
                max_streams: Some(1),
            },
            expires_at: None,
        };
        let made = store.create_key(&new).await.expect("a key");
        (dir, store, key_sha256(&made.key))
    }

    async fn admit(store: &Store, sha: &str) -> Admission {
        let id = uuid::Uuid::now_v7();
        store.admit_key(sha, id, LEASE).await.expect("a verdict")
    }

    #[tokio::test]
    async fn an_admission_nobody_waits_for_gives_its_lease_back_once_answered() {
        let (_dir, store, sha) = one_stream_key().await;
        let recent = Arc::new(RecentKeys::default());
        // Its client went away at once: the admission still runs, takes the lease, gives it back.
        let id = uuid::Uuid::now_v7();
        drop(InFlight::start(&store, recent.clone(), &sha, id, LEASE, ()));
        let mut admitted = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Admission::Admitted { .. } = admit(&store, &sha).await {
                admitted = true;
                break;
            }
        }
        assert!(
            admitted,
            "the abandoned admission's lease was never given back"
        );
    }

    #[tokio::test]
    async fn a_verdict_read_leaves_the_lease_to_its_caller() {
        let (_dir, store, sha) = one_stream_key().await;
        let recent = Arc::new(RecentKeys::default());
        let id = uuid::Uuid::now_v7();
        let mut call = InFlight::start(&store, recent, &sha, id, LEASE, ());
        let answer = call.answer(Duration::from_secs(5)).await;
        assert!(
            matches!(answer, Some(Ok(Admission::Admitted { leased: true, .. }))),
            "{answer:?}"
        );
        drop(call);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(
            admit(&store, &sha).await,
            Admission::OverStreams { .. }
        ));
    }
}
