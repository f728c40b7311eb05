//! The log channel: the message as one structured log line. Always on.
//!
//! Writing a line cannot fail or wait on anyone, so the log is written where its delivery
//! is queued (`notification_service::notices`), in the transaction that records it, rather
//! than by the dispatcher: if that transaction is rolled back, the event is handled again
//! and the line written again (at least once, as every channel).

use super::{Channel, Outgoing, SendFuture, Sent};

pub struct LogChannel;

impl LogChannel {
    /// The channel's name, stored with its deliveries.
    pub const NAME: &'static str = "log";

    /// Writes one message's line.
    pub fn write(&self, order_id: i64, kind: &str, recipient: &str, text: &str) {
        tracing::info!(
            channel = Self::NAME,
            order_id,
            kind,
            recipient,
            "notification: {text}"
        );
    }
}

impl Channel for LogChannel {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// For a log delivery left `PENDING` by a version that queued them for the dispatcher.
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            self.write(
                message.order_id,
                &message.kind,
                &message.recipient,
                &message.text,
            );
            Ok(Sent::default())
        })
    }
}
