//! The pages for people, served by the api itself (issue #15).

use crate::AppState;
use axum::Router;

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
}
