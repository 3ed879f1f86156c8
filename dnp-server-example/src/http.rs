//! HTTP plumbing: extractors that answer in the API's error shape, the correlation id and
//! observation middleware, and cookie helpers.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::ApiError;

/// `Json<T>` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// `Query<T>` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `Path<T>` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The request's correlation id (also in the `x-request-id` response header and in every
/// log line of the request).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The route template a request matched, put in the response by [`route_template`] so the
/// outer [`observe`] layer can label metrics with it.
#[derive(Debug, Clone)]
pub(crate) struct RouteTemplate(pub(crate) String);

/// A client-supplied request id is kept when it is short and plain; otherwise a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Outer middleware: correlation id, a tracing span per request, the latency histogram.
pub(crate) async fn observe(mut req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let route =
        response.extensions().get::<RouteTemplate>().map(|r| r.0.clone()).unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    metrics::histogram!(
        "http_request_duration_milliseconds",
        "method" => method.to_string(),
        "route" => route.clone(),
        "status" => status.to_string(),
    )
    .record(elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| {
        tracing::info!(route = %route, status, elapsed_ms = elapsed.as_millis() as u64, "request finished");
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Route middleware: records the matched route template in the response.
pub(crate) async fn route_template(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let template = matched.map(|m| m.as_str().to_owned());
    let mut response = next.run(req).await;
    if let Some(t) = template {
        response.extensions_mut().insert(RouteTemplate(t));
    }
    response
}

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop when the
/// operator says a proxy sets it.
pub(crate) fn client_addr(
    parts_headers: &HeaderMap,
    connect: Option<&ConnectInfo<SocketAddr>>,
    trust_proxy: bool,
) -> String {
    if trust_proxy
        && let Some(first) = parts_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 64)
    {
        return first.to_owned();
    }
    connect.map(|c| c.0.ip().to_string()).unwrap_or_else(|| "unknown".to_owned())
}

/// The client's address as [`client_addr`] determines it.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl FromRequestParts<crate::state::AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &crate::state::AppState) -> Result<Self, Self::Rejection> {
        let connect = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(client_addr(&parts.headers, connect, state.config().trust_proxy_headers)))
    }
}

/// The value of cookie `name`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: i64,
    http_only: bool,
    secure: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; SameSite=Lax");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; dnp_access=tok; dnp_access_x=no"));
        assert_eq!(cookie(&h, "dnp_access"), Some("tok"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn odd_request_ids_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert("x-request-id", HeaderValue::from_static("a b\"c"));
        assert_ne!(request_id(&h), "a b\"c");
    }
}
