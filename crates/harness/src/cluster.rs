//! The system under test, as separate OS processes: the broker (the embedded one, or an
//! external one given by address), and each service started as `openorder <service>` with
//! its own database (SQLite files, or fresh PostgreSQL databases), so a fault is a real
//! `kill -9` of a real process. `chaos` runs every scenario on one; `bench` runs the three
//! services on one against an external Kafka and PostgreSQL. The services are this
//! process's own executable, `openorder`, run again: a [`Cluster`] is made from inside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

pub use crate::backend::{Backend, BackendArgs, BrokerChoice};

async fn shell(command: &str) -> anyhow::Result<()> {
    let status = Command::new("bash")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .await
        .with_context(|| format!("Failed to run {command:?}"))?;
    anyhow::ensure!(status.success(), "{command:?} failed with {status}");
    Ok(())
}

/// How long a service or the broker may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(120);

/// One service process and how to start it again.
struct ServiceProcess {
    service: String,
    listen: String,
    database_url: String,
    /// Its flags beyond those every service process gets ([`crate::service_command`]).
    flags: Vec<String>,
    log: PathBuf,
    url: String,
    child: Option<Child>,
}

/// Broker, databases and service processes of one scenario.
pub struct Cluster {
    pub backend: Backend,
    pub bootstrap: String,
    pub prefix: String,
    dir: PathBuf,
    replication_factor: i32,
    exe: PathBuf,
    broker: Option<Child>,
    services: BTreeMap<String, ServiceProcess>,
    http: reqwest::Client,
    /// Environment variables every service process gets (e.g. a soak's retention windows).
    pub env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts the broker (embedded) and prepares a fresh topic prefix; no service yet.
    pub async fn new(
        backend: Backend,
        dir: &Path,
        replication_factor: i32,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let exe = std::env::current_exe().context("Failed to find the openorder executable")?;
        let prefix = format!("chaos{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let bootstrap = match &backend {
            Backend::Embedded => format!("127.0.0.1:{}", crate::free_port()?),
            Backend::External { bootstrap, .. } => bootstrap.clone(),
        };
        let mut cluster = Self {
            backend,
            bootstrap,
            prefix,
            dir: dir.to_path_buf(),
            replication_factor,
            exe,
            broker: None,
            services: BTreeMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            env: Vec::new(),
        };
        if matches!(cluster.backend, Backend::Embedded) {
            cluster.start_broker().await?;
        }
        Ok(cluster)
    }

