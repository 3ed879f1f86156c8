//! `dnp-server demo`: the embedded default (SQLite file, local KMS key file, SQL job
//! queue) with the music service emulators in-process, seeded with a generated library for
//! a demo listener, and a demo account whose DNP list already names a few of its artists.
//! The OAuth flow runs against the emulators, so connect → scan → preview → enforce →
//! roll back works without any real account.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::Utc;
use dnp_core::{ArtistIdentity, DnpEntry, EntryId, EntrySource, LibrarySnapshot, ProviderId, UserId};
use dnp_providers::apple_music::emulator::AppleMusicEmulator;
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use dnp_providers::spotify::SpotifyConfig;
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_providers::tidal::TidalConfig;
use dnp_providers::tidal::emulator::TidalEmulator;
use dnp_providers::youtube_music::YouTubeMusicConfig;
use dnp_providers::youtube_music::emulator::YouTubeMusicEmulator;
use secrecy::SecretString;

use crate::config::{Config, Mode, default_redirect_uri};
use crate::idp_emulator::{IdpEmulator, IdpUser};
use crate::run::{StartError, connect_and_migrate};
use crate::state::{AppState, Providers};

/// The demo account.
pub const DEMO_EMAIL: &str = "demo@dnp.example";
/// The demo account's password.
pub const DEMO_PASSWORD: &str = "dnp-demo-password";
/// The emulated services' user the demo signs in as.
pub const DEMO_LISTENER: &str = "demo-listener";

/// Options of the demo.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Where to keep the data (default: a new temporary directory, removed at exit).
    pub data_dir: Option<PathBuf>,
    /// Where to listen (default 127.0.0.1:8080; port 0 picks a free one).
    pub bind: Option<SocketAddr>,
    /// The generated library's size (default [`LibraryShape::DEMO`]).
    pub shape: Option<LibraryShape>,
}

/// A running demo.
pub struct Demo {
    /// The server's URL.
    pub url: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The state (for tests).
    pub state: AppState,
    /// The Spotify emulator.
    pub spotify: SpotifyEmulator,
    /// The YouTube Music emulator.
    pub youtube_music: YouTubeMusicEmulator,
    /// The TIDAL emulator.
    pub tidal: TidalEmulator,
    /// The Apple Music emulator (its MusicKit stand-in plays the browser's part).
    pub apple_music: AppleMusicEmulator,
    /// The Google, Apple and GitHub sign-in emulator (approves as the demo account's email).
    pub identity: IdpEmulator,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), StartError>>,
    worker: tokio::task::JoinHandle<()>,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo").field("url", &self.url).field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

fn demo_secret(data_dir: &std::path::Path) -> Result<String, StartError> {
    let path = data_dir.join("demo-session.secret");
    if let Ok(s) = std::fs::read_to_string(&path)
        && s.trim().len() >= 32
    {
        return Ok(s.trim().to_owned());
    }
    let secret = crate::config::random_secret();
    write_private(&path, &secret)?;
    Ok(secret)
}

