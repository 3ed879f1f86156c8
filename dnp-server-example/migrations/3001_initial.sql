-- dnp-server: initial schema. Written in SQL that SQLite and PostgreSQL both accept.
-- Instants are BIGINT milliseconds since the Unix epoch; JSON documents are TEXT.

CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    totp_secret_sealed TEXT,
    totp_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    policy_json TEXT,
    reenforce_hours BIGINT,
    next_reenforce_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_next_reenforce ON users (next_reenforce_at);

-- Sign-in identities at external identity providers (Google, Apple, GitHub).
CREATE TABLE IF NOT EXISTS identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX IF NOT EXISTS identities_user ON identities (user_id);

-- Refresh sessions: the opaque refresh token is stored only as its SHA-256.
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_family ON sessions (family_id);

-- OAuth state of connection and sign-in flows: single use, expiring, stored hashed;
-- the PKCE verifier sealed.
CREATE TABLE IF NOT EXISTS oauth_states (
    state_hash TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    user_id TEXT,
    provider TEXT NOT NULL,
    verifier_sealed TEXT,
    nonce TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_states_expiry ON oauth_states (expires_at);

CREATE TABLE IF NOT EXISTS dnp_entries (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name_key TEXT NOT NULL,
    entry_json TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    UNIQUE (user_id, name_key)
);
CREATE INDEX IF NOT EXISTS dnp_entries_page ON dnp_entries (user_id, added_at, id);

-- The latest library snapshot per user and provider.
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    taken_at BIGINT NOT NULL,
    item_count BIGINT NOT NULL,
    snapshot_json TEXT NOT NULL,
    UNIQUE (user_id, provider)
);

-- Stored dry-run previews.
CREATE TABLE IF NOT EXISTS plans (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    body_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS plans_user ON plans (user_id, created_at);

-- Enforcement and rollback batches: one execution of one provider's plan.
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    plan_id TEXT,
    rollback_of TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    job_id TEXT,
    plan_json TEXT NOT NULL,
    total_actions BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_user ON batches (user_id, created_at);
-- One batch per provider of a plan (rollback batches carry no plan id).
CREATE UNIQUE INDEX IF NOT EXISTS batches_plan_provider ON batches (plan_id, provider);
CREATE INDEX IF NOT EXISTS batches_rollback_of ON batches (rollback_of);

-- The write-ahead action log of each batch (dnp_core::ActionLog). The after-state is
-- derived from the state: a confirmed action's effect, else the before-state.
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    action_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    label TEXT NOT NULL,
    action_json TEXT NOT NULL,
    before_json TEXT NOT NULL,
    failure_json TEXT,
    note TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (batch_id, action_id)
);

CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    read_at BIGINT
);
CREATE INDEX IF NOT EXISTS notifications_user ON notifications (user_id, created_at);
