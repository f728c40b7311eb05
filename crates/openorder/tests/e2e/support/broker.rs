//! The broker of one test: the embedded broker (`openorder-broker`, a fresh process and
//! data directory, which a test may kill and start again) or Apache Kafka from the
//! environment.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use super::{external, free_port, openorder_exe, temp_dir, BrokerKind};

/// A running broker for one test.
pub struct TestBroker {
    pub bootstrap: String,
    child: Option<Child>,
    /// The embedded broker's data directory (kept across [`TestBroker::restart`]).
    data_dir: Option<PathBuf>,
}

impl TestBroker {
    /// None when the broker is external and the run skips external tests.
    pub async fn start(kind: BrokerKind) -> Option<Self> {
        match kind {
            BrokerKind::Kafka => external("OPENORDER_TEST_KAFKA_BOOTSTRAP").map(|bootstrap| Self {
                bootstrap,
                child: None,
                data_dir: None,
            }),
            BrokerKind::Tansu => Some(Self::start_tansu_with_env(&[]).await),
        }
    }

    /// The embedded broker, with these environment variables set (its flags' twins).
    pub async fn start_tansu_with_env(env: &[(&str, &str)]) -> Self {
        let dir = temp_dir("tansu");
        let address = format!("127.0.0.1:{}", free_port());
        let child = spawn_tansu(&dir, &address, env).await;
        Self {
            bootstrap: address,
            child: Some(child),
            data_dir: Some(dir),
        }
    }

    /// The embedded broker on `address` (e.g. one a service was told to wait for).
    pub async fn start_tansu_at(address: &str) -> Self {
        let dir = temp_dir("tansu");
        let child = spawn_tansu(&dir, address, &[]).await;
        Self {
            bootstrap: address.to_string(),
            child: Some(child),
            data_dir: Some(dir),
        }
    }

    /// Kills the embedded broker (SIGKILL: the harshest way for a broker to go away).
    pub fn kill(&mut self) {
        let child = self
            .child
            .as_mut()
            .expect("only the embedded broker can be killed");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The embedded broker's data directory (None for an external broker).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    /// The embedded broker's process id (None for an external broker).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the embedded broker again on the same address and data.
    pub async fn restart(&mut self) {
        let dir = self
            .data_dir
            .clone()
            .expect("only the embedded broker restarts");
        self.child = Some(spawn_tansu(&dir, &self.bootstrap, &[]).await);
    }
}

/// The `openorder-broker` binary: a package of its own (it cannot link sqlx), built beside
/// `openorder` by `cargo build --workspace`, which `scripts/test.sh` runs first.
pub fn broker_exe() -> PathBuf {
    harness::broker::broker_exe(openorder_exe()).unwrap_or_else(|err| panic!("{err:#}"))
}

async fn spawn_tansu(dir: &std::path::Path, address: &str, env: &[(&str, &str)]) -> Child {
    let child =
        harness::broker::broker_command(&broker_exe(), dir, address, &dir.join("broker.log"))
            .expect("the broker's log opens")
            .envs(env.iter().copied())
            .spawn()
            .expect("the openorder-broker binary starts");
    platform::kafka::wait_until_ready(address, Duration::from_secs(30))
        .await
        .expect("the embedded broker becomes ready");
    child
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
