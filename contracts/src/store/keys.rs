//! Managed API keys and their fleet-wide limits (issue #14).
//!
//! A key is `sn1-` + 64 random hex digits, shown once when made ([`Store::create_key`]); the
//! store keeps only its SHA-256 ([`key_sha256`]) and a public id (`key-` + 16 hex digits) that
//! audit rows, spans and usage carry. Every request with a managed key is admitted by one call
//! ([`Store::admit_key`]) that checks the key (unknown, revoked, expired) and its limits
//! (requests per minute, answers in flight) against state the whole fleet shares, and — for a
//! key with `max_streams` — takes a lease that [`Store::release_lease`] gives back. Usage is
//! added in sums ([`Store::add_key_usage`]): each api replica sends what it served once a
//! second.
//!
//! Limits: requests per minute are a token bucket of `rpm` tokens refilled at `rpm / 60` a
//! second (a burst of `rpm`, then one request every `60 / rpm` s); answers in flight count the
//! leases not yet released (a lease expires by itself after the request's longest life, should
//! its replica die).

use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The prefix of every managed key (a cheap format check before any lookup).
pub const KEY_PREFIX: &str = "sn1-";

/// A key's limits; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    /// Requests per minute, for the whole fleet.
    pub rpm: Option<u32>,
    /// Answers in flight at once (streamed or not), for the whole fleet.
    pub max_streams: Option<u32>,
}

/// What a new key is made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewKey {
    /// Who it is for (free text, shown in listings).
    pub name: String,
    /// Its limits.
    pub limits: KeyLimits,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A change of a key's limits or expiry: each field `None` is left as it is, `Some(None)`
/// removes the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyChange {
    /// New requests per minute.
    pub rpm: Option<Option<u32>>,
    /// New answers in flight at once.
    pub max_streams: Option<Option<u32>>,
    /// New expiry.
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// A managed key as listed: never the key nor its hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Its public id (`key-…`).
    pub id: String,
    /// Who it is for.
    pub name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its limits.
    #[serde(flatten)]
    pub limits: KeyLimits,
}

/// A key just made: the only time the key itself is known.
#[derive(Clone, Debug, Serialize)]
pub struct CreatedKey {
    /// The key, to hand to its user.
    pub key: String,
    /// Everything else.
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// The verdict on one request with a managed key.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Admitted.
    Admitted {
        /// The key's id.
        key_id: String,
        /// Whether a lease was taken under the request's id (the key has `max_streams`): give
        /// it back with [`Store::release_lease`].
        leased: bool,
        /// When the key expires (`None`: never).
        expires_at: Option<DateTime<Utc>>,
    },
    /// No key has this hash.
    Unknown,
    /// The key was revoked.
    Revoked {
        /// The key's id.
        key_id: String,
    },
    /// The key has expired.
    Expired {
        /// The key's id.
        key_id: String,
    },
    /// Over the key's requests per minute.
    OverRpm {
        /// The key's id.
        key_id: String,
        /// When the next request would be admitted.
        retry_after: Duration,
    },
    /// As many answers in flight as the key may have.
    OverStreams {
        /// The key's id.
        key_id: String,
    },
}

/// What a key's requests used (a sum over some requests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// Requests served.
    pub requests: u64,
    /// Of which streamed.
    pub streams: u64,
    /// Estimated tokens of their prompts and answers.
    pub est_tokens: u64,
}

impl KeyUsage {
    /// Adds `other` to this sum.
    pub fn add(&mut self, other: KeyUsage) {
        self.requests += other.requests;
        self.streams += other.streams;
        self.est_tokens += other.est_tokens;
    }
}

/// The hex SHA-256 under which a key is stored and looked up. A key is 256 random bits, so an
/// unsalted hash cannot be reversed; lookups by hash reveal nothing of the key in their timing.
pub fn key_sha256(key: &str) -> String {
    hex_lower(&Sha256::digest(key.as_bytes()))
}

/// A new random key and id (from the OS's random source, through UUID v4s).
fn generate() -> (String, String) {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let id = format!("key-{}", &hex_lower(uuid::Uuid::new_v4().as_bytes())[..16]);
    (format!("{KEY_PREFIX}{}", hex_lower(&bytes)), id)
}

