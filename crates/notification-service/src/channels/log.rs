//! The log channel: the message as one structured log line. Always on.

use super::{Channel, Outgoing, SendFuture};

pub struct LogChannel;

impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        "log"
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            tracing::info!(
                channel = "log",
                order_id = message.order_id,
                kind = %message.kind,
                recipient = %message.recipient,
                "notification: {}",
                message.text
            );
            Ok(())
        })
    }
}