fn write_private(path: &std::path::Path, contents: &str) -> Result<(), StartError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// The most credited primary artists of `library`'s liked tracks, with their ids.
fn top_artists(library: &LibrarySnapshot, n: usize) -> Vec<(String, String)> {
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    for l in &library.liked_tracks {
        if let Some(a) = l.track.artists.first()
            && let Some(id) = &a.id
        {
            *counts.entry((a.name.clone(), id.clone())).or_default() += 1;
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter().take(n).map(|(k, _)| k).collect()
}

/// Starts the demo: emulators, database, worker, server.
///
/// # Errors
/// When the port is taken or a backend cannot start.
pub async fn start(options: DemoOptions) -> Result<Demo, StartError> {
    let (data_dir, temp) = match options.data_dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            (d, None)
        }
        None => {
            let t = tempfile::Builder::new().prefix("dnp-demo-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let bind = options.bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| StartError::Backend(format!("cannot listen on {bind}: {e} (choose another with --bind)")))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");

    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("DATA_DIR", data_dir.display().to_string());
    vars.insert("BIND_ADDR", addr.to_string());
    vars.insert("PUBLIC_BASE_URL", url.clone());
    vars.insert("SESSION_SECRET", demo_secret(&data_dir)?);
    vars.insert("KMS_PROVIDER", "local".into());
    // Sign-in with Google, Apple and GitHub, emulated: each signs into the demo account.
    let identity = IdpEmulator::start(IdpUser::verified("1001", DEMO_EMAIL)).await?;
    vars.extend(identity.env_vars());
    for passthrough in ["LOG_FORMAT", "WORKER_CONCURRENCY"] {
        if let Ok(v) = std::env::var(passthrough) {
            vars.insert(passthrough, v);
        }
    }
    let config = Config::from_lookup(Mode::Demo, |k| vars.get(k).cloned())?;

    // The emulated services, each seeded with its own generated library for the listener.
    let shape = options.shape.unwrap_or(LibraryShape::DEMO);
    let emu_err = |what: &str| {
        let what = what.to_owned();
        move |e: dnp_providers::emulator::EmulatorError| StartError::Backend(format!("{what} emulator: {e}"))
    };
    let cfg_err = |what: &str| {
        let what = what.to_owned();
        move |e: dnp_providers::http::ConfigError| StartError::Backend(format!("{what} emulator settings: {e}"))
    };
    let library_of = |id: &str| -> Result<LibrarySnapshot, StartError> {
        let provider = ProviderId::new(id).map_err(|e| StartError::Backend(e.to_string()))?;
        Ok(generate_library(&provider, shape, 42))
    };
    let mut providers = Providers::new();

    let spotify = SpotifyEmulator::start(EmulatorConfig::default())?;
    let spotify_library = library_of(ProviderId::SPOTIFY)?;
    spotify.seed_user(DEMO_LISTENER, &spotify_library);
    spotify.sign_in_as(DEMO_LISTENER);
    let redirect = default_redirect_uri(&url, ProviderId::SPOTIFY);
    spotify.register_redirect_uri(&redirect).map_err(emu_err("Spotify"))?;
    let config_spotify =
        SpotifyConfig::new(spotify.client_id(), Some(SecretString::from(spotify.client_secret())), redirect)
            .and_then(|c| c.with_base_urls(spotify.api_base_url(), spotify.accounts_base_url()))
            .map_err(cfg_err("Spotify"))?;
    crate::run::register_spotify(&mut providers, config_spotify)?;

    let youtube_music = YouTubeMusicEmulator::start(EmulatorConfig::default())?;
    youtube_music.seed_user(DEMO_LISTENER, &library_of(ProviderId::YOUTUBE_MUSIC)?);
    youtube_music.sign_in_as(DEMO_LISTENER);
    let redirect = default_redirect_uri(&url, ProviderId::YOUTUBE_MUSIC);
    youtube_music.register_redirect_uri(&redirect).map_err(emu_err("YouTube Music"))?;
    let config_youtube = YouTubeMusicConfig::new(
        youtube_music.client_id(),
        Some(SecretString::from(youtube_music.client_secret())),
        redirect,
    )
    .and_then(|c| c.with_base_urls(youtube_music.api_base_url(), youtube_music.auth_base_url()))
    .map_err(cfg_err("YouTube Music"))?;
    crate::run::register_youtube_music(&mut providers, config_youtube)?;

    let tidal = TidalEmulator::start(EmulatorConfig::default())?;
    tidal.seed_user(DEMO_LISTENER, &library_of(ProviderId::TIDAL)?);
    tidal.sign_in_as(DEMO_LISTENER);
    let redirect = default_redirect_uri(&url, ProviderId::TIDAL);
    tidal.register_redirect_uri(&redirect).map_err(emu_err("TIDAL"))?;
    let config_tidal = TidalConfig::new(tidal.client_id(), Some(SecretString::from(tidal.client_secret())), redirect)
        .and_then(|c| c.with_base_urls(tidal.api_base_url(), tidal.auth_base_url(), tidal.authorize_url()))
        .map_err(cfg_err("TIDAL"))?;
    crate::run::register_tidal(&mut providers, config_tidal)?;

    let apple_music = AppleMusicEmulator::start(EmulatorConfig::default())?;
    apple_music.seed_user(DEMO_LISTENER, &library_of(ProviderId::APPLE_MUSIC)?);
    apple_music.sign_in_as(DEMO_LISTENER);
    let mut config_apple = apple_music.adapter_config().map_err(cfg_err("Apple Music"))?;
    config_apple.redirect_uri = Some(default_redirect_uri(&url, ProviderId::APPLE_MUSIC));
    crate::run::register_apple_music(&mut providers, config_apple)?;
    let library = spotify_library;

    crate::api::ops::install_metrics();
    let db = connect_and_migrate(&config).await?;
    let backends = crate::run::backends(&config, db).await?;
    let state = AppState::new(config, backends, providers);
    seed_demo_account(&state, &library).await?;

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let worker_config = crate::worker::WorkerConfig::from_state(&state);
    let worker = tokio::spawn(crate::worker::run(state.clone(), worker_config, stop_rx.clone()));
    let mut server_stop = stop_rx;
    let server = tokio::spawn(crate::run::serve_listener(state.clone(), listener, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    Ok(Demo {
        url,
        data_dir,
        state,
        spotify,
        youtube_music,
        tidal,
        apple_music,
        identity,
        stop,
        server,
        worker,
        _temp: temp,
    })
}

/// Creates the demo account with a starter DNP list, once.
async fn seed_demo_account(state: &AppState, library: &LibrarySnapshot) -> Result<(), StartError> {
    let db_err = |e: crate::ApiError| StartError::Database(e.to_string());
    let existing: Option<String> = crate::with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(DEMO_EMAIL)
            .fetch_optional(pool)
            .await
            .map_err(|e| StartError::Database(e.to_string()))?
    });
    if existing.is_some() {
        return Ok(());
    }
    let hash = crate::auth::hash_password(SecretString::from(DEMO_PASSWORD)).await.map_err(db_err)?;
    let user = crate::api::accounts::create_user(state, DEMO_EMAIL, Some(hash), true).await.map_err(db_err)?;
    let user_id = UserId::from_str(&user.id).map_err(|e| StartError::Database(e.to_string()))?;
    let spotify = ProviderId::new(ProviderId::SPOTIFY).map_err(|e| StartError::Backend(e.to_string()))?;
    for (i, (name, id)) in top_artists(library, 3).into_iter().enumerate() {
        let entry = DnpEntry {
            id: EntryId::new_random(),
            artist: ArtistIdentity::named(name).with_id(spotify.clone(), id),
            note: Some("added by the demo".into()),
            tags: vec!["demo".into()],
            added_at: Utc::now() + chrono::Duration::milliseconds(i as i64),
            source: EntrySource::Personal,
        };
        crate::api::dnp::insert_entry(state, user_id, &entry).await.map_err(db_err)?;
    }
    Ok(())
}

impl Demo {
    /// Stops the server and the worker, and the emulators.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.worker.await;
        self.state.db().close().await;
        self.spotify.shutdown();
        self.youtube_music.shutdown();
        self.tidal.shutdown();
        self.apple_music.shutdown();
        self.identity.shutdown();
    }

    /// What to print for a person: where it runs, the demo sign-in, and a walkthrough.
    pub fn banner(&self) -> String {
        let u = &self.url;
        let data = self.data_dir.display();
        let spotify = self.spotify.api_base_url();
        let youtube = self.youtube_music.api_base_url();
        let tidal = self.tidal.api_base_url();
        let apple = self.apple_music.api_base_url();
        [
            String::new(),
            format!("  dnp demo is running: open {u}"),
            String::new(),
            format!("  API:       {u}/api/v1  (OpenAPI document: {u}/api/v1/openapi.json)"),
            format!("  Sign in:   {DEMO_EMAIL} / {DEMO_PASSWORD}"),
            format!("  Emulated:  Spotify at {spotify}, YouTube Music at {youtube},"),
            format!("             TIDAL at {tidal}, Apple Music at {apple}"),
            "             (sign-in, libraries, removals; provider ids spotify, youtube_music, tidal, apple_music)".to_owned(),
            format!("  Sign-in:   Google, Apple and GitHub emulated at {} (each signs into {DEMO_EMAIL})", self.identity.url()),
            format!("  Data:      {data}"),
            String::new(),
            "  Walk through it with curl:".to_owned(),
            format!("    API={u}/api/v1"),
            format!(
                "    TOKEN=$(curl -s $API/auth/login -H 'content-type: application/json' -d '{{\"email\":\"{DEMO_EMAIL}\",\"password\":\"{DEMO_PASSWORD}\"}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
            ),
            "    AUTH=\"authorization: Bearer $TOKEN\"".to_owned(),
            "    URL=$(curl -s -H \"$AUTH\" $API/connections/spotify/authorize | sed -E 's/.*\"authorize_url\":\"([^\"]+)\".*/\\1/')".to_owned(),
            "    curl -s -H \"$AUTH\" \"$(curl -s -o /dev/null -w '%{redirect_url}' \"$URL\")\"   # connect (the emulator approves)".to_owned(),
            "    curl -s -H \"$AUTH\" -X POST $API/library/scans                             # scan, as a job".to_owned(),
            "    curl -s -H \"$AUTH\" -X POST $API/enforcement/plans                         # preview; note its id".to_owned(),
            "    curl -s -H \"$AUTH\" -H 'content-type: application/json' $API/enforcement/batches -d '{\"plan_id\":\"PLAN_ID\"}'".to_owned(),
            "    curl -s -H \"$AUTH\" -X POST $API/enforcement/batches/BATCH_ID/rollback     # undo".to_owned(),
            String::new(),
            "  Press Ctrl-C to stop.".to_owned(),
        ]
        .join("\n")
    }
}

/// `dnp-server demo`: runs until Ctrl-C.
///
/// # Errors
/// When the demo cannot start.
pub async fn run(_config: Config, data_dir: Option<PathBuf>, bind: Option<SocketAddr>) -> Result<(), StartError> {
    let demo = start(DemoOptions { data_dir, bind, shape: None }).await?;
    println!("{}", demo.banner());
    crate::run::shutdown_signal().await;
    demo.shutdown().await;
    Ok(())
}