    async fn start_broker(&mut self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Embedded => {
                let log = self.dir.join("broker.log");
                let mut command = Command::from(crate::broker::broker_command(
                    &crate::broker::broker_exe(&self.exe)?,
                    &self.dir.join("broker"),
                    &self.bootstrap,
                    &log,
                )?);
                command.kill_on_drop(true);
                let child =
                    crate::broker::start_broker(&mut command, &self.bootstrap, &log, READY_LIMIT)
                        .await?;
                self.broker = Some(child);
                Ok(())
            }
            Backend::External { broker_start, .. } => {
                let command = broker_start
                    .as_deref()
                    .context("no --broker-start-command given")?;
                shell(command).await?;
                platform::kafka::wait_until_ready(&self.bootstrap, READY_LIMIT).await
            }
        }
    }

    /// Stops the broker: SIGKILL for the embedded one, the stop command for an external one.
    pub async fn stop_broker(&mut self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Embedded => {
                if let Some(mut child) = self.broker.take() {
                    child.kill().await?;
                }
                Ok(())
            }
            Backend::External { broker_stop, .. } => {
                shell(
                    broker_stop
                        .as_deref()
                        .context("no --broker-stop-command given")?,
                )
                .await
            }
        }
    }

    pub async fn restart_broker(&mut self) -> anyhow::Result<()> {
        self.start_broker().await
    }

    pub fn can_restart_broker(&self) -> bool {
        match &self.backend {
            Backend::Embedded => true,
            Backend::External {
                broker_stop,
                broker_start,
                ..
            } => broker_stop.is_some() && broker_start.is_some(),
        }
    }

    pub fn can_restart_database(&self) -> bool {
        matches!(
            &self.backend,
            Backend::External {
                database_stop: Some(_),
                database_start: Some(_),
                ..
            }
        )
    }

    pub async fn stop_database(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::External {
                database_stop: Some(c),
                ..
            } => shell(c).await,
            _ => anyhow::bail!("the database cannot be stopped on this backend"),
        }
    }

    pub async fn start_database(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::External {
                database_start: Some(c),
                ..
            } => shell(c).await,
            _ => anyhow::bail!("the database cannot be started on this backend"),
        }
    }

    /// The PostgreSQL database of `service`'s instances (on an external backend).
    pub fn database_name(&self, service: &str) -> String {
        format!(
            "{}_{}",
            self.prefix.trim_end_matches('.'),
            service.replace('-', "_")
        )
    }

    /// A database URL for one service instance's store (shared by instances of one service).
    async fn database_url(&self, service: &str) -> anyhow::Result<String> {
        match &self.backend {
            Backend::Embedded => Ok(format!("sqlite://{}/{service}.db", self.dir.display())),
            Backend::External { postgres_url, .. } => {
                let name = self.database_name(service);
                sqlx::any::install_default_drivers();
                let pool = sqlx::AnyPool::connect(postgres_url)
                    .await
                    .context("Failed to connect to PostgreSQL")?;
                let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
                    .bind(&name)
                    .fetch_optional(&pool)
                    .await?
                    .is_some();
                if !exists {
                    sqlx::query(&format!("CREATE DATABASE {name}"))
                        .execute(&pool)
                        .await?;
                }
                pool.close().await;
                let base = postgres_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(postgres_url);
                Ok(format!("{base}/{name}"))
            }
        }
    }

    /// Starts `instance` (e.g. `inventory-service` or `inventory-service-2`) of `service`.
    pub async fn start_service(&mut self, service: &str, instance: &str) -> anyhow::Result<String> {
        let port = crate::free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let flags = vec![
            "--topic-prefix".into(),
            self.prefix.clone(),
            "--retry-backoff-ms".into(),
            "100".into(),
            "--retry-backoff-multiplier".into(),
            "2".into(),
            "--topic-replication-factor".into(),
            self.replication_factor.to_string(),
            "--partition-assignment".into(),
            match self.backend {
                // As `openorder up` does with the embedded broker.
                Backend::Embedded => "all".into(),
                Backend::External { .. } => "group".into(),
            },
        ];
        let mut process = ServiceProcess {
            service: service.to_string(),
            listen: format!("127.0.0.1:{port}"),
            database_url: self.database_url(service).await?,
            flags,
            log: self.dir.join(format!("{instance}.log")),
            url: url.clone(),
            child: None,
        };
        self.spawn(&mut process)?;
        self.services.insert(instance.to_string(), process);
        crate::wait_ready(&self.http, &url, READY_LIMIT).await?;
        Ok(url)
    }

    /// Starts one instance each of order-, inventory- and notification-service, named for
    /// its service; their URLs, in that order.
    pub async fn start_services(&mut self) -> anyhow::Result<[String; 3]> {
        let order = self.start_service("order-service", "order-service").await?;
        let inventory = self
            .start_service("inventory-service", "inventory-service")
            .await?;
        let notification = self
            .start_service("notification-service", "notification-service")
            .await?;
        Ok([order, inventory, notification])
    }

    fn spawn(&self, process: &mut ServiceProcess) -> anyhow::Result<()> {
        let mut command = Command::from(crate::service_command(
            &self.exe,
            &process.service,
            &process.listen,
            &self.bootstrap,
            &process.database_url,
            &process.log,
        )?);
        let child = command
            .args(&process.flags)
            .env(
                "RUST_LOG",
                format!("warn,{},rdkafka=warn", platform::telemetry::own_at("info")),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "Failed to start {} on {} ({:?})",
                    process.service, process.listen, process.flags
                )
            })?;
        process.child = Some(child);
        Ok(())
    }

    /// Name and pid of every running service process.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.services
            .iter()
            .filter_map(|(name, p)| {
                p.child
                    .as_ref()
                    .and_then(Child::id)
                    .map(|pid| (name.clone(), pid))
            })
            .collect()
    }

    /// `kill -9`: no shutdown, no final commit, no flush.
    pub async fn kill(&mut self, instance: &str) -> anyhow::Result<()> {
        let process = self
            .services
            .get_mut(instance)
            .with_context(|| format!("no service instance {instance}"))?;
        if let Some(mut child) = process.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts a killed instance again with the same arguments (same port and database).
    pub async fn restart(&mut self, instance: &str) -> anyhow::Result<()> {
        let mut process = self
            .services
            .remove(instance)
            .with_context(|| format!("no service instance {instance}"))?;
        self.spawn(&mut process)?;
        let url = process.url.clone();
        self.services.insert(instance.to_string(), process);
        crate::wait_ready(&self.http, &url, READY_LIMIT).await
    }

    /// SIGTERM to every service, then the embedded broker.
    pub async fn shutdown(mut self) {
        for process in self.services.values_mut() {
            if let Some(child) = &mut process.child {
                if let Some(pid) = child.id() {
                    let _ = Command::new("kill").arg(pid.to_string()).status().await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
            }
        }
        if let Some(mut broker) = self.broker.take() {
            let _ = broker.kill().await;
        }
    }
}
