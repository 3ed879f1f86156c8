//! HTTP statuses and error bodies mapped to [`ProviderError`].

use std::time::Duration;

use dnp_core::{ProviderError, ProviderId};
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::redact::redact_text;

/// The parts of a service's JSON error body dnp reads. Understands the Web API shape
/// `{"error": {"status": 404, "message": "…", "reason": "…"}}`, the OAuth shape
/// `{"error": "invalid_grant", "error_description": "…"}` and the JSON:API shape
/// `{"errors": [{"status": "409", "code": "…", "detail": "…"}]}` (TIDAL; the first error
/// object is read: `detail` or `title` as the message, `code` as the reason).
/// Google's APIs use the Web API shape with the reason inside
/// `{"error": {"code": 403, "message": "…", "errors": [{"reason": "quotaExceeded"}]}}`: the
/// first `errors[].reason` is read when `error.reason` is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// The message, at most 200 characters, redacted.
    pub message: Option<String>,
    /// A machine-readable reason or OAuth error code (`QUOTA_EXCEEDED`, `invalid_grant`).
    pub reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawError {
    Api { error: RawApiError },
    OAuth { error: String, error_description: Option<String> },
    JsonApi { errors: Vec<RawJsonApiError> },
}

#[derive(Deserialize)]
struct RawJsonApiError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
struct RawApiError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// Google's APIs (YouTube): `{"error": {"code", "message", "errors": [{"reason"…}]}}`.
    #[serde(default)]
    errors: Vec<RawErrorItem>,
}

#[derive(Deserialize)]
struct RawErrorItem {
    #[serde(default)]
    reason: Option<String>,
}

fn clip(text: &str) -> String {
    let text: String = text.chars().take(200).collect();
    redact_text(&text)
}

impl ErrorBody {
    /// Reads `body`; anything that is not one of the known shapes gives an empty body.
    pub fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<RawError>(body) {
            Ok(RawError::Api { error }) => {
                let reason = error.reason.or_else(|| error.errors.into_iter().find_map(|e| e.reason));
                Self { message: error.message.as_deref().map(clip), reason: reason.as_deref().map(clip) }
            }
            Ok(RawError::OAuth { error, error_description }) => {
                Self { message: error_description.as_deref().map(clip), reason: Some(clip(&error)) }
            }
            Ok(RawError::JsonApi { errors }) => match errors.first() {
                Some(e) => Self {
                    message: e.detail.as_deref().or(e.title.as_deref()).map(clip),
                    reason: e.code.as_deref().map(clip),
                },
                None => Self::default(),
            },
            Err(_) => Self::default(),
        }
    }

    /// The message, or a stand-in naming the status.
    pub fn describe(&self, status: u16) -> String {
        match (&self.message, &self.reason) {
            (Some(m), Some(r)) => format!("HTTP {status} {r}: {m}"),
            (Some(m), None) => format!("HTTP {status}: {m}"),
            (None, Some(r)) => format!("HTTP {status} {r}"),
            (None, None) => format!("HTTP {status}"),
        }
    }
}

