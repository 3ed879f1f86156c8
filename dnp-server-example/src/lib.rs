//! # dnp-server
//!
//! The reference server of dnp ("No Drake in the House"): the engine composed into the
//! product people deploy. One binary, `dnp-server`, with four modes:
//!
//! | command | what it runs |
//! |---|---|
//! | `dnp-server demo` | everything in-process: SQLite file, local KMS key, SQL job queue, the music service emulators, a demo user |
//! | `dnp-server serve` | the HTTP API (and a worker, in the embedded SQLite default) |
//! | `dnp-server worker` | background jobs: scans, enforcement, rollbacks, token refresh, scheduled re-enforcement |
//! | `dnp-server migrate` | applies the database migrations and exits |
//!
//! Configuration comes from the environment ([`config::Config`]); every variable is listed
//! in `docs/operations.md`. The API is described by the OpenAPI document the server serves
//! at `/api/v1/openapi.json`, generated from the handlers in this crate.
//!
//! ## Embedding in tests
//!
//! [`api::router`] builds the whole HTTP application over an [`AppState`]; tests drive it
//! in-process with `tower::ServiceExt::oneshot` or a listener on `127.0.0.1:0`.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub(crate) mod crypto;
pub mod db;
pub mod demo;
pub mod error;
pub mod http;
pub mod idp;
pub mod idp_emulator;
pub mod jobs;
pub(crate) mod live_sessions;
pub mod login_limit;
pub mod mail;
pub mod run;
pub mod state;
pub mod store;
pub mod web;
pub mod worker;

pub use api::router;
pub use config::{Config, ConfigError, Mode};
pub use db::Database;
pub use error::ApiError;
pub use state::{AppState, Backends, HealthCheck, ProviderEntry, Providers};
