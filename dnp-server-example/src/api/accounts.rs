//! Accounts: register, login (with TOTP second factor), refresh, logout, `GET /me`, and
//! `PATCH /me` (the display name).

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use dnp_core::UserId;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{
    self, ACCESS_COOKIE, AuthUser, CSRF_COOKIE, Claims, IssuedTokens, REFRESH_COOKIE, check_csrf, check_password_rules,
    hash_password, normalize_email, verify_password,
};
use crate::crypto::random_bytes;
use crate::db::{from_ms, now_ms};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::{ApiJson, ClientAddr, cookie, set_cookie};
use crate::state::AppState;
use crate::with_pool;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(mfa_setup))
        .routes(routes!(mfa_verify))
        .routes(routes!(me, update_me))
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// The user id.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// The email address.
    pub email: String,
    /// The name an identity provider gave (Google, Apple, GitHub), if any.
    pub display_name: Option<String>,
    /// Whether the email was verified (by an identity provider).
    pub email_verified: bool,
    /// Whether TOTP is required at login.
    pub mfa_enabled: bool,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// Scheduled re-enforcement interval, if set.
    pub reenforce_every_hours: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) email: String,
    pub(crate) display_name: Option<String>,
    pub(crate) password_hash: Option<String>,
    pub(crate) email_verified: bool,
    pub(crate) totp_secret_sealed: Option<String>,
    pub(crate) totp_enabled: bool,
    pub(crate) reenforce_hours: Option<i64>,
    pub(crate) created_at: i64,
}

impl UserRow {
    pub(crate) fn view(&self) -> Result<UserView, ApiError> {
        Ok(UserView {
            id: UserId::from_str(&self.id).map_err(ApiError::internal)?,
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            email_verified: self.email_verified,
            mfa_enabled: self.totp_enabled,
            created_at: from_ms(self.created_at),
            reenforce_every_hours: self.reenforce_hours,
        })
    }
}

const USER_COLUMNS: &str = "id, email, display_name, password_hash, email_verified, totp_secret_sealed, totp_enabled, \
                            reenforce_hours, created_at";

pub(crate) async fn user_by_id(state: &AppState, id: UserId) -> Result<UserRow, ApiError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row: Option<UserRow> = with_pool!(state.db(), pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.to_string()).fetch_optional(pool).await?
    });
    row.ok_or_else(|| ApiError::unauthorized("unauthenticated", "the account no longer exists"))
}

async fn user_by_email(state: &AppState, email: &str) -> Result<Option<UserRow>, ApiError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
    Ok(with_pool!(state.db(), pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(email).fetch_optional(pool).await?
    }))
}

