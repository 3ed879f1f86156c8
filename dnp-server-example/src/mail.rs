//! Email notifications. When SMTP is configured (`SMTP_URL`, `SMTP_FROM`), the notifications
//! that need the user to act (a connection needs re-authorization, an enforcement batch
//! failed) are also sent by email, as plain text with a link to the dashboard.
//!
//! The job that raises a notification never talks to the SMTP server: it records the in-app
//! notification and enqueues a durable [`SEND_EMAIL`] job. A worker sends it with a bounded
//! timeout; a failed send is logged (without secrets), counted in `emails_failed_total` and
//! retried by the queue with backoff, so a slow or down SMTP server neither blocks the job
//! nor loses the email. Sent emails are counted in `emails_sent_total`.

use std::time::Duration;

use dnp_core::{NewJob, UserId};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Config;
use crate::error::ApiError;
use crate::jobs::JobError;
use crate::state::AppState;
use crate::store;
use crate::with_pool;

/// Job type: send one notification email.
pub const SEND_EMAIL: &str = "send_email";

/// The notification kinds also sent by email (the others stay in-app, to avoid spam).
pub const EMAILED_KINDS: [&str; 2] = ["needs_reauth", "enforcement_failed"];

/// Attempts of a [`SEND_EMAIL`] job (with the queue's default backoff: over roughly 25–50 minutes).
pub(crate) const EMAIL_ATTEMPTS: u32 = 12;

/// Input of a [`SEND_EMAIL`] job. The address is read when sending (it may have changed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EmailPayload {
    pub(crate) user_id: UserId,
    pub(crate) kind: String,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// Sends notification emails through the configured SMTP server.
#[derive(Clone)]
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    dashboard_url: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).field("timeout", &self.timeout).finish()
    }
}

/// Why a send failed, and whether another attempt may succeed.
#[derive(Debug)]
pub(crate) struct SendError {
    pub(crate) message: String,
    pub(crate) retryable: bool,
}

impl Mailer {
    /// The mailer `config` describes, or `None` when SMTP is not configured.
    pub(crate) fn from_config(config: &Config) -> Option<Self> {
        let smtp = config.smtp.as_ref()?;
        // Both were checked when the configuration was read; never log the URL (it may hold the password).
        let builder = match AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp.url.expose_secret()) {
            Ok(b) => b,
            Err(_) => {
                tracing::error!("SMTP_URL was refused by the SMTP client: email notifications are off");
                return None;
            }
        };
        let Ok(from) = smtp.from.parse::<Mailbox>() else {
            tracing::error!("SMTP_FROM is not an address: email notifications are off");
            return None;
        };
        Some(Self {
            transport: builder.timeout(Some(smtp.timeout)).build(),
            from,
            timeout: smtp.timeout,
            dashboard_url: format!("{}/dashboard", config.public_base_url),
        })
    }

    /// The plain-text body of an email about `body`.
    pub(crate) fn text(&self, body: &str) -> String {
        format!(
            "{body}\n\nOpen your dashboard: {}\n\n-- \nYou receive this because you have an account on this dnp server.\n",
            self.dashboard_url
        )
    }

    /// Sends one plain-text email to `to`, giving up after the configured timeout.
    pub(crate) async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| SendError { message: "the account's email address is not valid".into(), retryable: false })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(self.text(body))
            .map_err(|e| SendError { message: format!("building the email failed: {e}"), retryable: false })?;
        // lettre's timeout bounds each read and write; this bounds the whole exchange.
        match tokio::time::timeout(self.timeout * 3, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError { retryable: !e.is_permanent(), message: format!("SMTP: {e}") }),
            Err(_) => Err(SendError {
                message: format!("SMTP: no answer within {} s", (self.timeout * 3).as_secs()),
                retryable: true,
            }),
        }
    }
}

/// Records an in-app notification for `user` and, when SMTP is configured and `kind` is one
/// of [`EMAILED_KINDS`], queues its email. The in-app notification is written first and is
/// kept even when queuing the email fails.
pub(crate) async fn notify(
    state: &AppState,
    user: UserId,
    kind: &str,
    title: &str,
    body: &str,
) -> Result<(), ApiError> {
    store::notify(state.db(), user, kind, title, body).await?;
    if state.mailer().is_none() || !EMAILED_KINDS.contains(&kind) {
        return Ok(());
    }
    let job = NewJob::new(SEND_EMAIL, json!({"user_id": user, "kind": kind, "subject": title, "body": body}))
        .with_owner(user)
        .with_max_attempts(EMAIL_ATTEMPTS);
    if let Err(e) = state.queue().enqueue(job).await {
        metrics::counter!("emails_failed_total", "kind" => kind.to_owned()).increment(1);
        tracing::warn!(user_id = %user, kind, error = %e, "queuing a notification email failed");
    }
    Ok(())
}

/// Runs a [`SEND_EMAIL`] job.
pub(crate) async fn send_job(state: &AppState, p: EmailPayload) -> Result<(), JobError> {
    let Some(mailer) = state.mailer() else {
        return Err(JobError::permanent("SMTP is not configured on this worker (set SMTP_URL and SMTP_FROM)"));
    };
    let address: Option<String> = with_pool!(state.db(), pool => {
        sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
            .bind(p.user_id.to_string())
            .fetch_optional(pool)
            .await
            .map_err(ApiError::from)?
    });
    let Some(address) = address else {
        tracing::info!(user_id = %p.user_id, "notification email dropped: the account no longer exists");
        return Ok(());
    };
    match mailer.send(&address, &p.subject, &p.body).await {
        Ok(()) => {
            metrics::counter!("emails_sent_total", "kind" => p.kind.clone()).increment(1);
            tracing::info!(user_id = %p.user_id, kind = %p.kind, "notification email sent");
            Ok(())
        }
        Err(e) => {
            metrics::counter!("emails_failed_total", "kind" => p.kind.clone()).increment(1);
            tracing::warn!(user_id = %p.user_id, kind = %p.kind, error = %e.message, retryable = e.retryable, "sending a notification email failed");
            Err(if e.retryable { JobError::retry(e.message) } else { JobError::permanent(e.message) })
        }
    }
}
