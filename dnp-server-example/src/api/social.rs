//! Sign-in with Google, Apple and GitHub: `/auth/oauth/{idp}/authorize` and `/callback`.
//!
//! The `state` is single use and expires after 10 minutes, kept hashed in `oauth_states` like
//! the connection flow's, and bound to the browser that started the flow: the authorize step
//! sets a random value in an HttpOnly cookie ([`BINDING_COOKIE`], its path under
//! `/api/v1/auth/oauth/{idp}`) and keeps its SHA-256 with the state; the callback wants the
//! same cookie back (else `oauth_state_mismatch`), so a sign-in started by someone else
//! cannot be completed in a victim's browser (login CSRF). The PKCE verifier is sealed; the
//! OIDC nonce is checked in the ID token. A returning identity signs into its linked account;
//! a new one links to the account with the same *verified* email, or creates one.
//!
//! An account with a second factor gets the same 5-minute `mfa` step token as a password
//! login: as JSON for an API client; for a browser in an HttpOnly cookie ([`MFA_COOKIE`], its
//! path `/api/v1/auth/oauth/mfa`, never in a URL) with a redirect to `/signin?step=mfa`, where
//! the code is sent to `POST /auth/oauth/mfa/verify`.

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use dnp_core::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::accounts::{
    LoginResponse, TokenResponse, UserRow, complete_mfa_login, create_user, token_response, user_by_id,
};
use crate::auth::{self, Claims, normalize_email};
use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::db::{ms, now_ms};
use crate::error::{ApiError, ErrorBody};
use crate::http::{ApiJson, ApiPath, ApiQuery, ClientAddr, cookie, set_cookie};
use crate::idp::{self, CallbackExtras, ExternalIdentity, Idp};
use crate::state::AppState;
use crate::with_pool;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authorize))
        .routes(routes!(callback_get, callback_post))
        .routes(routes!(mfa_verify))
}

const STATE_TTL_MINUTES: i64 = 10;

/// The cookie that carries a browser's `mfa` step token from the callback to
/// `POST /auth/oauth/mfa/verify`.
pub const MFA_COOKIE: &str = "dnp_oauth_mfa";
const MFA_COOKIE_PATH: &str = "/api/v1/auth/oauth/mfa";
/// How long the `mfa` step token lives, in seconds (as a password login's).
const MFA_STEP_SECS: i64 = 300;

/// The cookie that binds a sign-in's `state` to the browser that started it.
pub const BINDING_COOKIE: &str = "dnp_oauth_binding";

/// The binding cookie of `idp`: HttpOnly, its path `/api/v1/auth/oauth/{idp}` (so flows with
/// two providers do not overwrite each other's). Apple answers with a cross-site form post,
/// which carries only `SameSite=None` cookies, and those must be `Secure` (browsers keep
/// `Secure` cookies of `http://localhost` and `http://127.0.0.1` too); the others come back
/// by a top-level GET redirect, which carries `SameSite=Lax` ones.
fn binding_cookie(state: &AppState, idp: Idp, value: &str, max_age_secs: i64) -> HeaderValue {
    let (same_site, secure) = match idp {
        Idp::Apple => ("None", true),
        Idp::Google | Idp::GitHub => ("Lax", state.config().secure_cookies()),
    };
    let mut c = format!(
        "{BINDING_COOKIE}={value}; Path=/api/v1/auth/oauth/{}; Max-Age={max_age_secs}; SameSite={same_site}; HttpOnly",
        idp.as_str()
    );
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds the expired binding cookie of the route's provider (the callback spends it).
fn clear_binding(state: &AppState, id: &str, mut r: Response) -> Response {
    if let Some(idp) = Idp::parse(id) {
        r.headers_mut().append(header::SET_COOKIE, binding_cookie(state, idp, "", 0));
    }
    r
}

/// Whether the request is a browser navigation (answer with redirects, not JSON).
fn is_navigation(headers: &HeaderMap) -> bool {
    if headers.get("sec-fetch-mode").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"navigate")) {
        return true;
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accept.contains("text/html") && !accept.contains("application/json")
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An error as JSON, or for a browser a redirect to `/signin?error=code`.
fn fail(navigation: bool, e: ApiError) -> Response {
    if navigation {
        return see_other(&format!("/signin?error={}", e.code()));
    }
    e.into_response()
}

fn configured(state: &AppState, id: &str) -> Result<Idp, ApiError> {
    match Idp::parse(id) {
        Some(idp) if state.config().identity_providers.offers(idp) => Ok(idp),
        _ => Err(idp::unknown_idp(id)),
    }
}

/// Where to send the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInAuthorize {
    /// The identity provider's authorization URL.
    pub authorize_url: String,
    /// Until when the callback accepts this request.
    pub expires_at: chrono::DateTime<Utc>,
}

