//! Flags a service takes beside those of its layers (whose flags live with them:
//! `KafkaArgs` in kafka-clients, `DatabaseArgs` in store, `HttpArgs` in web).

use clap::Args;

/// Where customers' webhooks may point (order-service checks a contact when an order
/// carries one, notification-service when a contact is set and again when it sends).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookDestinationArgs {
    /// Networks webhooks may reach although they are not public (CIDR, comma-separated),
    /// e.g. `127.0.0.0/8` for a receiver on this host or `10.1.0.0/16` for internal ones.
    /// Empty (the default): public addresses only.
    #[arg(long, env = "OPENORDER_WEBHOOK_ALLOW_NETWORKS", value_delimiter = ',', value_parser = contracts::destinations::Network::parse, hide_short_help = true)]
    pub webhook_allow_networks: Vec<contracts::destinations::Network>,
}

impl WebhookDestinationArgs {
    pub fn destinations(&self) -> contracts::destinations::Destinations {
        contracts::destinations::Destinations::allowing(self.webhook_allow_networks.clone())
    }
}
