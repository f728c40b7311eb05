//! Which channels a user wants for which kind of notification, set with
//! `PUT /api/users/{userId}/notification-preferences` (a customer their own, an operator
//! anyone's) and kept in `notification_preferences`.
//!
//! Kinds are named as the order's final statuses: `CONFIRMED` (`order.confirmed`),
//! `REJECTED` (`order.rejected`), `CANCELLED` (`order.cancelled`) and `FAILED` (the order
//! could not be processed: `order.failed`). For each, a user names the channels they want
//! (`log`, `email`, `webhook`, `sms`); a kind they do not name gets every channel, as does
//! every kind for a user with no preferences, and `order.updated` (an inventory event this
//! version does not know) always: without preferences, nothing changes. A channel chosen
//! but not configured here, or without an address for the user, sends nothing, as before.
//!
//! Applied when a notification is routed ([`crate::notices`]): a preference changed later
//! does not change deliveries already queued.
//!
//! Not here (yet): quiet hours, digests, and falling back to another channel when one fails.

use serde::{Deserialize, Serialize};

/// The kinds a user may choose channels for, as the API names them, with the template kind
/// each stands for.
pub const KINDS: [(&str, &str); 4] = [
    ("CONFIRMED", "order.confirmed"),
    ("REJECTED", "order.rejected"),
    ("CANCELLED", "order.cancelled"),
    ("FAILED", "order.failed"),
];

/// The channels a user may name.
pub const CHANNELS: [&str; 4] = ["log", "email", "webhook", "sms"];

/// Per kind, the channels wanted. A kind left out (or `null`) gets every channel; an empty
/// list, none. Unknown kinds are refused (422).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelsByKind {
    /// Channels for `order.confirmed`.
    #[serde(rename = "CONFIRMED", default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<Vec<String>>,
    /// Channels for `order.rejected`.
    #[serde(rename = "REJECTED", default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<String>>,
    /// Channels for `order.cancelled`.
    #[serde(rename = "CANCELLED", default, skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<Vec<String>>,
    /// Channels for `order.failed` (the order could not be processed).
    #[serde(rename = "FAILED", default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,
}

impl ChannelsByKind {
    /// The channels chosen for template kind `kind` (`order.confirmed`, …), if the user
    /// chose any.
    pub fn for_kind(&self, kind: &str) -> Option<&[String]> {
        match kind {
            "order.confirmed" => self.confirmed.as_deref(),
            "order.rejected" => self.rejected.as_deref(),
            "order.cancelled" => self.cancelled.as_deref(),
            "order.failed" => self.failed.as_deref(),
            _ => None,
        }
    }

    /// Whether a notification of template kind `kind` goes to `channel`.
    pub fn allows(&self, kind: &str, channel: &str) -> bool {
        self.for_kind(kind)
            .is_none_or(|chosen| chosen.iter().any(|c| c == channel))
    }

    /// The preferences with every channel name checked and each kind's list without
    /// repeats (the first kept); or each unknown channel, by its JSON pointer in the body
    /// (`/channels/CONFIRMED/1`), with what is wrong.
    pub fn checked(mut self) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        for (kind, list) in [
            ("CONFIRMED", &mut self.confirmed),
            ("REJECTED", &mut self.rejected),
            ("CANCELLED", &mut self.cancelled),
            ("FAILED", &mut self.failed),
        ] {
            let Some(list) = list else {
                continue;
            };
            for (i, channel) in list.iter().enumerate() {
                if !CHANNELS.contains(&channel.as_str()) {
                    errors.push((
                        format!("/channels/{kind}/{i}"),
                        format!(
                            "must be one of {}; got {:?}",
                            CHANNELS.join(", "),
                            channel.chars().take(32).collect::<String>()
                        ),
                    ));
                }
            }
            let mut seen: Vec<String> = Vec::with_capacity(list.len());
            list.retain(|channel| {
                let first = !seen.contains(channel);
                if first {
                    seen.push(channel.clone());
                }
                first
            });
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(channels: &[&str]) -> Option<Vec<String>> {
        Some(channels.iter().map(|c| c.to_string()).collect())
    }

    #[test]
    fn a_kind_not_named_gets_every_channel_and_a_named_one_only_those_chosen() {
        let preferences = ChannelsByKind {
            confirmed: list(&["log", "webhook"]),
            failed: list(&[]),
            ..ChannelsByKind::default()
        };
        assert!(preferences.allows("order.confirmed", "webhook"));
        assert!(!preferences.allows("order.confirmed", "email"));
        assert!(preferences.allows("order.rejected", "email"));
        assert!(!preferences.allows("order.failed", "log"));
        // order.updated has no preference of its own.
        assert!(preferences.allows("order.updated", "sms"));
        assert!(ChannelsByKind::default().allows("order.confirmed", "email"));
    }

    #[test]
    fn every_kind_names_a_template_kind() {
        for (name, kind) in KINDS {
            assert!(crate::templates::KINDS.contains(&kind), "{name}: {kind}");
            let mut json = serde_json::Map::new();
            json.insert(name.to_string(), serde_json::json!(["sms"]));
            let preferences: ChannelsByKind =
                serde_json::from_value(serde_json::Value::Object(json)).unwrap();
            assert_eq!(preferences.for_kind(kind), Some(&["sms".to_string()][..]));
        }
    }

    #[test]
    fn unknown_channels_are_named_by_their_pointer_and_repeats_dropped() {
        let preferences = ChannelsByKind {
            confirmed: list(&["email", "fax", "email", "sms"]),
            cancelled: list(&["pigeon"]),
            ..ChannelsByKind::default()
        };
        let errors = preferences.clone().checked().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["/channels/CONFIRMED/1", "/channels/CANCELLED/0"]);
        assert!(
            errors[0].1.contains("log, email, webhook, sms"),
            "{errors:?}"
        );
        let ok = ChannelsByKind {
            confirmed: list(&["email", "sms", "email"]),
            ..ChannelsByKind::default()
        }
        .checked()
        .unwrap();
        assert_eq!(ok.confirmed, list(&["email", "sms"]));
    }

    #[test]
    fn unknown_kinds_are_refused_and_absent_ones_not_stored() {
        let refused = serde_json::from_str::<ChannelsByKind>(r#"{"SHIPPED": ["email"]}"#);
        assert!(refused.is_err());
        let json = serde_json::to_string(&ChannelsByKind {
            rejected: list(&["email"]),
            ..ChannelsByKind::default()
        })
        .unwrap();
        assert_eq!(json, r#"{"REJECTED":["email"]}"#);
    }
}
