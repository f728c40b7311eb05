//! Idempotency keys: what names one delivery of one notice on one lane, the same on every
//! attempt (the e-mail Message-ID, the webhook `Idempotency-Key`, the SMS provider's
//! idempotency token, the push's `id`), and what a digest's key and a fallback's are made
//! from ([`crate::digest::key`], [`idempotency_key`] of the notice's event id or digest key
//! and `fallback`).

use uuid::Uuid;

/// Namespace of the hash in delivery idempotency keys.
pub(crate) const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6f70656e_6f72_6465_7200_6e6f74696679);

/// The stable idempotency key of one event's delivery on one channel: a UUID (version 8)
/// made of the event id's first 48 bits and then UUIDv5's hash of event id and channel.
/// Event ids are UUIDv7 (`contracts::new_event_id`), whose first 48 bits are the time
/// they were made, so later deliveries get later keys and the deliveries table's unique
/// index on the key grows at its end instead of taking a write at a random page per
/// delivery.
pub fn idempotency_key(event_id: &str, channel: &str) -> String {
    let hash = Uuid::new_v5(&KEY_NAMESPACE, format!("{event_id}/{channel}").as_bytes());
    let mut bytes = *hash.as_bytes();
    if let Ok(event_id) = Uuid::parse_str(event_id) {
        bytes[..6].copy_from_slice(&event_id.as_bytes()[..6]);
    }
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_stable_and_differ_per_channel() {
        let id = "0b5e7c1e-1d2a-4c55-9a57-3c0f2d1f9e01";
        assert_eq!(idempotency_key(id, "email"), idempotency_key(id, "email"));
        assert_ne!(idempotency_key(id, "email"), idempotency_key(id, "webhook"));
    }

    #[test]
    fn idempotency_keys_of_later_events_sort_later() {
        let earlier = Uuid::from_u128(0x0190_0000_0000_7000_8000_ffff_ffff_ffff).to_string();
        let later = Uuid::from_u128(0x0190_0000_0001_7000_8000_0000_0000_0000).to_string();
        for channel in ["log", "email", "webhook"] {
            let (a, b) = (
                idempotency_key(&earlier, channel),
                idempotency_key(&later, channel),
            );
            assert!(a < b, "{a} should sort before {b}");
            assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 8);
        }
    }
}
