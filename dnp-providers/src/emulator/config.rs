//! [`EmulatorConfig`]: the settings every emulator takes.

use std::time::Duration;

/// Settings shared by every emulator.
///
/// Fields are public; start from [`EmulatorConfig::default`] and change what you need:
///
/// ```
/// use std::time::Duration;
/// use dnp_providers::emulator::EmulatorConfig;
///
/// let config = EmulatorConfig {
///     access_token_ttl: Duration::from_secs(2),
///     latency: Duration::from_millis(50),
///     seed: 7,
///     ..EmulatorConfig::default()
/// };
/// assert_eq!(config.refresh_token_lifetime, EmulatorConfig::default().refresh_token_lifetime);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// How long an access token lasts (Spotify: 1 hour, the default).
    pub access_token_ttl: Duration,
    /// How long refresh tokens stay usable after the user's original authorization;
    /// refreshing does not extend it (Spotify 2026: 6 months, the default of 182 days).
    pub refresh_token_lifetime: Duration,
    /// How long an authorization code may wait before it is exchanged (default 10 minutes).
    pub authorization_code_ttl: Duration,
    /// Extra latency before every request is answered (default none). Can be changed later
    /// with the emulator's `set_latency`.
    pub latency: Duration,
    /// Seed of every deterministic choice: ratio faults, snapshot ids, the tracks a
    /// simulated third-party edit inserts.
    pub seed: u64,
    /// When `true`, presenting an already-used refresh token revokes the whole grant (every
    /// access and refresh token descended from the same authorization), as RFC 9700 allows.
    /// Default `false`: the reused token alone is refused with `invalid_grant`.
    pub reuse_revokes_grant: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_lifetime: Duration::from_secs(182 * 24 * 3600),
            authorization_code_ttl: Duration::from_secs(600),
            latency: Duration::ZERO,
            seed: 0,
            reuse_revokes_grant: false,
        }
    }
}
