//! Email notifications: a refresh that ends in needs_reauth emails the user once (through an
//! in-process SMTP receiver), a down SMTP server leads to a retried `send_email` job, nothing
//! is sent without SMTP, and the SMTP password never shows in Debug output.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestApp;
use common::spotify::{PUBLIC, World, spotify_config};
use dnp_core::{NewJob, ProviderId};
use dnp_providers::emulator::{EmulatorConfig, LibraryShape, generate_library};
use dnp_providers::spotify::emulator::SpotifyEmulator;
use dnp_server::Providers;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message the receiver accepted.
#[derive(Debug, Clone)]
struct Received {
    from: String,
    to: Vec<String>,
    /// The message as sent, with dot-stuffing and quoted-printable soft breaks undone.
    data: String,
}

/// A tiny SMTP server (no TLS, no AUTH): enough of RFC 5321 for lettre. While `down`, it
/// answers every connection with `421` and hangs up.
#[derive(Clone)]
struct SmtpReceiver {
    port: u16,
    messages: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl SmtpReceiver {
    async fn start(down: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Self {
            port: listener.local_addr().unwrap().port(),
            messages: Arc::default(),
            connections: Arc::default(),
            down: Arc::new(AtomicBool::new(down)),
        };
        let r = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                r.connections.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    let _ = r.session(stream).await;
                });
            }
        });
        receiver
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn messages(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }

    async fn session(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        if self.down.load(Ordering::SeqCst) {
            write.write_all(b"421 test.invalid service not available\r\n").await?;
            return write.shutdown().await;
        }
        write.write_all(b"220 test.invalid ESMTP\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                write.write_all(b"250-test.invalid\r\n250 8BITMIME\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                from = address(&command);
                write.write_all(b"250 ok\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                to.push(address(&command));
                write.write_all(b"250 ok\r\n").await?;
            } else if upper == "DATA" {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let data = data.replace("=\r\n", "");
                self.messages.lock().unwrap().push(Received { from: from.clone(), to: to.clone(), data });
                to.clear();
                write.write_all(b"250 queued\r\n").await?;
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await?;
                return write.shutdown().await;
            } else if upper == "RSET" || upper == "NOOP" {
                write.write_all(b"250 ok\r\n").await?;
            } else {
                write.write_all(b"502 not implemented\r\n").await?;
            }
        }
    }
}

/// The address in `MAIL FROM:<a@b> BODY=8BITMIME`.
fn address(command: &str) -> String {
    command.split_once('<').and_then(|(_, rest)| rest.split_once('>')).map(|(a, _)| a.to_owned()).unwrap_or_default()
}

