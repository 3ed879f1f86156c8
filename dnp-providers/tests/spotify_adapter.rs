//! The Spotify adapter against its emulator: OAuth, scans, enforcement, errors.
//!
//! Run: `cargo test -p dnp-providers --features emulator --test spotify_adapter`

use std::time::Duration;

use dnp_core::{ProviderAuth, ProviderError};
use dnp_providers::emulator::EmulatorConfig;
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_providers::spotify::{SpotifyAuth, SpotifyConfig, test_http_config};
use secrecy::{ExposeSecret, SecretString};

const REDIRECT: &str = "http://127.0.0.1:8888/callback";

fn config(emulator: &SpotifyEmulator, secret: bool) -> SpotifyConfig {
    let secret = secret.then(|| SecretString::from(emulator.client_secret()));
    let mut config = SpotifyConfig::new(emulator.client_id(), secret, REDIRECT)
        .unwrap()
        .with_base_urls(emulator.api_base_url(), emulator.accounts_base_url())
        .unwrap();
    config.http = test_http_config();
    config
}

/// Follows the authorize URL like a browser whose user approves, returning the callback's
/// `code` after checking its `state`.
async fn authorize(url: &str, state: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 302, "the emulator approves and redirects");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let callback = url::Url::parse(&location).unwrap();
    let param = |name: &str| callback.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    assert_eq!(param("state").as_deref(), Some(state), "state comes back unchanged");
    param("code").expect("a code")
}

#[tokio::test]
async fn oauth_with_pkce_exchanges_refreshes_with_rotation_and_refuses_a_spent_refresh_token() {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    emulator.register_redirect_uri(REDIRECT).unwrap();
    emulator.sign_in_as("alice");
    for secret in [true, false] {
        let auth = SpotifyAuth::new(config(&emulator, secret)).unwrap();
        let request = auth.authorization_request().unwrap();
        let url = url::Url::parse(&request.url).unwrap();
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
        assert_eq!(param("state").as_deref(), Some(request.state.as_str()));
        let scopes = param("scope").unwrap();
        for scope in dnp_providers::spotify::SCOPES {
            assert!(scopes.split(' ').any(|s| s == scope), "{scope} requested");
        }
        assert_ne!(auth.authorization_request().unwrap().state, request.state, "a fresh state each time");

        // PKCE is checked: the wrong verifier is refused, and the code is then spent.
        let code = authorize(&request.url, &request.state).await;
        let wrong = SecretString::from("w".repeat(64));
        let err = auth.exchange_code(&code, Some(&wrong)).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{err}");

        let request = auth.authorization_request().unwrap();
        let code = authorize(&request.url, &request.state).await;
        let tokens = auth.exchange_code(&code, request.pkce_verifier.as_ref()).await.unwrap();
        let first_refresh = tokens.refresh_token.clone().expect("a refresh token");
        assert!(tokens.expires_at.is_some());
        assert!(tokens.scopes.iter().any(|s| s == "user-library-modify"), "{:?}", tokens.scopes);

        // Refresh rotates: a new refresh token replaces the old at once.
        let refreshed = auth.refresh(&first_refresh).await.unwrap();
        let second_refresh = refreshed.refresh_token.clone().expect("a rotated refresh token");
        assert_ne!(second_refresh.expose_secret(), first_refresh.expose_secret());
        assert_ne!(refreshed.access_token.expose_secret(), tokens.access_token.expose_secret());

        // The spent one is refused: the user must connect again.
        let err = auth.refresh(&first_refresh).await.unwrap_err();
        assert!(matches!(err, ProviderError::NeedsReauth { .. }), "{err}");
        // The new one still works.
        auth.refresh(&second_refresh).await.unwrap();

        // Nothing secret in errors or Debug output.
        assert!(!format!("{err:?} {err} {auth:?}").contains(first_refresh.expose_secret()));
        assert!(!format!("{auth:?}").contains(&emulator.client_secret()));
    }
}

#[tokio::test]
async fn revoke_is_unsupported_and_points_to_the_apps_page() {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    let auth = SpotifyAuth::new(config(&emulator, true)).unwrap();
    let tokens = dnp_core::TokenSet {
        access_token: SecretString::from("a".to_owned()),
        refresh_token: None,
        expires_at: None,
        scopes: vec![],
    };
    let err = auth.revoke(&tokens).await.unwrap_err();
    assert_eq!(err.code(), "unsupported");
    assert!(err.to_string().contains("spotify.com/account/apps"), "{err}");
    let _ = Duration::ZERO;
}
