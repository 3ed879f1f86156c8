//! The API's one error type and its JSON shape: `{"error": {"code", "message"}}`.
//!
//! Every 4xx has a stable `code` per case; a 500 says only that something failed on the
//! server and which request it was (the details go to the log, under the request's span).

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dnp_core::{InputError, ProviderError, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`invalid_input`, `not_found`, `unknown_provider`…).
    pub code: String,
    /// A message a person can read.
    pub message: String,
}

/// An error an API handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a value is not allowed.
    #[error("{message}")]
    BadRequest {
        /// The code.
        code: &'static str,
        /// The message.
        message: String,
    },
    /// 401: not signed in, or the credentials are wrong.
    #[error("{message}")]
    Unauthorized {
        /// The code.
        code: &'static str,
        /// The message.
        message: String,
    },
    /// 403: signed in but not allowed (e.g. a missing CSRF token).
    #[error("{message}")]
    Forbidden {
        /// The code.
        code: &'static str,
        /// The message.
        message: String,
    },
    /// 404: no such thing (or it belongs to someone else).
    #[error("{message}")]
    NotFound {
        /// The code.
        code: &'static str,
        /// The message.
        message: String,
    },
    /// 409: it conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// The code.
        code: &'static str,
        /// The message.
        message: String,
    },
    /// 413: the body is larger than allowed.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not of a type this route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: slow down.
    #[error("too many requests")]
    TooManyRequests {
        /// When to try again.
        retry_after: Duration,
    },
    /// 503: a dependency is down (the body names which, never how).
    #[error("{message}")]
    Unavailable {
        /// The code.
        code: &'static str,
        /// The message.
        message: String,
    },
    /// 500: our fault. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    /// 404 with `code`.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    /// 401 with `code`.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized { code, message: message.into() }
    }

    /// 500, logging `detail`.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "the server failed to handle this request; quote the x-request-id header when reporting it".to_owned()
            }
            Self::TooManyRequests { retry_after } => {
                format!("too many requests; try again in {} s", retry_after.as_secs().max(1))
            }
            other => other.to_string(),
        };
        let body = ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message } };
        let mut response = (status, Json(body)).into_response();
        if let Self::TooManyRequests { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                tracing::error!(error = %err, "database unavailable");
                Self::Unavailable { code: "database_unavailable", message: "the database is unavailable".into() }
            }
            _ => Self::internal(format!("database: {err}")),
        }
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(err: serde_json::Error) -> Self {
        Self::internal(format!("stored JSON: {err}"))
    }
}

impl From<InputError> for ApiError {
    fn from(err: InputError) -> Self {
        match err {
            InputError::UnknownProvider { .. } => Self::not_found("unknown_provider", err.to_string()),
            InputError::InvalidProviderId { .. } => Self::not_found("unknown_provider", err.to_string()),
            InputError::InvalidId { .. } => Self::bad_request("invalid_id", err.to_string()),
            InputError::Json { .. } => Self::bad_request("invalid_json", err.to_string()),
            _ => Self::bad_request("invalid_input", err.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { what } => Self::not_found("not_found", format!("{what} not found")),
            StoreError::Conflict { what } => Self::conflict("conflict", format!("conflict: {what}")),
            StoreError::Input(e) => e.into(),
            StoreError::Kms(e) => {
                tracing::error!(error = %e, "key service failed");
                Self::Unavailable { code: "kms_unavailable", message: "the key service is unavailable".into() }
            }
            other => Self::internal(other),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(err: ProviderError) -> Self {
        match &err {
            ProviderError::NeedsReauth { provider, .. } => Self::conflict(
                "needs_reauth",
                format!("the {provider} connection needs to be authorized again: connect it again"),
            ),
            ProviderError::RateLimited { retry_after, .. } => {
                Self::TooManyRequests { retry_after: retry_after.unwrap_or(Duration::from_secs(5)) }
            }
            ProviderError::Unsupported { .. } => Self::bad_request("unsupported", err.to_string()),
            ProviderError::InvalidInput { provider, .. } => {
                Self::bad_request("provider_rejected", format!("{provider} refused the request"))
            }
            ProviderError::NotFound { .. } => Self::not_found("not_found", err.to_string()),
            _ => {
                tracing::warn!(error = %err, "provider call failed");
                Self::Unavailable {
                    code: err.code(),
                    message: format!("{}: the service is unavailable", provider_of(&err)),
                }
            }
        }
    }
}

fn provider_of(err: &ProviderError) -> String {
    match err {
        ProviderError::Transient { provider, .. }
        | ProviderError::Protocol { provider, .. }
        | ProviderError::ProviderUnavailable { provider, .. }
        | ProviderError::QuotaExceeded { provider, .. }
        | ProviderError::Conflict { provider, .. } => provider.to_string(),
        _ => "provider".to_owned(),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("send the body as JSON with Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            JsonRejection::JsonDataError(e) => Self::bad_request("invalid_json", e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::bad_request("invalid_json", e.body_text()),
            other => Self::bad_request("invalid_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", rejection.body_text())
    }
}
