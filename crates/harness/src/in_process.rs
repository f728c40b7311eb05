//! The three services in this process, each on a listener its caller bound, stopped by one
//! token: how `openorder up` runs them, and the tests' stacks (on a runtime of their own).

use platform::db::DatabaseArgs;
use platform::http::HttpArgs;
use platform::kafka::KafkaArgs;
use platform::service::ServiceArgs;
use platform::shutdown::StopArgs;
use platform::CancellationToken;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The configurations of one deployment's three services.
#[derive(Debug)]
pub struct Services {
    pub order: order_service::Config,
    pub inventory: inventory_service::Config,
    pub notification: notification_service::Config,
}

/// The three services on one Kafka configuration, with the same HTTP and stop settings and
/// a database each (`databases`: order-, inventory- and notification-service's).
/// order-service checks customers' webhooks as notification-service does (`notify`'s
/// destinations); inventory-service loads the shipped seed and starts with the fault
/// switches `faults`.
pub fn services(
    kafka: &KafkaArgs,
    databases: [DatabaseArgs; 3],
    http: &HttpArgs,
    stop: &StopArgs,
    notify: &notification_service::NotifyArgs,
    faults: &inventory_service::faults::FaultFlags,
) -> Services {
    let [order, inventory, notification] = databases;
    Services {
        order: order_service::Config {
            core: core(kafka, order, http, stop),
            webhooks: notify.webhook.destinations.clone(),
            orders: Default::default(),
        },
        inventory: inventory_service::Config {
            core: core(kafka, inventory, http, stop),
            seed_file: None,
            faults: faults.clone(),
            auto_redrive: Default::default(),
        },
        notification: notification_service::Config {
            core: core(kafka, notification, http, stop),
            notify: notify.clone(),
        },
    }
}

/// One service's share of the settings all three take alike.
fn core(
    kafka: &KafkaArgs,
    database: DatabaseArgs,
    http: &HttpArgs,
    stop: &StopArgs,
) -> ServiceArgs {
    ServiceArgs {
        kafka: kafka.clone(),
        database,
        http: http.clone(),
        stop: stop.clone(),
    }
}

impl Services {
    /// Runs the three services in `running`, on `listeners` (order-, inventory- and
    /// notification-service's), until `shutdown`: each task ends with its service's result.
    pub fn spawn(
        self,
        listeners: [TcpListener; 3],
        shutdown: &CancellationToken,
        running: &mut JoinSet<anyhow::Result<()>>,
    ) {
        let [order, inventory, notification] = listeners;
        running.spawn(order_service::run(self.order, order, shutdown.clone()));
        running.spawn(inventory_service::run(
            self.inventory,
            inventory,
            shutdown.clone(),
        ));
        running.spawn(notification_service::run(
            self.notification,
            notification,
            shutdown.clone(),
        ));
    }
}
