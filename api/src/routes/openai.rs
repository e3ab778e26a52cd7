//! `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}`: OpenAI's API over the
//! same queue → worker → miners path as `/chat`.

use crate::AppState;
use crate::error::ApiError;
use crate::keys;
use crate::openai::error::OpenAiError;
use crate::openai::models::ModelProfile;
use crate::openai::request as v1_request;
use crate::openai::response::{self, Answering, estimate_tokens};
use crate::request::is_json_content_type;
use crate::submit::{self, Submission, Submitted};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Serialize;
use sn1_contracts::job::Endpoint;
use utoipa::ToSchema;

/// A chat completion from k miners: streamed as SSE `chat.completion.chunk`s ending in
/// `data: [DONE]` with `"stream": true`, otherwise one `chat.completion`.
#[utoipa::path(post, path = "/v1/chat/completions", request_body = crate::openai::schema::CompletionRequestSchema,
    params(("api_key" = String, Header, description = "API key (also `api-key` or `Authorization: Bearer`)")),
    responses((status = 200, description = "The answer")))]
pub async fn chat_completions(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, OpenAiError> {
    let admitted = submit::admit(&state, request).await?;
    if !declares_json(&admitted.headers) {
        return Err(ApiError::UnsupportedMediaType.into());
    }
    let parsed = v1_request::parse(
        &admitted.body,
        &state.config.limits,
        &state.config.models,
        admitted.received_at,
    )?;
    let stream = parsed.parsed.stream;
    let submission = Submission {
        endpoint: Endpoint::Chat,
        label: "v1_chat_completions",
        params: parsed.parsed.params,
        deadline: parsed.parsed.deadline,
        stream,
    };
    let prompt_tokens = estimate_tokens(submission.prompt_chars());
    let Submitted { relay, request_id } = submit::submit(&state, admitted, submission).await?;
    let answering = Answering {
        id: format!("chatcmpl-{request_id}"),
        model: parsed.model,
        created: chrono::Utc::now().timestamp(),
        prompt_tokens,
        include_usage: parsed.include_usage,
    };
    if stream {
        Ok(response::stream(relay, answering, &request_id))
    } else {
        response::collect(relay, answering, &request_id).await
    }
}

/// No `Content-Type` is read as JSON, as on `/chat`.
fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.to_str().is_ok_and(is_json_content_type))
}

/// `GET /v1/models`.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    object: String,
    /// The models.
    data: Vec<Model>,
}

/// One model: an id and its routing profile.
#[derive(Serialize, ToSchema)]
pub struct Model {
    /// The id to put in `model`.
    id: String,
    /// Always `model`.
    object: String,
    /// Unix seconds (0: configured, not created).
    created: i64,
    /// Always `sn1-gateway`.
    owned_by: String,
    /// How requests for this model are routed.
    sn1: ModelProfile,
}

impl From<&ModelProfile> for Model {
    fn from(profile: &ModelProfile) -> Self {
        Model {
            id: profile.id.clone(),
            object: "model".into(),
            created: 0,
            owned_by: "sn1-gateway".into(),
            sn1: profile.clone(),
        }
    }
}

/// The models this deployment serves.
#[utoipa::path(get, path = "/v1/models",
    params(("api_key" = String, Header, description = "API key (also `api-key` or `Authorization: Bearer`)")),
    responses((status = 200, description = "The models", body = ModelList)))]
pub async fn models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ModelList>, OpenAiError> {
    keys::authenticate(&state, &headers, uuid::Uuid::now_v7()).await?;
    Ok(Json(ModelList {
        object: "list".into(),
        data: state.config.models.all().iter().map(Model::from).collect(),
    }))
}

/// One model.
#[utoipa::path(get, path = "/v1/models/{id}",
    params(
        ("id" = String, Path, description = "The model id"),
        ("api_key" = String, Header, description = "API key (also `api-key` or `Authorization: Bearer`)")
    ),
    responses((status = 200, description = "The model", body = Model)))]
pub async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Model>, OpenAiError> {
    keys::authenticate(&state, &headers, uuid::Uuid::now_v7()).await?;
    state
        .config
        .models
        .get(&id)
        .map(|p| Json(Model::from(p)))
        .ok_or_else(|| OpenAiError::model_not_found(&id))
}