async fn wait_until<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F, what: &str) {
    for _ in 0..400 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A server with the Spotify emulator and a worker, configured with `extra`.
async fn world(seed: u64, extra: &[(&str, &str)]) -> World {
    let emulator = SpotifyEmulator::start(EmulatorConfig::default()).unwrap();
    let spotify = ProviderId::new(ProviderId::SPOTIFY).unwrap();
    emulator.seed_user("listener", &generate_library(&spotify, LibraryShape::SMALL, seed));
    emulator.sign_in_as("listener");
    let mut providers = Providers::new();
    dnp_server::run::register_spotify(&mut providers, spotify_config(&emulator)).unwrap();
    let app = TestApp::build(providers, extra).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let config = dnp_server::worker::WorkerConfig {
        name: "email-test-worker".into(),
        concurrency: 2,
        lease: Duration::from_secs(3),
        poll_interval: Duration::from_millis(20),
        scheduler: false,
    };
    let worker = tokio::spawn(dnp_server::worker::run(app.state.clone(), config, rx));
    World { app, emulator, stop, worker }
}

/// Registers `email`, connects Spotify, has the service revoke the grant and runs the token
/// refresh sweep until the connection needs re-authorization. Returns the user's token.
async fn refresh_into_needs_reauth(world: &World, email: &str) -> String {
    let app = &world.app;
    let (token, _) = app.register(email).await;
    world.connect_spotify(&token).await;
    world.emulator.faults().revoke_all_tokens();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.state.queue().enqueue(NewJob::new(dnp_server::jobs::TOKEN_REFRESH_SWEEP, json!({}))).await.unwrap();
    wait_until(
        || async { app.get("/api/v1/connections", &token).await.body["items"][0]["status"] == "needs_reauth" },
        "needs_reauth",
    )
    .await;
    let notes = app.get("/api/v1/notifications", &token).await;
    let reauth: Vec<&Value> =
        notes.body["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "needs_reauth").collect();
    assert_eq!(reauth.len(), 1, "exactly one in-app notification: {}", notes.text);
    token
}

async fn email_jobs(world: &World, token: &str) -> Vec<Value> {
    let jobs = world.app.get("/api/v1/jobs", token).await;
    jobs.body["items"].as_array().unwrap().iter().filter(|j| j["kind"] == "send_email").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_ending_in_needs_reauth_emails_the_user_once_with_a_dashboard_link() {
    dnp_server::api::ops::install_metrics();
    let smtp = SmtpReceiver::start(false).await;
    let url = smtp.url();
    let world = world(31, &[("SMTP_URL", &url), ("SMTP_FROM", "dnp <dnp@example.org>")]).await;
    let token = refresh_into_needs_reauth(&world, "reauth-mail@example.org").await;

    wait_until(|| async { !smtp.messages().is_empty() }, "the email").await;
    // Give a duplicate every chance to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "exactly one email: {messages:#?}");
    let m = &messages[0];
    assert_eq!(m.to, vec!["reauth-mail@example.org".to_owned()]);
    assert_eq!(m.from, "dnp@example.org");
    assert!(m.data.contains("Subject: Reconnect Spotify\r\n"), "{}", m.data);
    assert!(m.data.contains("Content-Type: text/plain"), "{}", m.data);
    assert!(m.data.contains(&format!("{PUBLIC}/dashboard")), "{}", m.data);
    assert!(m.data.contains("could not renew its access to Spotify"), "{}", m.data);

    let jobs = email_jobs(&world, &token).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    wait_until(
        || async { email_jobs(&world, &token).await[0]["status"] == "succeeded" },
        "the send_email job to succeed",
    )
    .await;
    let metrics = world.app.call("GET", "/metrics", None, None).await.text;
    assert!(metrics.contains("emails_sent_total{kind=\"needs_reauth\"}"), "{metrics}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_smtp_server_leads_to_a_retried_send_email_job_and_keeps_the_in_app_notification() {
    dnp_server::api::ops::install_metrics();
    let smtp = SmtpReceiver::start(true).await;
    let url = smtp.url();
    let world = world(32, &[("SMTP_URL", &url), ("SMTP_FROM", "dnp@example.org"), ("SMTP_TIMEOUT_SECONDS", "2")]).await;
    // The in-app notification is there at once (checked inside), whatever SMTP does.
    let token = refresh_into_needs_reauth(&world, "down-mail@example.org").await;

    // The first attempt fails and the job waits for its retry.
    wait_until(
        || async {
            let jobs = email_jobs(&world, &token).await;
            jobs.len() == 1 && jobs[0]["attempts"].as_u64() >= Some(1) && jobs[0]["last_error"].is_string()
        },
        "a failed send_email attempt",
    )
    .await;
    let job = email_jobs(&world, &token).await.remove(0);
    assert_ne!(job["status"], "dead", "{job}");
    assert_ne!(job["status"], "succeeded", "{job}");
    assert!(job["last_error"].as_str().unwrap().contains("SMTP"), "{job}");
    assert!(smtp.connections.load(Ordering::SeqCst) >= 1, "the worker tried the server");
    assert!(smtp.messages().is_empty());
    let metrics = world.app.call("GET", "/metrics", None, None).await.text;
    assert!(metrics.contains("emails_failed_total{kind=\"needs_reauth\"}"), "{metrics}");

    // The server comes back: the retry delivers the email, once.
    smtp.down.store(false, Ordering::SeqCst);
    wait_until(
        || async { email_jobs(&world, &token).await[0]["status"] == "succeeded" },
        "the retried send_email job to succeed",
    )
    .await;
    let job = email_jobs(&world, &token).await.remove(0);
    assert!(job["attempts"].as_u64().unwrap() >= 2, "{job}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].to, vec!["down-mail@example.org".to_owned()]);
    let notes = world.app.get("/api/v1/notifications", &token).await;
    assert_eq!(
        notes.body["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "needs_reauth").count(),
        1,
        "{}",
        notes.text
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_emailed_when_smtp_is_not_configured() {
    let smtp = SmtpReceiver::start(false).await;
    let world = world(33, &[]).await;
    let token = refresh_into_needs_reauth(&world, "no-smtp@example.org").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(email_jobs(&world, &token).await.is_empty(), "no send_email job without SMTP");
    assert_eq!(smtp.connections.load(Ordering::SeqCst), 0);
    assert!(smtp.messages().is_empty());
    world.stop().await;
}

#[test]
fn the_smtp_password_never_appears_in_config_debug() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "smtps://mailer:s3cr3t-pa55word@mail.example.org:465",
        "smtp://mailer:s3cr3t-pa55word@mail.example.org:587?tls=required",
    ] {
        let config = common::config(dir.path(), &[("SMTP_URL", url), ("SMTP_FROM", "dnp@example.org")]);
        let debug = format!("{config:?}");
        assert!(debug.contains("mail.example.org"), "Debug describes the server: {debug}");
        assert!(!debug.contains("s3cr3t-pa55word"), "Debug must not print the SMTP password: {debug}");
        let pretty = format!("{:#?}", config.smtp);
        assert!(!pretty.contains("s3cr3t-pa55word"), "{pretty}");
    }
}
