//! Which channels a user wants for which kind of notification, set with
//! `PUT /api/users/{userId}/notification-preferences` (a customer their own, an operator
//! anyone's) and kept in `notification_preferences`.
//!
//! Kinds are named as the order's final statuses: `CONFIRMED` (`order.confirmed`),
//! `REJECTED` (`order.rejected`), `CANCELLED` (`order.cancelled`) and `FAILED` (the order
//! could not be processed: `order.failed`). For each, a user names the channels they want
//! (`log`, `email`, `webhook`, `sms`, `push`); a kind they do not name gets every channel,
//! as does every kind for a user with no preferences, and `order.updated` (an inventory
//! event this version does not know) always: without preferences, nothing changes. A
//! channel chosen but not configured here, or without an address (a push subscription)
//! for the user, sends nothing, as before.
//!
//! Applied when a notification is routed (`notification_service::notices`): a preference
//! changed later does not change deliveries already queued.
//!
//! Beside the channels, a user may set when notices come ([`Timing`], applied by
//! [`crate::schedule`]): quiet hours in their time zone, the kinds that are critical (they
//! go at once), and a digest window. Falling back to another channel when one fails is a
//! deployment's setting (`--notify-fallback`, `notification_service::delivery::fallback`).

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
pub const CHANNELS: [&str; 5] = ["log", "email", "webhook", "sms", "push"];

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

/// Longest digest window a user may ask for, in minutes (a day).
pub const MAX_DIGEST_MINUTES: i64 = 24 * 60;

/// Quiet hours, as the API takes and shows them: local times of day `HH:MM` in the user's
/// `timeZone`; `end` before `start` wraps midnight (`23:00`–`07:00`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// When they begin, `HH:MM` (24-hour clock).
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "23:00")]
    pub start: String,
    /// When they end, `HH:MM`; a notice due inside them waits until then.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "07:00")]
    pub end: String,
}

/// When a user's notices come: as stored (JSON) beside the channels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timing {
    /// An IANA time zone name (`Europe/Berlin`): where the quiet hours are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Kinds (`FAILED`, …) that go at once, inside quiet hours and digest windows too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical: Vec<String>,
    /// A digest window in minutes (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub digest_minutes: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Timing {
    /// The settings checked (a known time zone, times of day `HH:MM` that differ, known
    /// kinds, a digest window of 0 to [`MAX_DIGEST_MINUTES`]), repeated kinds dropped; or
    /// each thing wrong by its JSON pointer in the body (`/quietHours/start`).
    pub fn checked(mut self) -> Result<Self, Vec<(String, String)>> {
        fn shown(text: &str) -> String {
            text.chars().take(40).collect()
        }
        let mut errors = Vec::new();
        if let Some(zone) = &self.time_zone {
            if zone.parse::<chrono_tz::Tz>().is_err() {
                errors.push((
                    "/timeZone".to_string(),
                    format!(
                        "must be an IANA time zone name such as Europe/Berlin or America/New_York; got {:?}",
                        shown(zone)
                    ),
                ));
            }
        }
        if let Some(quiet) = &self.quiet_hours {
            let mut times = Vec::new();
            for (field, text) in [("start", &quiet.start), ("end", &quiet.end)] {
                match crate::schedule::parse_time_of_day(text) {
                    Some(time) => times.push(time),
                    None => errors.push((
                        format!("/quietHours/{field}"),
                        format!(
                            "must be a time of day HH:MM from 00:00 to 23:59; got {:?}",
                            shown(text)
                        ),
                    )),
                }
            }
            if let [start, end] = times.as_slice() {
                if start == end {
                    errors.push((
                        "/quietHours/end".to_string(),
                        format!(
                            "must differ from start ({}): quiet hours from a time to the same time are none or the whole day",
                            quiet.start
                        ),
                    ));
                }
            }
            if self.time_zone.is_none() {
                errors.push((
                    "/timeZone".to_string(),
                    "is required with quietHours: they are local times of day in it".to_string(),
                ));
            }
        }
        for (i, kind) in self.critical.iter().enumerate() {
            if !KINDS.iter().any(|(name, _)| *name == kind.as_str()) {
                errors.push((
                    format!("/critical/{i}"),
                    format!(
                        "must be one of {}; got {:?}",
                        KINDS.map(|(name, _)| name).join(", "),
                        shown(kind)
                    ),
                ));
            }
        }
        let mut seen: Vec<String> = Vec::with_capacity(self.critical.len());
        self.critical.retain(|kind| {
            let first = !seen.contains(kind);
            if first {
                seen.push(kind.clone());
            }
            first
        });
        if !(0..=MAX_DIGEST_MINUTES).contains(&self.digest_minutes) {
            errors.push((
                "/digestMinutes".to_string(),
                format!(
                    "must be from 0 (no digest) to {MAX_DIGEST_MINUTES} (a day) minutes; got {}",
                    self.digest_minutes
                ),
            ));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }

    /// The settings as [`crate::schedule`] applies them. Stored settings were checked;
    /// anything that no longer parses (a zone a newer database dropped) is left out.
    pub fn schedule(&self) -> crate::schedule::Schedule {
        let zone = self
            .time_zone
            .as_deref()
            .and_then(|z| z.parse::<chrono_tz::Tz>().ok());
        let quiet = match (zone, &self.quiet_hours) {
            (Some(zone), Some(q)) => match (
                crate::schedule::parse_time_of_day(&q.start),
                crate::schedule::parse_time_of_day(&q.end),
            ) {
                (Some(start), Some(end)) if start != end => {
                    Some((zone, crate::schedule::Quiet { start, end }))
                }
                _ => None,
            },
            _ => None,
        };
        crate::schedule::Schedule {
            quiet,
            critical: self
                .critical
                .iter()
                .filter_map(|name| KINDS.iter().find(|(n, _)| *n == name.as_str()))
                .map(|(_, kind)| kind.to_string())
                .collect(),
            digest: (self.digest_minutes > 0)
                .then(|| chrono::Duration::minutes(self.digest_minutes)),
        }
    }
}

