//! Digests: the notices of one user's digest window on one channel, as one message.
//!
//! The first notice for a user and channel while the user has a digest window opens it:
//! its delivery carries the digest, due when the window closes ([`crate::schedule`]), with
//! the key [`key`] (from the user, the channel and the window's start). Notices routed while
//! it is open (and not yet claimed) are stored `GATHERED`, naming that key. When the
//! dispatcher claims the carrying delivery it reads every notification of the digest and
//! [`compose`]s one message from what each said (subject and text, as rendered when it was
//! routed), so that a resend after a crash is the same message with the same key; a
//! window that gathered nothing else goes as its one notice's own message.

use chrono::{DateTime, SecondsFormat, Utc};
use contracts::html::escape;
use serde::Serialize;
use uuid::Uuid;

/// The `kind` of a digest message (webhook `type`, `notification.failed`'s `kind`).
pub const KIND: &str = "notification.digest";

/// The digest's idempotency key: a UUID (version 8) made of the window's start (its first
/// 48 bits, as the keys of single notices begin with their event's time) and a hash of
/// user, channel and start. The same window has the same key, however often its message is
/// sent. On push, where each subscription has windows of its own, `channel` is the lane
/// (`notification_service_channels::lane`).
pub fn key(user_id: i64, channel: &str, window_start_ms: i64) -> String {
    let hash = Uuid::new_v5(
        &crate::keys::KEY_NAMESPACE,
        format!("digest/{user_id}/{channel}/{window_start_ms}").as_bytes(),
    );
    let mut bytes = *hash.as_bytes();
    bytes[..6].copy_from_slice(&window_start_ms.to_be_bytes()[2..]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// One notice of a digest, as it was rendered when routed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub event_id: String,
    pub order_id: i64,
    pub kind: String,
    pub subject: String,
    pub text: String,
}

/// A digest's message, every part a channel may send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    /// The plain text: a line per notice (its subject and text). For SMS and push, the
    /// subjects only, one after another (a text message or a notification has little room).
    pub text: String,
    pub html: String,
    /// The webhook body (JSON).
    pub payload: String,
}

/// The message of digest `key` for `user_id` on `channel`, opened at `opened`, listing
/// `items` in the order given (the order they were recorded). A pure function of its
/// arguments: the same digest composes to the same bytes.
pub fn compose(
    user_id: i64,
    channel: &str,
    key: &str,
    opened: DateTime<Utc>,
    items: &[Item],
) -> Composed {
    let count = items.len();
    let subject = format!("{count} updates on your orders");
    let short = [
        notification_service_channels::sms::NAME,
        notification_service_channels::push::NAME,
    ];
    let text = if short.contains(&channel) {
        let subjects: Vec<&str> = items.iter().map(|i| i.subject.trim()).collect();
        format!("{subject}: {}.", subjects.join("; "))
    } else {
        let mut text = format!("{subject}:\n");
        for item in items {
            text.push_str(&format!(
                "\n- {}: {}",
                item.subject.trim(),
                item.text.trim()
            ));
        }
        text.push('\n');
        text
    };
    let mut html = format!("<p>{}:</p>\n<ul>\n", escape(&subject));
    for item in items {
        html.push_str(&format!(
            "<li><strong>{}</strong><br>{}</li>\n",
            escape(item.subject.trim()),
            escape(item.text.trim())
        ));
    }
    html.push_str("</ul>\n");
    let body = Body {
        kind: KIND,
        timestamp: opened.to_rfc3339_opts(SecondsFormat::Millis, true),
        data: Data {
            user_id,
            digest: key,
            notifications: items
                .iter()
                .map(|i| Entry {
                    event_id: &i.event_id,
                    order_id: i.order_id,
                    kind: &i.kind,
                    subject: &i.subject,
                    text: &i.text,
                })
                .collect(),
        },
    };
    Composed {
        subject,
        text,
        html,
        payload: serde_json::to_string(&body).expect("a digest body serializes"),
    }
}

/// The webhook body of a digest: `{type, timestamp, data}` as for single notices.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: Data<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    user_id: i64,
    /// The digest's idempotency key.
    digest: &'a str,
    notifications: Vec<Entry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    event_id: &'a str,
    order_id: i64,
    kind: &'a str,
    subject: &'a str,
    text: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: i64) -> Vec<Item> {
        (1..=n)
            .map(|order| Item {
                event_id: format!("event-{order}"),
                order_id: order,
                kind: "order.confirmed".into(),
                subject: format!("Order {order} is confirmed"),
                text: format!("Order {order} is confirmed: 1 × <ABC-00{order}> reserved for you."),
            })
            .collect()
    }

    #[test]
    fn five_notices_are_one_message_listing_each() {
        let opened = DateTime::parse_from_rfc3339("2025-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let key = key(42, "email", opened.timestamp_millis());
        let digest = compose(42, "email", &key, opened, &items(5));
        assert_eq!(digest.subject, "5 updates on your orders");
        for order in 1..=5 {
            assert!(
                digest.text.contains(&format!(
                    "\n- Order {order} is confirmed: Order {order} is confirmed: 1 × <ABC-00{order}>"
                )),
                "{}",
                digest.text
            );
            assert!(digest.html.contains(&format!("&lt;ABC-00{order}&gt;")));
        }
        assert_eq!(digest.text.matches("\n- ").count(), 5);
        let body: serde_json::Value = serde_json::from_str(&digest.payload).unwrap();
        assert_eq!(body["type"], KIND);
        assert_eq!(body["timestamp"], "2025-05-01T12:00:00.000Z");
        assert_eq!(body["data"]["userId"], 42);
        assert_eq!(body["data"]["digest"], key.as_str());
        assert_eq!(body["data"]["notifications"].as_array().unwrap().len(), 5);
        assert_eq!(body["data"]["notifications"][4]["orderId"], 5);
        // The same digest composes to the same bytes.
        assert_eq!(compose(42, "email", &key, opened, &items(5)), digest);
        // By SMS, the subjects.
        let sms = compose(42, "sms", &key, opened, &items(2));
        assert_eq!(
            sms.text,
            "2 updates on your orders: Order 1 is confirmed; Order 2 is confirmed."
        );
    }

    #[test]
    fn a_windows_key_is_its_user_channel_and_start_and_sorts_by_start() {
        let start = 1_746_100_800_000;
        assert_eq!(key(42, "email", start), key(42, "email", start));
        assert_ne!(key(42, "email", start), key(42, "sms", start));
        assert_ne!(key(42, "email", start), key(43, "email", start));
        assert_ne!(key(42, "email", start), key(42, "email", start + 1));
        assert!(key(42, "email", start) < key(41, "email", start + 60_000));
        assert_eq!(
            Uuid::parse_str(&key(42, "email", start))
                .unwrap()
                .get_version_num(),
            8
        );
    }
}
