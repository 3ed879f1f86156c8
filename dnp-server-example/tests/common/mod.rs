//! The in-process test harness: a server over a temporary SQLite file (or a fresh
//! PostgreSQL database), driven through `tower::ServiceExt::oneshot`.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dnp_server::{AppState, Backends, Config, Database, Mode, Providers};
use serde_json::Value;
use tower::ServiceExt;

pub mod spotify;

pub const SECRET: &str = "test-session-secret-0123456789abcdef-0123456789";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub dir: tempfile::TempDir,
    pub pg_admin: Option<(String, String)>,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

pub fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("SESSION_SECRET".into(), SECRET.into());
    vars.insert("DATA_DIR".into(), dir.display().to_string());
    vars.insert("DATABASE_URL".into(), format!("sqlite://{}", dir.join("test.db").display()));
    vars.insert("PUBLIC_BASE_URL".into(), "http://127.0.0.1:9".into());
    vars.insert("LOGIN_RATE_PER_MINUTE".into(), "1000".into());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_lookup(Mode::Serve, |k| vars.get(k).cloned()).expect("test config")
}

impl TestApp {
    pub async fn new() -> Self {
        Self::build(Providers::new(), &[]).await
    }

    pub async fn build(providers: Providers, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), extra);
        let db = dnp_server::run::connect_and_migrate(&config).await.expect("database");
        let backends = dnp_server::run::backends(&config, db).await.expect("backends");
        Self::from_parts(config, backends, providers, dir, None)
    }

    /// A server on a new PostgreSQL database made through DNP_TEST_POSTGRES_URL.
    pub async fn postgres(providers: Providers) -> Self {
        let admin = std::env::var("DNP_TEST_POSTGRES_URL")
            .expect("DNP_TEST_POSTGRES_URL is not set: run scripts/test (it starts PostgreSQL and sets it)");
        let name = format!("dnp_server_test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&admin).await.expect("admin connection");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
        pool.close().await;
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("DNP_TEST_POSTGRES_URL must end in /database"),
        };
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), &[("DATABASE_URL", &url)]);
        let db = dnp_server::run::connect_and_migrate(&config).await.expect("database");
        let backends = dnp_server::run::backends(&config, db).await.expect("backends");
        Self::from_parts(config, backends, providers, dir, Some((admin, name)))
    }

    pub fn from_parts(
        config: Config,
        backends: Backends,
        providers: Providers,
        dir: tempfile::TempDir,
        pg_admin: Option<(String, String)>,
    ) -> Self {
        let state = AppState::new(config, backends, providers);
        let router = dnp_server::router(state.clone());
        Self { state, router, dir, pg_admin }
    }

    /// Drops the PostgreSQL database, if any.
    pub async fn cleanup(self) {
        self.state.db().close().await;
        if let Some((admin, name)) = &self.pg_admin {
            let pool = sqlx::PgPool::connect(admin).await.unwrap();
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }

    pub async fn raw(&self, req: Request<Body>) -> Response {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response { status, headers, body, text }
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        self.raw(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// Registers `email` and returns its access token and user id.
    pub async fn register(&self, email: &str) -> (String, String) {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/register",
                None,
                Some(serde_json::json!({"email": email, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        (r.body["access_token"].as_str().unwrap().to_owned(), r.body["user"]["id"].as_str().unwrap().to_owned())
    }
}

pub fn error_code(r: &Response) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("")
}

pub type Shared<T> = Arc<T>;

pub fn db_of(app: &TestApp) -> &Database {
    app.state.db()
}