/// Creates a user with a password (or none, for sign-in through an identity provider).
pub(crate) async fn create_user(
    state: &AppState,
    email: &str,
    password_hash: Option<String>,
    email_verified: bool,
) -> Result<UserRow, ApiError> {
    let id = UserId::new_random();
    let now = now_ms();
    let result = with_pool!(state.db(), pool => {
        sqlx::query("INSERT INTO users (id, email, password_hash, email_verified, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
            .bind(id.to_string())
            .bind(email)
            .bind(&password_hash)
            .bind(email_verified)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    });
    match result {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(ApiError::conflict(
                "email_taken",
                "an account with this email address exists; sign in instead",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(UserRow {
        id: id.to_string(),
        email: email.to_owned(),
        display_name: None,
        password_hash,
        email_verified,
        totp_secret_sealed: None,
        totp_enabled: false,
        reenforce_hours: None,
        created_at: now,
    })
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    /// The email address.
    pub email: String,
    /// The password (at least 10 characters to register).
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// The current TOTP code, for accounts with a second factor (optional: without it the
    /// login answers `mfa_required`).
    #[serde(default)]
    pub totp_code: Option<String>,
}

/// Issued tokens. They are also set as cookies (`dnp_access`, `dnp_refresh` HttpOnly;
/// `dnp_csrf` for the double-submit check of cookie-authenticated requests).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT access token: `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// The opaque refresh token (single use: each refresh returns a new one).
    pub refresh_token: String,
    /// Seconds the refresh token lives.
    pub refresh_expires_in: i64,
    /// The CSRF token (same as the `dnp_csrf` cookie).
    pub csrf_token: String,
    /// The user.
    pub user: UserView,
}

/// The login's answer: tokens, or a request for the second factor.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    /// Signed in.
    Tokens(TokenResponse),
    /// The password was right; send the TOTP code with this token to `/auth/mfa/verify`.
    MfaRequired {
        /// Always true.
        mfa_required: bool,
        /// A 5-minute token for `/auth/mfa/verify`.
        mfa_token: String,
    },
}

pub(crate) fn token_response(state: &AppState, user: UserView, issued: IssuedTokens) -> Response {
    let secure = state.config().secure_cookies();
    let mut headers = HeaderMap::new();
    headers.append(
        header::SET_COOKIE,
        set_cookie(ACCESS_COOKIE, &issued.access_token, "/", issued.access_expires_in, true, secure),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(REFRESH_COOKIE, &issued.refresh_token, "/api/v1/auth", issued.refresh_expires_in, true, secure),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(CSRF_COOKIE, &issued.csrf_token, "/", issued.refresh_expires_in, false, secure),
    );
    let body = TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.access_expires_in,
        refresh_token: issued.refresh_token,
        refresh_expires_in: issued.refresh_expires_in,
        csrf_token: issued.csrf_token,
        user,
    };
    (headers, Json(body)).into_response()
}

/// Creates an account with email and password, and signs it in.
#[utoipa::path(post, path = "/auth/register", tag = "accounts", request_body = Credentials,
    responses((status = 201, body = TokenResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn register(State(state): State<AppState>, ApiJson(body): ApiJson<Credentials>) -> ApiResult<Response> {
    let email = normalize_email(&body.email)?;
    check_password_rules(body.password.expose_secret())?;
    let hash = hash_password(body.password).await?;
    let user = create_user(&state, &email, Some(hash), false).await?;
    let user_id = UserId::from_str(&user.id).map_err(ApiError::internal)?;
    let issued = auth::start_session(&state, user_id).await?;
    tracing::info!(user_id = %user_id, "account registered");
    let mut response = token_response(&state, user.view()?, issued);
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

/// Signs in with email and password (and the TOTP code when the account has one).
#[utoipa::path(post, path = "/auth/login", tag = "accounts", request_body = Credentials,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult<Response> {
    let email = body.email.trim().to_lowercase();
    state.0.limiter.check(&email, &addr).await?;
    let user = user_by_email(&state, &email).await?;
    let ok = verify_password(body.password, user.as_ref().and_then(|u| u.password_hash.clone())).await?;
    let (true, Some(user)) = (ok, user) else {
        tracing::info!(client = %addr, "login refused");
        return Err(ApiError::unauthorized("invalid_credentials", "the email address or password is wrong"));
    };
    let user_id = UserId::from_str(&user.id).map_err(ApiError::internal)?;
    if user.totp_enabled {
        match body.totp_code.as_deref() {
            Some(code) => check_totp(&state, &user, code)?,
            None => {
                let now = Utc::now().timestamp();
                let claims =
                    Claims { sub: user.id.clone(), sid: String::new(), typ: "mfa".into(), iat: now, exp: now + 300 };
                let token = state.0.jwt.sign(&claims)?;
                return Ok(Json(LoginResponse::MfaRequired { mfa_required: true, mfa_token: token }).into_response());
            }
        }
    }
    let issued = auth::start_session(&state, user_id).await?;
    tracing::info!(user_id = %user_id, "signed in");
    Ok(token_response(&state, user.view()?, issued))
}

fn check_totp(state: &AppState, user: &UserRow, code: &str) -> Result<(), ApiError> {
    let secret = user
        .totp_secret_sealed
        .as_deref()
        .and_then(|s| state.0.sealer.open(s, &format!("totp:{}", user.id)))
        .ok_or_else(|| {
            ApiError::internal(
                "the TOTP secret does not open: was SESSION_SECRET changed without SESSION_SECRET_PREVIOUS?",
            )
        })?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(secret.expose_secret())
        .map_err(|_| ApiError::internal("stored TOTP secret is not base64"))?;
    let totp = auth::totp(&raw, &user.email)?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) || totp.check_current(code).is_none() {
        return Err(ApiError::unauthorized(
            "invalid_totp",
            "the code is wrong or expired; use the current code from your app",
        ));
    }
    Ok(())
}

/// A refresh request (the token may instead come from the `dnp_refresh` cookie).
#[derive(Deserialize, ToSchema, Default)]
pub struct RefreshRequest {
    /// The refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Exchanges a refresh token for new tokens; the presented one is spent.
#[utoipa::path(post, path = "/auth/refresh", tag = "accounts", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody)))]
async fn refresh(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult<Response> {
    let from_body: RefreshRequest = if body.is_empty() {
        RefreshRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    let token = match from_body.refresh_token {
        Some(t) => t,
        None => {
            let t = cookie(&headers, REFRESH_COOKIE)
                .ok_or_else(|| ApiError::unauthorized("invalid_refresh_token", "send the refresh token"))?;
            check_csrf(&headers)?;
            t.to_owned()
        }
    };
    let (user_id, issued) = auth::rotate_refresh(&state, &token).await?;
    let user = user_by_id(&state, user_id).await?;
    Ok(token_response(&state, user.view()?, issued))
}

/// Signs out this session (every token of its family) and clears the cookies.
#[utoipa::path(post, path = "/auth/logout", tag = "accounts", responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    auth::revoke_family(&state, &user.session).await?;
    let secure = state.config().secure_cookies();
    let mut headers = HeaderMap::new();
    headers.append(header::SET_COOKIE, set_cookie(ACCESS_COOKIE, "", "/", 0, true, secure));
    headers.append(header::SET_COOKIE, set_cookie(REFRESH_COOKIE, "", "/api/v1/auth", 0, true, secure));
    headers.append(header::SET_COOKIE, set_cookie(CSRF_COOKIE, "", "/", 0, false, secure));
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// A new TOTP secret to add to an authenticator app.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaSetup {
    /// The secret, base32 (type it into the app).
    pub secret: String,
    /// The `otpauth://` URL (show it as a QR code).
    pub otpauth_url: String,
}

/// Starts TOTP enrolment: a new secret, enabled once `/auth/mfa/verify` gets a valid code.
#[utoipa::path(post, path = "/auth/mfa/setup", tag = "accounts",
    responses((status = 200, body = MfaSetup), (status = 409, body = ErrorBody)))]
async fn mfa_setup(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<MfaSetup>> {
    let row = user_by_id(&state, user.user_id).await?;
    if row.totp_enabled {
        return Err(ApiError::conflict("mfa_already_enabled", "a second factor is already enabled"));
    }
    let raw = random_bytes(20);
    let totp = auth::totp(&raw, &row.email)?;
    let sealed =
        state.0.sealer.seal(&base64::engine::general_purpose::STANDARD.encode(&raw), &format!("totp:{}", row.id));
    with_pool!(state.db(), pool => {
        sqlx::query("UPDATE users SET totp_secret_sealed = $1, updated_at = $2 WHERE id = $3 AND totp_enabled = FALSE")
            .bind(&sealed)
            .bind(now_ms())
            .bind(&row.id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    let otpauth_url = totp.to_url().map_err(|e| ApiError::internal(format!("totp url: {e}")))?;
    Ok(Json(MfaSetup { secret: totp_rs::Secret::from(raw).to_base32(), otpauth_url }))
}

/// A TOTP code: with `mfa_token` it completes a login; without, signed in, it enables the
/// second factor set up by `/auth/mfa/setup`.
#[derive(Deserialize, ToSchema)]
pub struct MfaVerify {
    /// The 6-digit code.
    pub code: String,
    /// The token `/auth/login` returned with `mfa_required`.
    #[serde(default)]
    pub mfa_token: Option<String>,
}

impl std::fmt::Debug for MfaVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaVerify").finish_non_exhaustive()
    }
}

/// Completes a login held at its second factor: checks the `mfa` step token (from
/// `/auth/login`, or a sign-in with an identity provider) and the TOTP code, then starts the
/// session.
pub(crate) async fn complete_mfa_login(state: &AppState, addr: &str, token: &str, code: &str) -> ApiResult<Response> {
    let invalid = || ApiError::unauthorized("invalid_mfa_token", "the login step expired; sign in again");
    let claims: Claims = state.0.jwt.verify(token).ok_or_else(invalid)?;
    if claims.typ != "mfa" {
        return Err(invalid());
    }
    let user_id = UserId::from_str(&claims.sub).map_err(|_| invalid())?;
    let user = user_by_id(state, user_id).await?;
    // Code guesses count against the same limits as passwords.
    state.0.limiter.check(&user.email, addr).await?;
    check_totp(state, &user, code)?;
    let issued = auth::start_session(state, user_id).await?;
    Ok(token_response(state, user.view()?, issued))
}

/// Completes a login with its second factor, or confirms TOTP enrolment.
#[utoipa::path(post, path = "/auth/mfa/verify", tag = "accounts", request_body = MfaVerify,
    responses((status = 200, body = TokenResponse), (status = 204), (status = 401, body = ErrorBody)))]
async fn mfa_verify(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MfaVerify>,
) -> ApiResult<Response> {
    if let Some(token) = body.mfa_token {
        return complete_mfa_login(&state, &addr, &token, &body.code).await;
    }
    let auth_user = AuthUser::from_headers(&state, &headers).await?;
    let user = user_by_id(&state, auth_user.user_id).await?;
    if user.totp_enabled {
        return Err(ApiError::conflict("mfa_already_enabled", "a second factor is already enabled"));
    }
    if user.totp_secret_sealed.is_none() {
        return Err(ApiError::conflict("mfa_not_set_up", "call /auth/mfa/setup first"));
    }
    check_totp(&state, &user, &body.code)?;
    with_pool!(state.db(), pool => {
        sqlx::query("UPDATE users SET totp_enabled = TRUE, updated_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(&user.id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    tracing::info!(user_id = %user.id, "second factor enabled");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The signed-in user.
#[utoipa::path(get, path = "/me", tag = "accounts", responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<UserView>> {
    Ok(Json(user_by_id(&state, user.user_id).await?.view()?))
}

/// Changes to the signed-in user (`PATCH /me`); a field left out stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeUpdate {
    /// The name to show, cleaned like the names identity providers give (control characters,
    /// the zero-width space and bidirectional marks and overrides dropped, runs of whitespace
    /// made one space, trimmed); at most 100 characters. `null` removes it (the next identity
    /// provider linked to the account may then fill it again).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub display_name: Option<Option<String>>,
}

/// `Some(value)` for a field that is present, even as `null`, so that `null` (clear) and a
/// missing field (keep) differ.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The display name to store for `raw`: cleaned by [`crate::idp::display_name`], the sign-in
/// path's cleaning. Too long, or nothing left once cleaned, is a 400.
fn edited_display_name(raw: &str) -> Result<String, ApiError> {
    if raw.trim().chars().count() > crate::idp::DISPLAY_NAME_MAX_CHARS {
        return Err(ApiError::bad_request(
            "display_name_too_long",
            format!("the display name has at most {} characters", crate::idp::DISPLAY_NAME_MAX_CHARS),
        ));
    }
    crate::idp::display_name(raw).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_display_name",
            "the display name has no visible characters; send null to remove it",
        )
    })
}

/// Changes the signed-in user's display name (`null` removes it).
#[utoipa::path(patch, path = "/me", tag = "accounts", request_body = MeUpdate,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<MeUpdate>,
) -> ApiResult<Json<UserView>> {
    if let Some(name) = body.display_name {
        let name = name.as_deref().map(edited_display_name).transpose()?;
        with_pool!(state.db(), pool => {
            sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3")
                .bind(&name)
                .bind(now_ms())
                .bind(user.user_id.to_string())
                .execute(pool)
                .await?
                .rows_affected()
        });
        tracing::info!(user_id = %user.user_id, cleared = name.is_none(), "display name changed");
    }
    Ok(Json(user_by_id(&state, user.user_id).await?.view()?))
}