/// Starts signing in with an identity provider: a redirect (302) to it, or with
/// `Accept: application/json` its URL as JSON. Either way the answer sets the
/// `dnp_oauth_binding` cookie, which the callback requires.
#[utoipa::path(get, path = "/auth/oauth/{idp}/authorize", tag = "accounts",
    params(("idp" = String, Path, description = "google, apple or github")),
    responses((status = 302, description = "Redirect to the identity provider"), (status = 200, body = SignInAuthorize),
        (status = 404, body = ErrorBody)))]
async fn authorize(State(state): State<AppState>, headers: HeaderMap, ApiPath(id): ApiPath<String>) -> Response {
    let navigation = is_navigation(&headers);
    match start(&state, &id).await {
        Ok((idp, started, binding)) => {
            let wants_json = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("application/json"));
            let mut r = if wants_json && !navigation {
                Json(started).into_response()
            } else {
                let mut r = StatusCode::FOUND.into_response();
                if let Ok(v) = HeaderValue::from_str(&started.authorize_url) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            };
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut().append(header::SET_COOKIE, binding_cookie(&state, idp, &binding, STATE_TTL_MINUTES * 60));
            r
        }
        Err(e) => fail(navigation, e),
    }
}

/// Records a new sign-in state; returns the provider, where to send the browser, and the
/// binding cookie's value.
async fn start(state: &AppState, id: &str) -> Result<(Idp, SignInAuthorize, String), ApiError> {
    let idp = configured(state, id)?;
    let redirect = idp::redirect_uri(&state.config().public_base_url, idp);
    let started = idp::authorize(&state.config().identity_providers, idp, &redirect)?;
    let state_hash = sha256_hex(&started.state);
    let verifier = started.verifier.as_ref().map(|v| state.0.sealer.seal(v, &format!("pkce:{state_hash}")));
    let binding = random_token(32);
    let now = Utc::now();
    let expires_at = now + Duration::minutes(STATE_TTL_MINUTES);
    with_pool!(state.db(), pool => {
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1").bind(ms(now)).execute(pool).await?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, purpose, user_id, provider, verifier_sealed, nonce, binding_hash, expires_at, created_at) \
             VALUES ($1, 'signin', NULL, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&state_hash)
        .bind(idp.as_str())
        .bind(&verifier)
        .bind(&started.nonce)
        .bind(sha256_hex(&binding))
        .bind(ms(expires_at))
        .bind(ms(now))
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok((idp, SignInAuthorize { authorize_url: started.url, expires_at }, binding))
}

/// The identity provider's answer: `code` and `state`, or `error`. Apple posts them as a
/// form, with `user` (the name) on the first authorization.
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct SignInCallback {
    /// The authorization code.
    pub code: Option<String>,
    /// The state from the authorize step.
    pub state: Option<String>,
    /// The provider's error (`access_denied`…).
    pub error: Option<String>,
    /// Apple: the user's name and email as JSON, sent only the first time. The name becomes
    /// the account's `display_name` when the identity is first linked; the email is not used
    /// (it comes from the signed ID token).
    pub user: Option<String>,
}

impl std::fmt::Debug for SignInCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInCallback").field("error", &self.error).finish_non_exhaustive()
    }
}

