//! The e-mail channel: SMTP through lettre. Each message is multipart/alternative (plain text
//! and HTML) with a Message-ID made from the delivery's idempotency key and a Date fixed to
//! when the notification was recorded, so a resend after a crash is the same message and
//! mail clients show it once.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Channel, Outgoing, SendError, SendFuture, Sent};

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    /// Plain text (a relay on loopback or in a trusted network only). Default port 25.
    None,
    /// Upgrade with STARTTLS, refusing servers that do not offer it. Default port 587.
    Starttls,
    /// TLS from the first byte (SMTPS). Default port 465.
    Tls,
}

impl SmtpTls {
    /// The flag's value: `none`, `starttls`, `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::Starttls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }
}

/// SMTP settings. E-mail is on when `--smtp-host` is set.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "E-mail")]
pub struct SmtpArgs {
    /// SMTP server host; unset disables the e-mail channel.
    #[arg(long, env = "OPENORDER_SMTP_HOST", hide_short_help = true)]
    pub smtp_host: Option<String>,
    /// SMTP server port [default: 25, 587 or 465 by --smtp-tls].
    #[arg(long, env = "OPENORDER_SMTP_PORT", hide_short_help = true)]
    pub smtp_port: Option<u16>,
    /// Connection security.
    #[arg(
        long,
        env = "OPENORDER_SMTP_TLS",
        value_enum,
        default_value = "starttls",
        hide_short_help = true
    )]
    pub smtp_tls: SmtpTls,
    /// SMTP user name (with --smtp-password).
    #[arg(long, env = "OPENORDER_SMTP_USERNAME", hide_short_help = true)]
    pub smtp_username: Option<String>,
    /// SMTP password.
    #[arg(
        long,
        env = "OPENORDER_SMTP_PASSWORD",
        hide_env_values = true,
        hide_short_help = true
    )]
    pub smtp_password: Option<String>,
    /// The From of every notification e-mail.
    #[arg(
        long,
        env = "OPENORDER_MAIL_FROM",
        default_value = "OpenOrder <orders@openorder.localhost>",
        hide_short_help = true
    )]
    pub mail_from: String,
    /// Give up on one SMTP conversation after this long (it is then retried).
    #[arg(
        long,
        env = "OPENORDER_SMTP_TIMEOUT_MS",
        default_value_t = 10_000,
        hide_short_help = true
    )]
    pub smtp_timeout_ms: u64,
}

pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of Message-IDs: the From address's domain.
    id_domain: String,
}

impl EmailChannel {
    /// The channel, or `None` when no SMTP host is configured.
    pub fn from_args(args: &SmtpArgs) -> anyhow::Result<Option<Self>> {
        let Some(host) = &args.smtp_host else {
            return Ok(None);
        };
        let from: Mailbox = args
            .mail_from
            .parse()
            .with_context(|| format!("--mail-from {:?} is not a mailbox", args.mail_from))?;
        let builder = match args.smtp_tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .with_context(|| format!("Failed to set up STARTTLS to {host}"))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .with_context(|| format!("Failed to set up TLS to {host}"))?,
        };
        let port = args.smtp_port.unwrap_or(match args.smtp_tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        let mut builder = builder
            .port(port)
            .timeout(Some(Duration::from_millis(args.smtp_timeout_ms)));
        match (&args.smtp_username, &args.smtp_password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            }
            (None, None) => {}
            _ => anyhow::bail!("--smtp-username and --smtp-password go together"),
        }
        let id_domain = from.email.domain().to_string();
        tracing::info!(%host, port, tls = args.smtp_tls.as_str(), from = %from, "e-mail channel on");
        Ok(Some(Self {
            transport: builder.build(),
            from,
            id_domain,
        }))
    }

    /// The message as it goes on the wire (also what tests compare against).
    pub fn message(&self, m: &Outgoing) -> Result<Message, SendError> {
        let to: Mailbox = m
            .recipient
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient {:?}: {e}", m.recipient)))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(format!("<{}@{}>", m.idempotency_key, self.id_domain)))
            .date(m.created_at.into())
            .multipart(MultiPart::alternative_plain_html(
                m.text.clone(),
                m.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("cannot build the e-mail: {e}")))
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> &'static str {
        "email"
    }

    fn send<'a>(&'a self, m: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let message = self.message(m)?;
            match self.transport.send(message).await {
                Ok(_) => Ok(Sent::default()),
                Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
                Err(e) => Err(SendError::Transient(format!("SMTP: {e}"))),
            }
        })
    }
}
