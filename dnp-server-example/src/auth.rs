//! Identity: password hashing (argon2), access tokens (JWT, HS256), refresh sessions
//! (opaque, stored hashed, rotated on use with reuse detection), TOTP, and the [`AuthUser`]
//! extractor (bearer token, or cookie plus CSRF header). Login rate limits: [`crate::login_limit`].

use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use chrono::Utc;
use dnp_core::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::db::now_ms;
use crate::error::ApiError;
use crate::http::cookie;
use crate::state::AppState;
use crate::with_pool;

/// The access token cookie (HttpOnly).
pub(crate) const ACCESS_COOKIE: &str = "dnp_access";
/// The refresh token cookie (HttpOnly, only sent to `/api/v1/auth`).
pub(crate) const REFRESH_COOKIE: &str = "dnp_refresh";
/// The CSRF cookie (readable by the page's script, echoed in `x-csrf-token`).
pub(crate) const CSRF_COOKIE: &str = "dnp_csrf";
/// The header that must echo the CSRF cookie on cookie-authenticated unsafe requests.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Keys that sign and verify access tokens: the current secret signs, current or
/// previous verify.
pub(crate) struct JwtKeys {
    encoding: EncodingKey,
    decoding: Vec<DecodingKey>,
}

impl JwtKeys {
    pub(crate) fn new(current: &SecretString, previous: Option<&SecretString>) -> Self {
        let mut decoding = vec![DecodingKey::from_secret(current.expose_secret().as_bytes())];
        if let Some(p) = previous {
            decoding.push(DecodingKey::from_secret(p.expose_secret().as_bytes()));
        }
        Self { encoding: EncodingKey::from_secret(current.expose_secret().as_bytes()), decoding }
    }

    pub(crate) fn sign<C: Serialize>(&self, claims: &C) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(ApiError::internal)
    }

    pub(crate) fn verify<C: for<'de> Deserialize<'de>>(&self, token: &str) -> Option<C> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        self.decoding.iter().find_map(|key| jsonwebtoken::decode::<C>(token, key, &validation).ok().map(|d| d.claims))
    }
}

/// Claims of an access token (`typ: "access"`) or of the short token that carries a
/// password-verified login to its second factor (`typ: "mfa"`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) sub: String,
    pub(crate) sid: String,
    pub(crate) typ: String,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
}

/// Hashes a password with argon2id (on a blocking thread: it takes tens of milliseconds).
pub(crate) async fn hash_password(password: SecretString) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("argon2: {e}")))
    })
    .await
    .map_err(ApiError::internal)?
}

/// A valid argon2 hash of a random password: verified against when the account does not
/// exist, so that a login takes as long either way.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Verifies `password` against `hash` (or against a dummy when there is no account).
pub(crate) async fn verify_password(password: SecretString, hash: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (
                DUMMY_HASH
                    .get_or_init(|| {
                        Argon2::default()
                            .hash_password(random_token(16).as_bytes())
                            .map(|h| h.to_string())
                            .unwrap_or_default()
                    })
                    .clone(),
                false,
            ),
        };
        let Ok(parsed) = PasswordHash::from_str(&hash) else {
            return Ok(false);
        };
        let ok = Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok();
        Ok(ok && real)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Normalizes and checks an email address.
pub(crate) fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let bad = || ApiError::bad_request("invalid_email", "enter an email address such as ada@example.org");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.len() < 3
        || !domain.contains('.')
        || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(bad());
    }
    Ok(email)
}

/// Checks a new password's length.
pub(crate) fn check_password_rules(password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < 10 {
        return Err(ApiError::bad_request("weak_password", "use a password of at least 10 characters"));
    }
    if password.len() > 1024 {
        return Err(ApiError::bad_request("invalid_password", "a password may be at most 1024 bytes"));
    }
    Ok(())
}

/// A freshly issued pair of tokens.
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    pub(crate) access_expires_in: i64,
    pub(crate) refresh_token: String,
    pub(crate) refresh_expires_in: i64,
    pub(crate) csrf_token: String,
}

/// Signs an access token for session `sid`.
pub(crate) fn access_token(state: &AppState, user: UserId, sid: &str) -> Result<(String, i64), ApiError> {
    let ttl = state.config().access_token_ttl.as_secs() as i64;
    let now = Utc::now().timestamp();
    let claims = Claims { sub: user.to_string(), sid: sid.to_owned(), typ: "access".into(), iat: now, exp: now + ttl };
    Ok((state.0.jwt.sign(&claims)?, ttl))
}

/// Starts a new session family for `user` and issues its tokens.
pub(crate) async fn start_session(state: &AppState, user: UserId) -> Result<IssuedTokens, ApiError> {
    let family = uuid::Uuid::new_v4().to_string();
    issue_in_family(state, user, &family).await
}