/// A user's preferences as stored: the channels per kind and the timing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    pub channels: ChannelsByKind,
    pub timing: Timing,
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

    fn timing(json: serde_json::Value) -> Timing {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn timing_is_checked_field_by_field_with_pointers() {
        let errors = timing(serde_json::json!({
            "timeZone": "Mars/Olympus",
            "quietHours": {"start": "25:00", "end": "7:00"},
            "critical": ["FAILED", "SHIPPED"],
            "digestMinutes": -5
        }))
        .checked()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "/timeZone",
                "/quietHours/start",
                "/quietHours/end",
                "/critical/1",
                "/digestMinutes"
            ]
        );
        assert!(errors[0].1.contains("IANA"), "{errors:?}");
        assert!(errors[1].1.contains("HH:MM"), "{errors:?}");
        let equal = timing(serde_json::json!({
            "timeZone": "UTC", "quietHours": {"start": "07:00", "end": "07:00"}
        }))
        .checked()
        .unwrap_err();
        assert_eq!(equal[0].0, "/quietHours/end");
        let no_zone = timing(serde_json::json!({"quietHours": {"start": "23:00", "end": "07:00"}}))
            .checked()
            .unwrap_err();
        assert_eq!(no_zone[0].0, "/timeZone");
        let too_long = timing(serde_json::json!({"digestMinutes": 1441}))
            .checked()
            .unwrap_err();
        assert_eq!(too_long[0].0, "/digestMinutes");
    }

    #[test]
    fn checked_timing_becomes_a_schedule() {
        let checked = timing(serde_json::json!({
            "timeZone": "Europe/Berlin",
            "quietHours": {"start": "23:00", "end": "07:00"},
            "critical": ["FAILED", "FAILED"],
            "digestMinutes": 10
        }))
        .checked()
        .unwrap();
        assert_eq!(checked.critical, ["FAILED"]);
        let schedule = checked.schedule();
        assert_eq!(schedule.critical, ["order.failed"]);
        assert_eq!(schedule.digest, Some(chrono::Duration::minutes(10)));
        let (zone, quiet) = schedule.quiet.unwrap();
        assert_eq!(zone, chrono_tz::Europe::Berlin);
        assert_eq!(quiet.start.to_string(), "23:00:00");
        assert!(Timing::default().schedule().is_plain());
        // Stored without what is not set.
        assert_eq!(serde_json::to_string(&Timing::default()).unwrap(), "{}");
    }
}