/// Completes signing in (Google, GitHub): tokens as JSON (or `mfa_required`), or for a
/// browser the session cookies and a redirect to `/dashboard` (or, for an account with a
/// second factor, the `dnp_oauth_mfa` cookie and a redirect to `/signin?step=mfa`).
#[utoipa::path(get, path = "/auth/oauth/{idp}/callback", tag = "accounts",
    params(("idp" = String, Path, description = "google, apple or github"), SignInCallback),
    responses((status = 200, body = LoginResponse), (status = 303, description = "Browser: to /dashboard, /signin?step=mfa or /signin?error=code"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn callback_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<SignInCallback>,
) -> Response {
    let navigation = is_navigation(&headers);
    let r = match finish(&state, &id, q, cookie(&headers, BINDING_COOKIE)).await {
        Ok(outcome) => done(&state, navigation, outcome),
        Err(e) => fail(navigation, e),
    };
    clear_binding(&state, &id, r)
}

/// Completes signing in with Apple (`response_mode=form_post`).
#[utoipa::path(post, path = "/auth/oauth/{idp}/callback", tag = "accounts",
    params(("idp" = String, Path, description = "apple")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "code, state, user or error"),
    responses((status = 200, body = LoginResponse), (status = 303, description = "Browser: to /dashboard, /signin?step=mfa or /signin?error=code"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn callback_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let navigation = is_navigation(&headers);
    let mut q = SignInCallback::default();
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "code" => q.code = Some(v.into_owned()),
            "state" => q.state = Some(v.into_owned()),
            "error" => q.error = Some(v.into_owned()),
            "user" => q.user = Some(v.into_owned()),
            _ => {}
        }
    }
    if Idp::parse(&id) != Some(Idp::Apple) {
        return fail(
            navigation,
            ApiError::bad_request("invalid_callback", "only Sign in with Apple answers with a form post"),
        );
    }
    let r = match finish(&state, &id, q, cookie(&headers, BINDING_COOKIE)).await {
        Ok(outcome) => done(&state, navigation, outcome),
        Err(e) => fail(navigation, e),
    };
    clear_binding(&state, &id, r)
}

/// How a callback that verified the identity ends.
enum Outcome {
    /// Signed in: the token response (JSON and the session cookies).
    Session(Response),
    /// The account has a second factor: the `mfa` step token.
    Mfa(String),
}

fn done(state: &AppState, navigation: bool, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Session(r) if navigation => {
            let mut redirect = see_other("/dashboard");
            for c in r.headers().get_all(header::SET_COOKIE) {
                redirect.headers_mut().append(header::SET_COOKIE, c.clone());
            }
            redirect
        }
        Outcome::Session(r) => r,
        // The token goes in a cookie only this sign-in step's route sees, not in the URL
        // (history, logs, Referer).
        Outcome::Mfa(token) if navigation => {
            let mut redirect = see_other("/signin?step=mfa");
            let secure = state.config().secure_cookies();
            redirect.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(MFA_COOKIE, &token, MFA_COOKIE_PATH, MFA_STEP_SECS, true, secure),
            );
            redirect
        }
        Outcome::Mfa(token) => {
            Json(LoginResponse::MfaRequired { mfa_required: true, mfa_token: token }).into_response()
        }
    }
}

/// The TOTP code that completes a browser's sign-in with an identity provider.
#[derive(Deserialize, ToSchema)]
pub struct SignInMfa {
    /// The 6-digit code.
    pub code: String,
}

impl std::fmt::Debug for SignInMfa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInMfa").finish_non_exhaustive()
    }
}

