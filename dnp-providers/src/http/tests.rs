//! The client's layers driven through a scripted transport on tokio's paused clock, and
//! the reqwest transport against local sockets.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dnp_core::{ProviderError, ProviderId, TokenSource};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::*;

/// Answers from a script, recording what was sent (bearer included: test only).
#[derive(Debug, Default)]
struct Script {
    answers: Mutex<VecDeque<Result<TransportResponse, TransportError>>>,
    sent: Mutex<Vec<(String, Option<String>)>>,
}

impl Script {
    fn new(answers: Vec<Result<TransportResponse, TransportError>>) -> Arc<Self> {
        Arc::new(Self { answers: Mutex::new(answers.into()), sent: Mutex::default() })
    }

    fn sent(&self) -> Vec<(String, Option<String>)> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for Script {
    async fn send(&self, request: TransportRequest) -> Result<TransportResponse, TransportError> {
        self.sent
            .lock()
            .unwrap()
            .push((request.url.to_string(), request.bearer.as_ref().map(|b| b.expose_secret().to_owned())));
        self.answers.lock().unwrap().pop_front().unwrap_or_else(|| Ok(status(200, "{}")))
    }
}

fn status(code: u16, body: &str) -> TransportResponse {
    TransportResponse { status: code, headers: HeaderMap::new(), body: body.as_bytes().to_vec() }
}

fn too_many(retry_after: &str) -> Result<TransportResponse, TransportError> {
    let mut response = status(429, r#"{"error":{"status":429,"message":"API rate limit exceeded"}}"#);
    response.headers.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
    Ok(response)
}

/// A token source that hands out `token-1`, then `token-2` after a refresh.
#[derive(Debug, Default)]
struct Tokens {
    refreshes: AtomicU32,
}

#[async_trait]
impl TokenSource for Tokens {
    async fn access_token(&self) -> Result<SecretString, ProviderError> {
        Ok(SecretString::from(format!("token-{}", self.refreshes.load(Ordering::SeqCst) + 1)))
    }

    async fn refresh_after_unauthorized(&self, _: &SecretString) -> Result<SecretString, ProviderError> {
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 2;
        Ok(SecretString::from(format!("token-{n}")))
    }
}

fn fast_config() -> HttpConfig {
    HttpConfig {
        provider_rate: RateLimit { per_second: 1000, burst: 1000 },
        connection_rate: RateLimit { per_second: 1000, burst: 1000 },
        ..HttpConfig::default()
    }
}

fn client(script: &Arc<Script>, config: HttpConfig) -> ApiClient {
    ApiClient::with_transport("spotify".parse().unwrap(), "https://api.test/v1", config, script.clone()).unwrap()
}

fn get() -> ApiRequest {
    ApiRequest::get("GET /me/tracks", "/me/tracks").query("offset", 0)
}

#[tokio::test(start_paused = true)]
async fn a_429_is_retried_after_exactly_retry_after_and_counted() {
    let script = Script::new(vec![too_many("7"), too_many("3"), Ok(status(200, r#"{"ok":true}"#))]);
    let api = client(&script, fast_config());
    let tokens = Tokens::default();
    let session = AuthSession::new(&tokens);
    let started = Instant::now();
    let response = api.send(Some(&session), &get()).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(started.elapsed(), Duration::from_secs(10), "7 s then 3 s, exactly");
    let stats = api.stats();
    assert_eq!((stats.requests, stats.rate_limited, stats.rate_limit_retries), (3, 2, 2));
    assert_eq!(stats.transient_retries, 0);
    assert_eq!(api.breaker().state(), BreakerState::Closed, "a 429 does not count against the breaker");
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_too_long_to_wait_is_returned_to_the_caller() {
    let script = Script::new(vec![too_many("600")]);
    let api = client(&script, fast_config());
    let started = Instant::now();
    let err = api.send(None, &get()).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            provider: "spotify".parse().unwrap(),
            retry_after: Some(Duration::from_secs(600))
        }
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(api.stats().requests, 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_retries_are_bounded() {
    let script = Script::new((0..20).map(|_| too_many("1")).collect());
    let api = client(&script, HttpConfig { max_rate_limit_retries: 4, ..fast_config() });
    let err = api.send(None, &get()).await.unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert_eq!(api.stats().requests, 5, "the first call and 4 retries");
}

#[tokio::test(start_paused = true)]
async fn a_quota_answer_is_not_retried() {
    let body = r#"{"error":{"status":429,"message":"quota","reason":"QUOTA_EXCEEDED"}}"#;
    let mut answer = status(429, body);
    answer.headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
    let script = Script::new(vec![Ok(answer)]);
    let api = client(&script, fast_config());
    let err = api.send(None, &get()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::QuotaExceeded { retry_after: Some(d), .. } if d == Duration::from_secs(30)),
        "{err:?}"
    );
    assert_eq!(api.stats().requests, 1);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_with_jitter_then_succeed() {
    let script = Script::new(vec![Ok(status(503, "")), Err(TransportError::Timeout), Ok(status(200, "{}"))]);
    let config = fast_config();
    let api = client(&script, config.clone());
    let started = Instant::now();
    api.send(None, &get()).await.unwrap();
    let policy = RetryPolicy::from_config(&config);
    let (low, high) = (policy.ceiling(0) / 2 + policy.ceiling(1) / 2, policy.ceiling(0) + policy.ceiling(1));
    let elapsed = started.elapsed();
    assert!(elapsed >= low && elapsed <= high, "{elapsed:?} within [{low:?}, {high:?}]");
    assert_eq!(api.stats().transient_retries, 2);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_give_up_after_max_retries_naming_the_endpoint() {
    let script =
        Script::new((0..10).map(|_| Ok(status(502, r#"{"error":{"status":502,"message":"Bad gateway"}}"#))).collect());
    let api = client(&script, fast_config());
    let err = api.send(None, &get()).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Transient { endpoint, detail, .. } if endpoint == "GET /me/tracks" && detail.contains("Bad gateway")),
        "{err:?}"
    );
    assert_eq!(api.stats().requests, 4, "the first call and 3 retries");
}

/// Regression: a playlist insert that timed out was sent again and landed twice.
#[tokio::test(start_paused = true)]
async fn a_non_idempotent_request_is_not_retried_after_a_failure_that_may_have_landed() {
    for failure in [Ok(status(503, "")), Err(TransportError::Timeout), Err(TransportError::Connect("reset".into()))] {
        let script = Script::new(vec![failure, Ok(status(200, "{}"))]);
        let api = client(&script, fast_config());
        let insert =
            ApiRequest::new(reqwest::Method::POST, "POST /playlists/{id}/items", "/playlists/p/items").not_idempotent();
        let err = api.send(None, &insert).await.unwrap_err();
        assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
        assert_eq!(api.stats().requests, 1, "sent once, never repeated");
    }
    // A 429 means the service did not act: it is still retried.
    let script = Script::new(vec![too_many("1"), Ok(status(200, "{}"))]);
    let api = client(&script, fast_config());
    let insert =
        ApiRequest::new(reqwest::Method::POST, "POST /playlists/{id}/items", "/playlists/p/items").not_idempotent();
    api.send(None, &insert).await.unwrap();
    assert_eq!(api.stats().requests, 2);
}

#[tokio::test(start_paused = true)]
async fn a_401_refreshes_once_and_retries_once() {
    let script = Script::new(vec![Ok(status(401, "")), Ok(status(200, "{}"))]);
    let api = client(&script, fast_config());
    let tokens = Tokens::default();
    let session = AuthSession::new(&tokens);
    api.send(Some(&session), &get()).await.unwrap();
    let sent = script.sent();
    assert_eq!(sent[0].1.as_deref(), Some("token-1"));
    assert_eq!(sent[1].1.as_deref(), Some("token-2"));
    assert_eq!(api.stats().refreshes, 1);
    // The session keeps the new token for its next requests.
    api.send(Some(&session), &get()).await.unwrap();
    assert_eq!(script.sent()[2].1.as_deref(), Some("token-2"));

    let script = Script::new(vec![Ok(status(401, "")), Ok(status(401, ""))]);
    let api = client(&script, fast_config());
    let tokens = Tokens::default();
    let err = api.send(Some(&AuthSession::new(&tokens)), &get()).await.unwrap_err();
    assert_eq!(err.code(), "needs_reauth");
    assert_eq!(api.stats().requests, 2, "no second refresh");
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_5_failures_fails_fast_and_recovers_after_3_probes() {
    let script = Script::new((0..5).map(|_| Ok(status(500, ""))).collect());
    let api = client(&script, HttpConfig { max_retries: 0, ..fast_config() });
    for _ in 0..5 {
        assert_eq!(api.send(None, &get()).await.unwrap_err().code(), "transient");
    }
    assert_eq!(api.breaker().state(), BreakerState::Open);
    let started = Instant::now();
    let err = api.send(None, &get()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::ProviderUnavailable { retry_after: Some(d), .. } if d == Duration::from_secs(30)),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO, "at once");
    assert_eq!(api.stats().requests, 5, "nothing was sent while open");
    assert_eq!(api.stats().breaker_rejections, 1);

    tokio::time::advance(Duration::from_secs(30)).await;
    for i in 0..3 {
        api.send(None, &get()).await.unwrap();
        let expected = if i < 2 { BreakerState::HalfOpen } else { BreakerState::Closed };
        assert_eq!(api.breaker().state(), expected, "after probe {i}");
    }
    assert_eq!(api.breaker().trips(), 1);
}

#[tokio::test(start_paused = true)]
async fn statuses_map_to_errors_and_4xx_are_not_retried() {
    for (code, expected) in
        [(400, "invalid_input"), (403, "invalid_input"), (404, "not_found"), (409, "conflict"), (412, "conflict")]
    {
        let script = Script::new(vec![Ok(status(code, r#"{"error":{"status":0,"message":"nope"}}"#))]);
        let api = client(&script, fast_config());
        let err = api.send(None, &get()).await.unwrap_err();
        assert_eq!(err.code(), expected, "{code}: {err}");
        assert_eq!(api.stats().requests, 1);
        assert_eq!(api.breaker().state(), BreakerState::Closed);
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_json_is_a_protocol_error_naming_the_endpoint_and_field() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Page {
        items: Vec<u32>,
        total: u32,
    }
    let script = Script::new(vec![Ok(status(200, r#"{"items":[1,"two"],"total":2}"#)), Ok(status(200, "<html>"))]);
    let api = client(&script, fast_config());
    let err = api.json::<Page>(None, &get()).await.unwrap_err();
    match &err {
        ProviderError::Protocol { endpoint, detail, .. } => {
            assert_eq!(endpoint, "GET /me/tracks");
            assert!(detail.contains("items[1]"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(api.json::<Page>(None, &get()).await, Err(ProviderError::Protocol { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_next_link_to_another_origin_is_refused_before_sending() {
    let script = Script::new(vec![]);
    let api = client(&script, fast_config());
    let tokens = Tokens::default();
    for link in ["https://evil.test/v1/me/tracks?offset=50", "https://api.test/v10/me", "https://api.test.evil/v1/me"] {
        let request = ApiRequest::absolute(reqwest::Method::GET, "GET /me/tracks", url::Url::parse(link).unwrap());
        let err = api.send(Some(&AuthSession::new(&tokens)), &request).await.unwrap_err();
        assert_eq!(err.code(), "protocol", "{link}");
    }
    assert!(script.sent().is_empty(), "the token never left");
    let ok = ApiRequest::absolute(
        reqwest::Method::GET,
        "GET /me/tracks",
        url::Url::parse("https://api.test/v1/me/tracks?offset=50").unwrap(),
    );
    api.send(Some(&AuthSession::new(&tokens)), &ok).await.unwrap();
}

fn secret_request() -> ApiRequest {
    ApiRequest::get("GET /search", "/search").query("q", "isrc:SECRETQUERY").query("access_token", "LEAKEDTOKEN")
}

fn assert_clean(text: &str) {
    for secret in ["SECRETQUERY", "LEAKEDTOKEN", "token-1", "supersecret"] {
        assert!(!text.contains(secret), "{secret} leaked into: {text}");
    }
}

#[tokio::test]
async fn no_token_or_query_string_in_any_error_or_debug_output() {
    // A connection refused by a closed port: reqwest's error names the URL.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = HttpConfig { max_retries: 0, ..fast_config() };
    let api = ApiClient::new("spotify".parse().unwrap(), &format!("http://127.0.0.1:{port}/v1"), config).unwrap();
    let tokens = Tokens::default();
    let err = api.send(Some(&AuthSession::new(&tokens)), &secret_request()).await.unwrap_err();
    assert_eq!(err.code(), "transient");
    assert_clean(&format!("{err} {err:?}"));
    assert_clean(&format!("{:?} {api:?}", secret_request()));

    let request = TransportRequest {
        method: reqwest::Method::GET,
        url: url::Url::parse("https://api.test/v1/search?q=SECRETQUERY").unwrap(),
        bearer: Some(SecretString::from("supersecret".to_owned())),
        json: None,
        headers: vec![],
        secret_headers: vec![("Music-User-Token".into(), SecretString::from("supersecret".to_owned()))],
    };
    assert_clean(&format!("{request:?}"));
    let ok = Script::new(vec![Ok(status(200, "{}"))]);
    let response = client(&ok, fast_config()).send(None, &secret_request()).await.unwrap();
    assert_clean(&format!("{response:?}"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_a_transient_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), listener.accept()).await {
                Ok(Ok((socket, _))) => held.push(socket),
                _ => return,
            }
        }
    });
    let config = HttpConfig {
        request_timeout: Duration::from_millis(200),
        max_retries: 1,
        backoff_base: Duration::from_millis(10),
        ..fast_config()
    };
    let api = ApiClient::new("spotify".parse().unwrap(), &format!("http://{addr}/v1"), config).unwrap();
    let started = std::time::Instant::now();
    let err = api.send(None, &secret_request()).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Transient { detail, .. } if detail == "timed out"), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(400), "two attempts of 200 ms");
    assert_eq!(api.stats().requests, 2);
    assert_clean(&format!("{err} {err:?}"));
    holder.abort();
    let _: &ProviderId = api.provider();
}

/// A recorder keeping the last value of each gauge, the sum of each counter and the count
/// of each histogram, by `name{label=value,…}`.
#[derive(Debug, Default, Clone)]
struct Recorded(Arc<Mutex<std::collections::BTreeMap<String, f64>>>);

#[derive(Debug)]
struct Cell(String, Recorded);

impl Recorded {
    fn get(&self, key: &str) -> Option<f64> {
        self.0.lock().unwrap().get(key).copied()
    }
    fn keys(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
    fn add(&self, key: &str, v: f64) {
        *self.0.lock().unwrap().entry(key.to_owned()).or_default() += v;
    }
    fn cell(&self, key: &metrics::Key) -> Arc<Cell> {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        Arc::new(Cell(format!("{}{{{}}}", key.name(), labels.join(",")), self.clone()))
    }
}

impl metrics::CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.1.add(&self.0, v as f64);
    }
    fn absolute(&self, v: u64) {
        self.1.0.lock().unwrap().insert(self.0.clone(), v as f64);
    }
}

impl metrics::GaugeFn for Cell {
    fn increment(&self, v: f64) {
        self.1.add(&self.0, v);
    }
    fn decrement(&self, v: f64) {
        self.1.add(&self.0, -v);
    }
    fn set(&self, v: f64) {
        self.1.0.lock().unwrap().insert(self.0.clone(), v);
    }
}

impl metrics::HistogramFn for Cell {
    fn record(&self, _: f64) {
        self.1.add(&self.0, 1.0);
    }
}

impl metrics::Recorder for Recorded {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.cell(key))
    }
}

#[test]
fn metrics_count_requests_per_endpoint_and_follow_the_breaker() {
    let recorded = Recorded::default();
    metrics::with_local_recorder(&recorded, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(async {
            let mut answers = vec![too_many("1"), Ok(status(200, "{}"))];
            answers.extend((0..5).map(|_| Ok(status(503, ""))));
            let script = Script::new(answers);
            let api = client(&script, HttpConfig { max_retries: 0, ..fast_config() });
            api.send(None, &get()).await.unwrap();
            for _ in 0..5 {
                let _ = api.send(None, &get()).await;
            }
            assert_eq!(api.breaker().state(), BreakerState::Open);
        });
    });
    let key = |name: &str, labels: &str| format!("{name}{{{labels}}}");
    let endpoint = "provider=spotify,endpoint=GET /me/tracks";
    assert_eq!(
        recorded.get(&key("provider_requests_total", &format!("{endpoint},status=429"))),
        Some(1.0),
        "{:?}",
        recorded.keys()
    );
    assert_eq!(recorded.get(&key("provider_requests_total", &format!("{endpoint},status=200"))), Some(1.0));
    assert_eq!(recorded.get(&key("provider_requests_total", &format!("{endpoint},status=503"))), Some(5.0));
    assert_eq!(recorded.get(&key("provider_request_duration_seconds", endpoint)), Some(7.0));
    assert_eq!(recorded.get(&key("provider_retries_total", &format!("{endpoint},reason=rate_limited"))), Some(1.0));
    assert_eq!(recorded.get(&key("circuit_breaker_state", "provider=spotify")), Some(2.0), "open");
    assert_eq!(recorded.get(&key("circuit_breaker_trips_total", "provider=spotify")), Some(1.0));
    // No URL, query or token ever becomes a label.
    assert!(recorded.keys().iter().all(|k| !k.contains("offset") && !k.contains("token")), "{:?}", recorded.keys());
}
