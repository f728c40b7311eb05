//! How every Kafka client reaches the brokers securely: the TLS and SASL flags
//! ([`KafkaSecurityArgs`], part of [`super::BrokerArgs`]), the librdkafka settings they stand
//! for, and [`Secret`], a setting `Debug` never shows.

use clap::Args;

/// How every Kafka client of the binary reaches the brokers: TLS (with hostname
/// verification), SASL, or both, as managed Kafka services require (`SASL_SSL`).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Kafka connection")]
pub struct KafkaSecurityArgs {
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    #[arg(
        long,
        env = "OPENORDER_KAFKA_SECURITY_PROTOCOL",
        value_enum,
        default_value = "PLAINTEXT",
        hide_short_help = true
    )]
    pub kafka_security_protocol: SecurityProtocol,

    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (with SASL_*).
    #[arg(
        long,
        env = "OPENORDER_KAFKA_SASL_MECHANISM",
        value_enum,
        hide_short_help = true
    )]
    pub kafka_sasl_mechanism: Option<SaslMechanism>,

    /// SASL username.
    #[arg(long, env = "OPENORDER_KAFKA_SASL_USERNAME", hide_short_help = true)]
    pub kafka_sasl_username: Option<String>,

    /// SASL password (prefer the environment or `--kafka-sasl-password-file`: flags show in `ps`).
    #[arg(
        long,
        env = "OPENORDER_KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        conflicts_with = "kafka_sasl_password_file",
        hide_short_help = true
    )]
    pub kafka_sasl_password: Option<Secret>,

    /// File whose first line is the SASL password (read once, at start).
    #[arg(long, env = "OPENORDER_KAFKA_SASL_PASSWORD_FILE", value_parser = Secret::from_file, hide_short_help = true)]
    pub kafka_sasl_password_file: Option<Secret>,

    /// CA certificates (PEM) the brokers' certificates must chain to [default: the system's].
    #[arg(long, env = "OPENORDER_KAFKA_SSL_CA_FILE", hide_short_help = true)]
    pub kafka_ssl_ca_file: Option<std::path::PathBuf>,

    /// Client certificate (PEM), for brokers that authenticate clients by TLS (mTLS).
    #[arg(
        long,
        env = "OPENORDER_KAFKA_SSL_CERTIFICATE_FILE",
        requires = "kafka_ssl_key_file",
        hide_short_help = true
    )]
    pub kafka_ssl_certificate_file: Option<std::path::PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "OPENORDER_KAFKA_SSL_KEY_FILE",
        requires = "kafka_ssl_certificate_file",
        hide_short_help = true
    )]
    pub kafka_ssl_key_file: Option<std::path::PathBuf>,

    /// Password of an encrypted private key.
    #[arg(
        long,
        env = "OPENORDER_KAFKA_SSL_KEY_PASSWORD",
        hide_env_values = true,
        hide_short_help = true
    )]
    pub kafka_ssl_key_password: Option<Secret>,
}

/// See [`KafkaSecurityArgs::kafka_security_protocol`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

/// See [`KafkaSecurityArgs::kafka_sasl_mechanism`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl KafkaSecurityArgs {
    /// The librdkafka settings these flags stand for; an error names a missing companion
    /// setting (a SASL protocol without mechanism, username or password, or SASL settings
    /// without a SASL protocol).
    pub fn settings(&self) -> Result<Vec<(&'static str, String)>, String> {
        use SecurityProtocol::*;
        let protocol = self.kafka_security_protocol;
        let sasl = matches!(protocol, SaslPlaintext | SaslSsl);
        let tls = matches!(protocol, Ssl | SaslSsl);
        let name = match protocol {
            Plaintext => "plaintext",
            Ssl => "ssl",
            SaslPlaintext => "sasl_plaintext",
            SaslSsl => "sasl_ssl",
        };
        let mut settings = vec![("security.protocol", name.to_string())];
        let password = self
            .kafka_sasl_password
            .as_ref()
            .or(self.kafka_sasl_password_file.as_ref());
        if sasl {
            let mechanism = self.kafka_sasl_mechanism.ok_or_else(|| {
                "--kafka-security-protocol SASL_* needs --kafka-sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)".to_string()
            })?;
            let username = self.kafka_sasl_username.clone().ok_or_else(|| {
                "--kafka-security-protocol SASL_* needs --kafka-sasl-username".to_string()
            })?;
            let password = password.ok_or_else(|| {
                "--kafka-security-protocol SASL_* needs a password: OPENORDER_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file".to_string()
            })?;
            let mechanism = match mechanism {
                SaslMechanism::Plain => "PLAIN",
                SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
                SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            };
            settings.push(("sasl.mechanisms", mechanism.to_string()));
            settings.push(("sasl.username", username));
            settings.push(("sasl.password", password.expose().to_string()));
        } else if self.kafka_sasl_mechanism.is_some()
            || self.kafka_sasl_username.is_some()
            || password.is_some()
        {
            return Err(format!(
                "SASL settings are given but --kafka-security-protocol is {protocol:?}; use SASL_SSL or SASL_PLAINTEXT"
            ));
        }
        let tls_files = [
            ("ssl.ca.location", &self.kafka_ssl_ca_file),
            ("ssl.certificate.location", &self.kafka_ssl_certificate_file),
            ("ssl.key.location", &self.kafka_ssl_key_file),
        ];
        if tls {
            // Brokers' names are checked against their certificates (librdkafka's default
            // since 1.9, set so that no override turns it off unseen).
            settings.push(("ssl.endpoint.identification.algorithm", "https".to_string()));
            for (key, file) in tls_files {
                if let Some(file) = file {
                    settings.push((key, file.display().to_string()));
                }
            }
            if let Some(password) = &self.kafka_ssl_key_password {
                settings.push(("ssl.key.password", password.expose().to_string()));
            }
        } else if tls_files.iter().any(|(_, f)| f.is_some()) {
            return Err(format!(
                "TLS files are given but --kafka-security-protocol is {protocol:?}; use SSL or SASL_SSL"
            ));
        }
        Ok(settings)
    }
}

/// A secret setting: never shown by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first line of the file at `path` (read when the flags are parsed, before the
    /// runtime starts).
    pub fn from_file(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if first.is_empty() {
            return Err(format!("{path} is empty"));
        }
        Ok(Self(first.to_string()))
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