async fn issue_in_family(state: &AppState, user: UserId, family: &str) -> Result<IssuedTokens, ApiError> {
    let sid = uuid::Uuid::new_v4().to_string();
    let refresh = random_token(32);
    let ttl = state.config().refresh_token_ttl.as_secs() as i64;
    let now = now_ms();
    with_pool!(state.db(), pool => {
        sqlx::query("INSERT INTO sessions (id, user_id, family_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&sid)
            .bind(user.to_string())
            .bind(family)
            .bind(sha256_hex(&refresh))
            .bind(now + ttl * 1000)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
    });
    let (access, access_ttl) = access_token(state, user, family)?;
    Ok(IssuedTokens {
        access_token: access,
        access_expires_in: access_ttl,
        refresh_token: refresh,
        refresh_expires_in: ttl,
        csrf_token: random_token(24),
    })
}

/// Rotates a refresh token: the presented one is spent and a new one issued in the same
/// family. Presenting a spent token revokes the whole family (it was stolen or replayed).
pub(crate) async fn rotate_refresh(state: &AppState, presented: &str) -> Result<(UserId, IssuedTokens), ApiError> {
    let hash = sha256_hex(presented);
    let invalid = || ApiError::unauthorized("invalid_refresh_token", "the refresh token is not valid; sign in again");
    let row: Option<(String, String, String, i64, Option<i64>)> = with_pool!(state.db(), pool => {
        sqlx::query_as("SELECT id, user_id, family_id, expires_at, revoked_at FROM sessions WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(pool)
            .await?
    });
    let Some((sid, user_id, family, expires_at, revoked_at)) = row else {
        return Err(invalid());
    };
    let now = now_ms();
    if revoked_at.is_some() {
        revoke_family(state, &family).await?;
        tracing::warn!(user_id = %user_id, "refresh token reuse detected; session family revoked");
        return Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; every session it belongs to is now signed out",
        ));
    }
    if expires_at <= now {
        return Err(invalid());
    }
    let won = with_pool!(state.db(), pool => {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&sid)
            .execute(pool)
            .await?
            .rows_affected()
    });
    if won != 1 {
        // Another request rotated it between our read and write: treat as reuse.
        revoke_family(state, &family).await?;
        return Err(ApiError::unauthorized("refresh_token_reused", "this refresh token was already used"));
    }
    let user = UserId::from_str(&user_id).map_err(ApiError::internal)?;
    Ok((user, issue_in_family(state, user, &family).await?))
}

/// Revokes every session of a family (logout, reuse).
pub(crate) async fn revoke_family(state: &AppState, family: &str) -> Result<(), ApiError> {
    state.0.live_sessions.forget(family);
    with_pool!(state.db(), pool => {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(family)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Whether the session family `family` still has a live session: remembered for
/// `SESSION_CHECK_CACHE_SECONDS` once the database said so (see [`crate::live_sessions`]).
async fn family_active(state: &AppState, family: &str) -> Result<bool, ApiError> {
    if state.0.live_sessions.is_fresh(family) {
        return Ok(true);
    }
    let n: i64 = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE family_id = $1 AND revoked_at IS NULL AND expires_at > $2")
            .bind(family)
            .bind(now_ms())
            .fetch_one(pool)
            .await?
    });
    if n > 0 {
        state.0.live_sessions.remember(family);
    }
    Ok(n > 0)
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user.
    pub user_id: UserId,
    /// The session family the access token belongs to.
    pub session: String,
    /// Whether the token came from the cookie (not the `Authorization` header).
    pub via_cookie: bool,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<Self>() {
            return Ok(user.clone());
        }
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let (token, via_cookie) = match bearer {
            Some(t) => (t.to_owned(), false),
            None => match cookie(&parts.headers, ACCESS_COOKIE) {
                Some(t) => (t.to_owned(), true),
                None => return Err(ApiError::unauthorized("unauthenticated", "sign in first: send an access token")),
            },
        };
        if via_cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            check_csrf(&parts.headers)?;
        }
        let invalid = || {
            ApiError::unauthorized(
                "invalid_token",
                "the access token is invalid or expired; refresh it or sign in again",
            )
        };
        let claims: Claims = state.0.jwt.verify(&token).ok_or_else(invalid)?;
        if claims.typ != "access" {
            return Err(invalid());
        }
        let user_id = UserId::from_str(&claims.sub).map_err(|_| invalid())?;
        if !family_active(state, &claims.sid).await? {
            return Err(ApiError::unauthorized("session_ended", "this session was signed out; sign in again"));
        }
        let user = Self { user_id, session: claims.sid, via_cookie };
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// The double-submit check: the `x-csrf-token` header must equal the `dnp_csrf` cookie.
pub(crate) fn check_csrf(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let cookie_value = cookie(headers, CSRF_COOKIE);
    let header_value = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (cookie_value, header_value) {
        (Some(c), Some(h)) if !c.is_empty() && constant_time_eq(c.as_bytes(), h.as_bytes()) => Ok(()),
        _ => Err(ApiError::Forbidden {
            code: "csrf_failed",
            message: "cookie-authenticated requests that change data must echo the dnp_csrf cookie in the x-csrf-token header".into(),
        }),
    }
}

/// A 6-digit TOTP checker for a raw secret.
pub(crate) fn totp(secret: &[u8], account: &str) -> Result<totp_rs::Totp, ApiError> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .with_issuer(Some("dnp"))
        .with_account_name(account)
        .build()
        .map_err(|e| ApiError::internal(format!("totp: {e}")))
}
