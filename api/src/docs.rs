//! The OpenAPI document (`/openapi.json`), generated from the handlers and types, and Swagger UI
//! at `/docs`, served from assets compiled into the binary (works offline).

use crate::{AppState, events, request, routes};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// The OpenAPI description of the public API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SN1 gateway",
        description = "An API in front of Bittensor subnet 1: ask k miners, stream the answer."
    ),
    paths(
        routes::chat::chat,
        routes::chat::echo,
        routes::ops::livez,
        routes::ops::readyz,
        routes::ops::metrics
    ),
    components(schemas(
        request::ChatRequest,
        events::StreamChunk,
        events::StreamError,
        events::ChatCompletion
    ))
)]
pub struct ApiDoc;

/// `/docs` and `/openapi.json`.
pub fn router() -> axum::Router<AppState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