/// The [`Admission`] named by a backend's verdict (`sn1_admit_key`'s words).
pub(crate) fn verdict(
    key_id: Option<String>,
    verdict: &str,
    retry_after_s: Option<f64>,
    leased: bool,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Admission, StoreError> {
    let key = |k: Option<String>| {
        k.ok_or_else(|| StoreError::Invalid(format!("{verdict} without a key id")))
    };
    Ok(match verdict {
        "unknown" => Admission::Unknown,
        "admitted" => Admission::Admitted {
            key_id: key(key_id)?,
            leased,
            expires_at,
        },
        "revoked" => Admission::Revoked {
            key_id: key(key_id)?,
        },
        "expired" => Admission::Expired {
            key_id: key(key_id)?,
        },
        "streams" => Admission::OverStreams {
            key_id: key(key_id)?,
        },
        "rpm" => Admission::OverRpm {
            key_id: key(key_id)?,
            retry_after: Duration::from_secs_f64(
                retry_after_s
                    .filter(|s| s.is_finite())
                    .unwrap_or(1.0)
                    .clamp(0.0, 3600.0),
            ),
        },
        other => {
            return Err(StoreError::Invalid(format!(
                "unknown admission verdict {other:?}"
            )));
        }
    })
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The longest lifetime a key may be given: 100 years.
pub const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The expiry `lifetime` from now (`30d`, `12h`, … as every duration of the configuration), at
/// most [`MAX_LIFETIME`].
pub fn expires_in(lifetime: &str) -> Result<DateTime<Utc>, String> {
    let parsed = crate::duration::parse_duration(lifetime)?;
    if parsed > MAX_LIFETIME {
        return Err(format!(
            "expiry {lifetime:?} is more than 100 years away (omit it for a key that never expires)"
        ));
    }
    chrono::Duration::from_std(parsed)
        .ok()
        .and_then(|d| Utc::now().checked_add_signed(d))
        .ok_or_else(|| format!("expiry {lifetime:?} is too far away"))
}

/// Longest name accepted for a key.
pub const MAX_NAME_CHARS: usize = 200;

fn check_new(new: &NewKey) -> Result<(), StoreError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::Refused(format!(
            "a key's name must have 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    check_limits(&new.limits)
}

fn check_limits(limits: &KeyLimits) -> Result<(), StoreError> {
    for (name, value) in [("rpm", limits.rpm), ("max_streams", limits.max_streams)] {
        if value.is_some_and(|v| v == 0 || v > i32::MAX as u32) {
            return Err(StoreError::Refused(format!(
                "{name} must be a positive whole number (or no limit)"
            )));
        }
    }
    Ok(())
}

impl Store {
    /// Makes a key; the returned [`CreatedKey::key`] is the only copy.
    pub async fn create_key(&self, new: &NewKey) -> Result<CreatedKey, StoreError> {
        check_new(new)?;
        let (key, id) = generate();
        let sha = key_sha256(&key);
        let info = match self {
            Store::Postgres(pool) => super::postgres::keys::create(pool, &id, &sha, new).await?,
            Store::Sqlite(pool) => super::sqlite::keys::create(pool, &id, &sha, new).await?,
        };
        Ok(CreatedKey { key, info })
    }

    /// Every managed key, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        match self {
            Store::Postgres(pool) => super::postgres::keys::list(pool).await,
            Store::Sqlite(pool) => super::sqlite::keys::list(pool).await,
        }
    }

    /// Revokes key `id` (at once, on every replica); `None` when there is no such key.
    pub async fn revoke_key(&self, id: &str) -> Result<Option<KeyInfo>, StoreError> {
        match self {
            Store::Postgres(pool) => super::postgres::keys::revoke(pool, id).await,
            Store::Sqlite(pool) => super::sqlite::keys::revoke(pool, id).await,
        }
    }

    /// Changes key `id`'s limits or expiry (a changed rpm starts with a full bucket); `None`
    /// when there is no such key.
    pub async fn change_key(
        &self,
        id: &str,
        change: &KeyChange,
    ) -> Result<Option<KeyInfo>, StoreError> {
        check_limits(&KeyLimits {
            rpm: change.rpm.flatten(),
            max_streams: change.max_streams.flatten(),
        })?;
        match self {
            Store::Postgres(pool) => super::postgres::keys::change(pool, id, change).await,
            Store::Sqlite(pool) => super::sqlite::keys::change(pool, id, change).await,
        }
    }

    /// Admits request `request_id` presented with the key hashed to `sha256`: checks the key
    /// and its limits for the whole fleet and, when admitted, takes a lease that lasts at most
    /// `lease` (until [`Store::release_key`]).
    pub async fn admit_key(
        &self,
        sha256: &str,
        request_id: uuid::Uuid,
        lease: Duration,
    ) -> Result<Admission, StoreError> {
        match self {
            Store::Postgres(pool) => {
                super::postgres::keys::admit(pool, sha256, request_id, lease).await
            }
            Store::Sqlite(pool) => {
                super::sqlite::keys::admit(pool, sha256, request_id, lease).await
            }
        }
    }

    /// Gives back request `request_id`'s lease (its answer ended).
    pub async fn release_lease(&self, request_id: uuid::Uuid) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => super::postgres::keys::release(pool, request_id).await,
            Store::Sqlite(pool) => super::sqlite::keys::release(pool, request_id).await,
        }
    }

    /// Adds each key's `usage` to its row of the current minute (one statement for all).
    pub async fn add_key_usage(&self, usage: &[(String, KeyUsage)]) -> Result<(), StoreError> {
        if usage.is_empty() {
            return Ok(());
        }
        match self {
            Store::Postgres(pool) => super::postgres::keys::add_usage(pool, usage).await,
            Store::Sqlite(pool) => super::sqlite::keys::add_usage(pool, usage).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_only_their_hash_is_derived() {
        let (a, id_a) = generate();
        let (b, id_b) = generate();
        assert_ne!(a, b);
        assert_ne!(id_a, id_b);
        assert!(
            a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 64,
            "{a}"
        );
        assert!(id_a.starts_with("key-") && id_a.len() == 20, "{id_a}");
        assert_eq!(
            key_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn expiry_is_a_duration_from_now_and_at_most_a_century() {
        let in_a_day = expires_in("1d").unwrap() - Utc::now();
        assert!((in_a_day.num_seconds() - 86_400).abs() <= 1);
        assert!(expires_in("500000w").unwrap_err().contains("100 years"));
        assert!(expires_in("soon").is_err());
    }

    #[test]
    fn names_and_limits_are_checked() {
        let ok = NewKey {
            name: "team".into(),
            limits: KeyLimits::default(),
            expires_at: None,
        };
        assert!(check_new(&ok).is_ok());
        let blank = NewKey {
            name: "  ".into(),
            ..ok.clone()
        };
        assert!(check_new(&blank).is_err());
        let zero = NewKey {
            limits: KeyLimits {
                rpm: Some(0),
                max_streams: None,
            },
            ..ok
        };
        assert!(check_new(&zero).unwrap_err().to_string().contains("rpm"));
    }
}
