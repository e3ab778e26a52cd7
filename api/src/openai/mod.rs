//! The OpenAI-compatible surface (`/v1`): request parsing ([`request`]), the answer's objects
//! and framing ([`response`]), errors in OpenAI's shape ([`error`]) and the served models
//! ([`models`]). The handlers are in [`crate::routes::openai`]; a `/v1` request takes the same
//! path to the workers as `/chat` ([`crate::submit`]).

pub mod error;
pub mod models;
pub mod request;
pub mod response;
pub mod schema;