/// Completes a browser's sign-in with an identity provider for an account with a second
/// factor: the step token is the `dnp_oauth_mfa` cookie the callback set (API clients send
/// the `mfa_token` the callback returned to `/auth/mfa/verify` instead). Code guesses count
/// against the login limits.
#[utoipa::path(post, path = "/auth/oauth/mfa/verify", tag = "accounts", request_body = SignInMfa,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn mfa_verify(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignInMfa>,
) -> Response {
    let secure = state.config().secure_cookies();
    let clear = || set_cookie(MFA_COOKIE, "", MFA_COOKIE_PATH, 0, true, secure);
    let Some(token) = cookie(&headers, MFA_COOKIE) else {
        return ApiError::unauthorized("invalid_mfa_token", "the sign-in step expired; sign in again").into_response();
    };
    match complete_mfa_login(&state, &addr, token, &body.code).await {
        Ok(mut r) => {
            r.headers_mut().append(header::SET_COOKIE, clear());
            r
        }
        // A wrong code may be retried with the same step; an expired step may not.
        Err(e) if e.code() == "invalid_mfa_token" => {
            let mut r = e.into_response();
            r.headers_mut().append(header::SET_COOKIE, clear());
            r
        }
        Err(e) => e.into_response(),
    }
}

#[derive(sqlx::FromRow)]
struct StateRow {
    purpose: String,
    provider: String,
    verifier_sealed: Option<String>,
    nonce: Option<String>,
    binding_hash: Option<String>,
    expires_at: i64,
}

/// 400 `oauth_state_mismatch`: the callback came to a browser that did not start the flow.
fn state_mismatch() -> ApiError {
    ApiError::bad_request(
        "oauth_state_mismatch",
        "this sign-in was not started in this browser (or its cookie was blocked); start again from the sign-in page",
    )
}

async fn finish(state: &AppState, id: &str, q: SignInCallback, binding: Option<&str>) -> Result<Outcome, ApiError> {
    let idp = configured(state, id)?;
    if let Some(error) = q.error {
        let error: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        return Err(ApiError::bad_request("authorization_denied", format!("the identity provider refused: {error}")));
    }
    let (Some(code), Some(raw_state)) = (q.code, q.state) else {
        return Err(ApiError::bad_request("invalid_callback", "the callback needs code and state"));
    };
    let invalid_state =
        || ApiError::bad_request("invalid_state", "this sign-in request is unknown, used or expired; start again");
    let hash = sha256_hex(&raw_state);
    let row: Option<StateRow> = with_pool!(state.db(), pool => {
        sqlx::query_as(
            "DELETE FROM oauth_states WHERE state_hash = $1 \
             RETURNING purpose, provider, verifier_sealed, nonce, binding_hash, expires_at",
        )
        .bind(&hash)
        .fetch_optional(pool)
        .await?
    });
    let row = row.ok_or_else(invalid_state)?;
    if row.purpose != "signin" || row.provider != idp.as_str() || row.expires_at < now_ms() {
        return Err(invalid_state());
    }
    // The state is spent either way: a mismatched one cannot be retried with another cookie.
    let bound = match (binding, &row.binding_hash) {
        (Some(cookie), Some(expected)) => constant_time_eq(sha256_hex(cookie).as_bytes(), expected.as_bytes()),
        _ => false,
    };
    if !bound {
        tracing::info!(idp = idp.as_str(), cookie = binding.is_some(), "sign-in callback without its binding cookie");
        return Err(state_mismatch());
    }
    let verifier = match &row.verifier_sealed {
        Some(sealed) => Some(
            state
                .0
                .sealer
                .open(sealed, &format!("pkce:{hash}"))
                .ok_or_else(|| ApiError::internal("the PKCE verifier does not open"))?,
        ),
        None => None,
    };
    let redirect = idp::redirect_uri(&state.config().public_base_url, idp);
    let extras = CallbackExtras {
        verifier: verifier.as_ref().map(secrecy::ExposeSecret::expose_secret),
        nonce: row.nonce.as_deref(),
        apple_user: q.user.as_deref(),
    };
    let identity = idp::complete(&state.config().identity_providers, idp, &redirect, &code, extras).await?;
    let user = resolve_account(state, idp, &identity).await?;
    let user_id = UserId::from_str(&user.id).map_err(ApiError::internal)?;
    if user.totp_enabled {
        let now = Utc::now().timestamp();
        let claims =
            Claims { sub: user.id.clone(), sid: String::new(), typ: "mfa".into(), iat: now, exp: now + MFA_STEP_SECS };
        tracing::info!(user_id = %user_id, idp = idp.as_str(), "identity provider sign-in waits for the second factor");
        return Ok(Outcome::Mfa(state.0.jwt.sign(&claims)?));
    }
    let issued = auth::start_session(state, user_id).await?;
    tracing::info!(user_id = %user_id, idp = idp.as_str(), private_relay = identity.private_relay, "signed in with an identity provider");
    Ok(Outcome::Session(token_response(state, user.view()?, issued)))
}

