-- dnp-server: login rate limits shared by every server on this database (src/login_limit.rs).
-- One row per limited key: `acct:` and the SHA-256 of the email address (never the address
-- itself), or `addr:` and the client address. A fixed window per key: `window_start` is the
-- first attempt of the current window (milliseconds since the epoch), `attempts` the attempts
-- counted in it. Rows whose window has ended are pruned periodically.

CREATE TABLE IF NOT EXISTS login_attempts (
    limit_key TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    attempts BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_window_start ON login_attempts (window_start);