impl AuthUser {
    /// Authenticates from headers alone (for handlers where authentication is optional).
    pub(crate) async fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut req = axum::http::Request::builder().method(axum::http::Method::POST);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let (mut parts, ()) = req.body(()).map_err(ApiError::internal)?.into_parts();
        <Self as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edited_display_names_are_cleaned_like_sign_in_names() {
        assert_eq!(edited_display_name("  Ada \u{202e}Lovelace ").unwrap(), "Ada Lovelace");
        assert_eq!(edited_display_name(&"a".repeat(100)).unwrap().len(), 100);
        assert!(matches!(
            edited_display_name(&"a".repeat(101)),
            Err(ApiError::BadRequest { code: "display_name_too_long", .. })
        ));
        assert!(matches!(
            edited_display_name(" \u{200b}\u{7} "),
            Err(ApiError::BadRequest { code: "invalid_display_name", .. })
        ));
    }

    #[test]
    fn a_missing_display_name_differs_from_null() {
        let keep: MeUpdate = serde_json::from_str("{}").unwrap();
        assert_eq!(keep.display_name, None);
        let clear: MeUpdate = serde_json::from_str(r#"{"display_name": null}"#).unwrap();
        assert_eq!(clear.display_name, Some(None));
        assert!(serde_json::from_str::<MeUpdate>(r#"{"displayName": "x"}"#).is_err());
    }
}