/// The account of `identity`: its linked one, else the one with its verified email (linked
/// now), else a new one. An unverified email never links or creates. When the identity is
/// linked, the name the provider gave becomes the account's display name unless it has one.
async fn resolve_account(state: &AppState, idp: Idp, identity: &ExternalIdentity) -> Result<UserRow, ApiError> {
    if identity.subject.is_empty() {
        return Err(ApiError::unauthorized("invalid_id_token", "the identity provider named no user"));
    }
    if let Some(user_id) = linked_user(state, idp, &identity.subject).await? {
        return user_by_id(state, user_id).await;
    }
    let email = match (&identity.email, identity.email_verified) {
        (Some(email), true) => normalize_email(email)?,
        _ => {
            return Err(ApiError::Forbidden {
                code: "email_not_verified",
                message: "the identity provider did not confirm a verified email address; verify it there, or sign in with your password".into(),
            });
        }
    };
    let existing: Option<String> = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1").bind(&email).fetch_optional(pool).await?
    });
    let user = match existing {
        Some(id) => user_by_id(state, UserId::from_str(&id).map_err(ApiError::internal)?).await?,
        None => match create_user(state, &email, None, true).await {
            Ok(u) => u,
            // Created meanwhile by a concurrent request: link to it.
            Err(ApiError::Conflict { .. }) => {
                let id: String = with_pool!(state.db(), pool => {
                    sqlx::query_scalar("SELECT id FROM users WHERE email = $1").bind(&email).fetch_one(pool).await?
                });
                user_by_id(state, UserId::from_str(&id).map_err(ApiError::internal)?).await?
            }
            Err(e) => return Err(e),
        },
    };
    if !user.email_verified {
        with_pool!(state.db(), pool => {
            sqlx::query("UPDATE users SET email_verified = TRUE, updated_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(&user.id)
                .execute(pool)
                .await?
                .rows_affected()
        });
    }
    let inserted = with_pool!(state.db(), pool => {
        sqlx::query("INSERT INTO identities (provider, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(idp.as_str())
            .bind(&identity.subject)
            .bind(&user.id)
            .bind(&email)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    });
    match inserted {
        Ok(_) => {
            tracing::info!(user_id = %user.id, idp = idp.as_str(), "identity linked");
            if let Some(name) = &identity.name {
                with_pool!(state.db(), pool => {
                    sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3 AND display_name IS NULL")
                        .bind(name)
                        .bind(now_ms())
                        .bind(&user.id)
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
            }
            user_by_id(state, UserId::from_str(&user.id).map_err(ApiError::internal)?).await
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            let user_id = linked_user(state, idp, &identity.subject)
                .await?
                .ok_or_else(|| ApiError::internal("identity insert conflicted but the identity is not there"))?;
            user_by_id(state, user_id).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn linked_user(state: &AppState, idp: Idp, subject: &str) -> Result<Option<UserId>, ApiError> {
    let id: Option<String> = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT user_id FROM identities WHERE provider = $1 AND subject = $2")
            .bind(idp.as_str())
            .bind(subject)
            .fetch_optional(pool)
            .await?
    });
    id.map(|i| UserId::from_str(&i).map_err(ApiError::internal)).transpose()
}