/// The `Retry-After` header as a duration: whole or decimal seconds. An HTTP date or
/// anything else gives `None` (the caller backs off instead).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// Maps a non-2xx answer other than 401 and 429 (which the client handles itself) to
/// its error.
pub(crate) fn map_status(provider: &ProviderId, endpoint: &str, status: u16, body: &ErrorBody) -> ProviderError {
    let detail = body.describe(status);
    match status {
        400 | 405..=408 | 410 | 411 | 413..=428 | 431..=499 => {
            ProviderError::InvalidInput { provider: provider.clone(), endpoint: endpoint.to_owned(), detail }
        }
        401 => ProviderError::NeedsReauth { provider: provider.clone(), reason: detail },
        // Google's APIs (YouTube): a spent daily quota, and per-user or per-project rate limits.
        403 if matches!(body.reason.as_deref(), Some("quotaExceeded" | "dailyLimitExceeded")) => {
            ProviderError::QuotaExceeded { provider: provider.clone(), retry_after: None }
        }
        403 if matches!(body.reason.as_deref(), Some("rateLimitExceeded" | "userRateLimitExceeded")) => {
            ProviderError::RateLimited { provider: provider.clone(), retry_after: None }
        }
        403 if body.message.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains("scope")) => {
            ProviderError::NeedsReauth { provider: provider.clone(), reason: format!("missing permission: {detail}") }
        }
        403 => ProviderError::InvalidInput {
            provider: provider.clone(),
            endpoint: endpoint.to_owned(),
            detail: format!("forbidden: {detail}"),
        },
        404 => ProviderError::NotFound { provider: provider.clone(), what: format!("{endpoint} ({detail})") },
        409 | 412 => ProviderError::Conflict { provider: provider.clone(), what: format!("{endpoint}: {detail}") },
        429 if body.reason.as_deref() == Some("QUOTA_EXCEEDED") => {
            ProviderError::QuotaExceeded { provider: provider.clone(), retry_after: None }
        }
        429 => ProviderError::RateLimited { provider: provider.clone(), retry_after: None },
        _ => ProviderError::Transient { provider: provider.clone(), endpoint: endpoint.to_owned(), detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> ProviderId {
        "spotify".parse().unwrap()
    }

    #[test]
    fn error_bodies_of_both_shapes_are_read() {
        let api = ErrorBody::parse(br#"{"error":{"status":404,"message":"Non existing id"}}"#);
        assert_eq!(api.message.as_deref(), Some("Non existing id"));
        let quota = ErrorBody::parse(br#"{"error":{"status":429,"message":"x","reason":"QUOTA_EXCEEDED"}}"#);
        assert_eq!(quota.reason.as_deref(), Some("QUOTA_EXCEEDED"));
        let oauth = ErrorBody::parse(br#"{"error":"invalid_grant","error_description":"Refresh token revoked"}"#);
        assert_eq!(oauth.reason.as_deref(), Some("invalid_grant"));
        assert_eq!(ErrorBody::parse(b"<html>oops</html>"), ErrorBody::default());
        let jsonapi = ErrorBody::parse(
            br#"{"errors":[{"status":"409","code":"IDEMPOTENT_REQUEST_IN_PROGRESS","detail":"Request already in progress"}]}"#,
        );
        assert_eq!(jsonapi.reason.as_deref(), Some("IDEMPOTENT_REQUEST_IN_PROGRESS"));
        assert_eq!(jsonapi.message.as_deref(), Some("Request already in progress"));
        let no_code = ErrorBody::parse(br#"{"errors":[{"status":"429","detail":"Rate limit exceeded"}]}"#);
        assert_eq!((no_code.message.as_deref(), no_code.reason), (Some("Rate limit exceeded"), None));
    }

    #[test]
    fn statuses_map_to_errors_by_meaning() {
        let body = ErrorBody::default();
        let e = |s| map_status(&p(), "GET /x", s, &body);
        assert_eq!(e(400).code(), "invalid_input");
        assert_eq!(e(403).code(), "invalid_input");
        assert_eq!(e(404).code(), "not_found");
        assert_eq!(e(409).code(), "conflict");
        assert_eq!(e(412).code(), "conflict");
        assert_eq!(e(500).code(), "transient");
        assert_eq!(e(503).code(), "transient");
        let scope = ErrorBody { message: Some("Insufficient client scope".into()), reason: None };
        assert_eq!(map_status(&p(), "GET /x", 403, &scope).code(), "needs_reauth");
        let quota = ErrorBody { message: None, reason: Some("QUOTA_EXCEEDED".into()) };
        assert_eq!(map_status(&p(), "GET /x", 429, &quota).code(), "quota_exceeded");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(reqwest::header::RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(parse_retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn google_error_bodies_give_their_reason_and_quota_403s_map_by_it() {
        let body = ErrorBody::parse(
            br#"{"error":{"code":403,"message":"quota","errors":[{"message":"quota","domain":"youtube.quota","reason":"quotaExceeded"}]}}"#,
        );
        assert_eq!(body.reason.as_deref(), Some("quotaExceeded"));
        let reason = |r: &str| ErrorBody { message: Some("m".into()), reason: Some(r.into()) };
        assert_eq!(map_status(&p(), "GET /x", 403, &reason("quotaExceeded")).code(), "quota_exceeded");
        assert_eq!(map_status(&p(), "GET /x", 403, &reason("dailyLimitExceeded")).code(), "quota_exceeded");
        assert_eq!(map_status(&p(), "GET /x", 403, &reason("userRateLimitExceeded")).code(), "rate_limited");
        assert_eq!(map_status(&p(), "GET /x", 403, &reason("forbidden")).code(), "invalid_input");
    }
}
