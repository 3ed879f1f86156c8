//! What differs between the SQL backends: schema, timestamp representation, migrator.
//! The queries themselves are shared (both accept `$N` placeholders and `RETURNING`).

use chrono::{DateTime, Utc};

/// The name of dnp-vault's own migrations table, so its versions never collide with
/// those of the application sharing the database (sqlx's default `_sqlx_migrations`).
pub(crate) const MIGRATIONS_TABLE: &str = "_dnp_vault_migrations";

fn migrator(schema_v1: &'static str) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    let mut migrator = sqlx::migrate::Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
        1,
        "dnp-vault: data_keys and connections".into(),
        sqlx::migrate::MigrationType::Simple,
        schema_v1.into_sql_str(),
        false,
    )]);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.set_ignore_missing(true);
    migrator
}

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    use super::*;

    /// SQLite keeps timestamps as fixed-width RFC 3339 text (microseconds, `Z`), so text
    /// order is time order and `expires_at < $1` can use its index.
    pub(crate) type Ts = String;

    pub(crate) fn ts(t: DateTime<Utc>) -> Ts {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    pub(crate) fn from_ts(t: Ts) -> Result<DateTime<Utc>, String> {
        DateTime::parse_from_rfc3339(&t).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("timestamp {t:?}: {e}"))
    }

    const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS data_keys (
    id          BLOB PRIMARY KEY NOT NULL,
    kms_key_id  TEXT NOT NULL,
    wrapped     BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    rewrapped_at TEXT
);
CREATE INDEX IF NOT EXISTS data_keys_kms_key_id_idx ON data_keys (kms_key_id);
CREATE TABLE IF NOT EXISTS connections (
    id                      BLOB PRIMARY KEY NOT NULL,
    user_id                 BLOB NOT NULL,
    provider                TEXT NOT NULL,
    access_token_encrypted  BLOB NOT NULL,
    refresh_token_encrypted BLOB,
    data_key_id             BLOB NOT NULL REFERENCES data_keys (id),
    expires_at              TEXT,
    status                  TEXT NOT NULL
        CHECK (status IN ('active', 'expiring_soon', 'needs_reauth', 'error')),
    last_used_at            TEXT,
    scopes                  TEXT NOT NULL DEFAULT '[]',
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    CONSTRAINT connections_user_provider_key UNIQUE (user_id, provider)
);
CREATE INDEX IF NOT EXISTS connections_user_id_provider_idx ON connections (user_id, provider);
CREATE INDEX IF NOT EXISTS connections_expires_at_idx ON connections (expires_at);
"#;

    pub(crate) fn migrator() -> sqlx::migrate::Migrator {
        super::migrator(SCHEMA_V1)
    }
}

#[cfg(feature = "postgres")]
pub(crate) mod postgres {
    use super::*;

    /// PostgreSQL keeps timestamps as `TIMESTAMPTZ`.
    pub(crate) type Ts = DateTime<Utc>;

    pub(crate) fn ts(t: DateTime<Utc>) -> Ts {
        t
    }

    pub(crate) fn from_ts(t: Ts) -> Result<DateTime<Utc>, String> {
        Ok(t)
    }

    const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS data_keys (
    id           UUID PRIMARY KEY,
    kms_key_id   TEXT NOT NULL,
    wrapped      BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    rewrapped_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS data_keys_kms_key_id_idx ON data_keys (kms_key_id);
CREATE TABLE IF NOT EXISTS connections (
    id                      UUID PRIMARY KEY,
    user_id                 UUID NOT NULL,
    provider                TEXT NOT NULL,
    access_token_encrypted  BYTEA NOT NULL,
    refresh_token_encrypted BYTEA,
    data_key_id             UUID NOT NULL REFERENCES data_keys (id),
    expires_at              TIMESTAMPTZ,
    status                  TEXT NOT NULL
        CHECK (status IN ('active', 'expiring_soon', 'needs_reauth', 'error')),
    last_used_at            TIMESTAMPTZ,
    scopes                  TEXT NOT NULL DEFAULT '[]',
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    CONSTRAINT connections_user_provider_key UNIQUE (user_id, provider)
);
CREATE INDEX IF NOT EXISTS connections_user_id_provider_idx ON connections (user_id, provider);
CREATE INDEX IF NOT EXISTS connections_expires_at_idx ON connections (expires_at);
"#;

    pub(crate) fn migrator() -> sqlx::migrate::Migrator {
        super::migrator(SCHEMA_V1)
    }
}
