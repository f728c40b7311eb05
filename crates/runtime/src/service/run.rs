//! The one way every service runs: [`Runtime::start`], then what the service adds of its
//! own ([`Assemble`]: its consumers, its workers, its API), then [`Runtime::serve`].

use std::future::Future;

use store::db::Schema;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Runtime, ServiceArgs};

/// What a service adds to the [`Runtime`] every service shares: its consumers, its
/// workers and its API. A service's configuration (or what the service made of it before
/// contacting anything) implements it; [`Runtime::run`] runs it.
pub trait Assemble {
    /// The flags every service takes (the configuration's `core`).
    fn core(&self) -> &ServiceArgs;

    /// Starts the service's consumers and workers on `runtime` and returns its API, which
    /// the runtime then serves.
    fn assemble(
        self,
        runtime: &mut Runtime,
    ) -> impl Future<Output = anyhow::Result<web::auth::Routes>> + Send;
}

impl Runtime {
    /// Runs `service` until `shutdown`: starts the runtime ([`Runtime::start`], `schema`
    /// applied to its database), lets `config` add the service's own parts
    /// ([`Assemble::assemble`]) and serves its API ([`Runtime::serve`]). `Ok` at once when
    /// `shutdown` came while the service waited for its database or brokers.
    pub async fn run(
        service: contracts::Service,
        schema: &Schema,
        config: impl Assemble,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let core = config.core().clone();
        let Some(mut runtime) = Self::start(service, &core, schema, &listener, &shutdown).await?
        else {
            return Ok(()); // stopped while it waited for its database or brokers
        };
        let api = config.assemble(&mut runtime).await?;
        runtime.serve(listener, api, &core, shutdown).await
    }
}
