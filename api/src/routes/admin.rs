//! `/admin/keys`: managed API keys over HTTP, the same operations as `sn1-gateway keys`.
//! Guarded by `Authorization: Bearer <ADMIN_KEY>` (compared in constant time); without
//! `ADMIN_KEY` the admin API is off (403), and without a store it cannot work (503).

use crate::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer};
use serde_json::json;
use sn1_contracts::store::Store;
use sn1_contracts::store::keys::{CreatedKey, KeyChange, KeyInfo, KeyLimits, NewKey, expires_in};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

/// An error of the admin API, in the `/chat` shape `{"error": {"type", "message"}}`.
#[derive(Debug)]
pub struct AdminError(StatusCode, &'static str, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"type": self.1, "message": self.2}});
        (self.0, Json(body)).into_response()
    }
}

impl From<sn1_contracts::store::StoreError> for AdminError {
    fn from(e: sn1_contracts::store::StoreError) -> Self {
        if e.is_permanent() {
            return AdminError(StatusCode::BAD_REQUEST, "invalid_request", e.to_string());
        }
        tracing::warn!(error = %e, "admin: key store error");
        AdminError(
            StatusCode::SERVICE_UNAVAILABLE,
            "key_store_unavailable",
            "the key store cannot be reached; retry shortly".into(),
        )
    }
}

fn not_found(id: &str) -> AdminError {
    AdminError(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no key has the id {id:?}"),
    )
}

fn bad(message: String) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// The caller holds the admin key, and there is a store to act on.
fn guard<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a Store, AdminError> {
    let Some(admin) = &state.admin_key else {
        return Err(AdminError(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off on this gateway (set ADMIN_KEY)".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .as_bytes();
    let expected = admin.expose_secret().as_bytes();
    if !(given.len() == expected.len() && bool::from(given.ct_eq(expected))) {
        return Err(AdminError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong admin key (Authorization: Bearer <ADMIN_KEY>)".into(),
        ));
    }
    state.store.as_ref().ok_or_else(|| {
        AdminError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_store",
            "managed keys need a store: set DATABASE_URL".into(),
        )
    })
}

/// `POST /admin/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Who the key is for (1 to 200 characters, not only spaces).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
    /// Requests per minute, for the whole fleet (none: no limit).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    rpm: Option<u32>,
    /// Answers in flight at once, for the whole fleet (none: no limit).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2147483647)]
    max_streams: Option<u32>,
    /// Lifetime: a number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`), e.g. `30d` (none: never
    /// expires).
    #[serde(default)]
    #[schema(pattern = r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h|d|w)?\s*$")]
    expires: Option<String>,
}

/// `PATCH /admin/keys/{id}`: an absent field is left as it is, `null` removes the limit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeKey {
    /// New requests per minute (`null`: no limit).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 2147483647)]
    rpm: Option<Option<u32>>,
    /// New answers in flight at once (`null`: no limit).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 2147483647)]
    max_streams: Option<Option<u32>>,
    /// New lifetime from now, e.g. `30d` (`null`: never expires).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h|d|w)?\s*$")]
    expires: Option<Option<String>>,
}

/// A field that is present (possibly `null`) is `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The keys, listed.
#[derive(serde::Serialize, ToSchema)]
pub struct KeyList {
    /// Every managed key, oldest first; never a key nor its hash.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<KeyInfo>,
}

/// The body, which must be one JSON object (serde would also take a struct as an array).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(bad("the body must be a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("invalid body: {e}")))
}

/// Makes a key; the answer holds the key itself, shown this once.
#[utoipa::path(post, path = "/admin/keys", request_body = CreateKey,
    responses(
        (status = 201, description = "The new key: `key` (shown once), `id`, `name`, limits, expiry", body = Object),
        (status = 400, description = "Invalid body (the message names the field)"),
        (status = 401, description = "Missing or wrong admin key"),
        (status = 403, description = "The admin API is off (no ADMIN_KEY)"),
        (status = 503, description = "No store, or the store cannot be reached"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, &'static str); 1],
        Json<CreatedKey>,
    ),
    AdminError,
> {
    let store = guard(&state, &headers)?;
    let body: CreateKey = parse(&body)?;
    let new = NewKey {
        name: body.name,
        limits: KeyLimits {
            rpm: body.rpm,
            max_streams: body.max_streams,
        },
        expires_at: body
            .expires
            .as_deref()
            .map(expires_in)
            .transpose()
            .map_err(bad)?,
    };
    let created = store.create_key(&new).await?;
    tracing::info!(key_id = %created.info.id, "admin: key created");
    // The body holds the key: no cache along the way may keep it.
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    Ok((StatusCode::CREATED, no_store, Json(created)))
}

/// Every managed key (no secrets).
#[utoipa::path(get, path = "/admin/keys",
    responses(
        (status = 200, description = "The keys", body = KeyList),
        (status = 401, description = "Missing or wrong admin key"),
        (status = 403, description = "The admin API is off (no ADMIN_KEY)"),
        (status = 503, description = "No store, or the store cannot be reached"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<KeyList>, AdminError> {
    let store = guard(&state, &headers)?;
    Ok(Json(KeyList {
        keys: store.list_keys().await?,
    }))
}

/// Changes a key's limits or expiry (on every replica from its next request).
#[utoipa::path(patch, path = "/admin/keys/{id}", request_body = ChangeKey,
    params(("id" = String, Path, description = "The key's id (`key-…`)")),
    responses(
        (status = 200, description = "The key as changed", body = Object),
        (status = 400, description = "Invalid body (the message names the field)"),
        (status = 401, description = "Missing or wrong admin key"),
        (status = 403, description = "The admin API is off (no ADMIN_KEY)"),
        (status = 404, description = "No key has this id"),
        (status = 503, description = "No store, or the store cannot be reached"),
    ))]
pub async fn change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<KeyInfo>, AdminError> {
    let store = guard(&state, &headers)?;
    let body: ChangeKey = parse(&body)?;
    let expires_at = match body.expires {
        Some(Some(text)) => Some(Some(expires_in(&text).map_err(bad)?)),
        Some(None) => Some(None),
        None => None,
    };
    let change = KeyChange {
        rpm: body.rpm,
        max_streams: body.max_streams,
        expires_at,
    };
    let changed = store.change_key(&id, &change).await?;
    let changed = changed.ok_or_else(|| not_found(&id))?;
    tracing::info!(key_id = %changed.id, "admin: key changed");
    Ok(Json(changed))
}

/// Revokes a key (on every replica from its next request).
#[utoipa::path(delete, path = "/admin/keys/{id}",
    params(("id" = String, Path, description = "The key's id (`key-…`)")),
    responses(
        (status = 200, description = "The key, revoked", body = Object),
        (status = 401, description = "Missing or wrong admin key"),
        (status = 403, description = "The admin API is off (no ADMIN_KEY)"),
        (status = 404, description = "No key has this id"),
        (status = 503, description = "No store, or the store cannot be reached"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<KeyInfo>, AdminError> {
    let store = guard(&state, &headers)?;
    let revoked = store.revoke_key(&id).await?.ok_or_else(|| not_found(&id))?;
    tracing::info!(key_id = %revoked.id, "admin: key revoked");
    Ok(Json(revoked))
}
