//! What a push carries, and how urgently: the plaintext the service worker gets (RFC 8291
//! encrypts it), a small JSON object —
//!
//! ```json
//! {"title": "Order 7 is confirmed", "body": "2 × ABC-001 reserved for you.",
//!  "orderId": 7, "kind": "order.confirmed", "id": "0190…"}
//! ```
//!
//! — the notification's subject and text as rendered when it was routed, its order and
//! kind (`notification.digest` for a digest), and the delivery's idempotency key, the same
//! on every attempt, so that a service worker can drop a push it has shown already (a resend
//! after a crash is encrypted anew, so its bytes differ; its `id` does not).
//!
//! Push services take at least 4,096 bytes of encrypted body (RFC 8030); the one record of
//! aes128gcm adds 86 bytes of header (salt, record size, the sender's key) and 17 of padding
//! delimiter and tag, so the plaintext is at most [`MAX_PLAINTEXT`] = 3,993 bytes. A longer
//! text is cut at a character boundary, ending in an ellipsis ([`bounded`]); the title
//! is cut to [`MAX_TITLE_CHARS`] first.

use serde::Serialize;

use crate::Outgoing;

/// Most bytes of plaintext one push carries: 4,096 bytes of encrypted body, less the
/// aes128gcm header (86 bytes with a P-256 key id) and the record's delimiter and tag (17).
pub const MAX_PLAINTEXT: usize = 4096 - 86 - 17;

/// Most characters of a push's title (a notification's title shows on one line anyway).
pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    title: &'a str,
    body: &'a str,
    order_id: i64,
    kind: &'a str,
    id: &'a str,
}

/// The plaintext of `m`'s push: at most [`MAX_PLAINTEXT`] bytes.
pub fn payload(m: &Outgoing) -> Vec<u8> {
    bounded(
        &m.subject,
        &m.text,
        m.order_id,
        &m.kind,
        &m.idempotency_key,
        MAX_PLAINTEXT,
    )
}

/// The JSON of a push, at most `limit` bytes if the text can be cut to fit: the title
/// (trimmed, cut to [`MAX_TITLE_CHARS`]) and the longest start of the text (trimmed) that
/// fits, cut at a character boundary and ending in "…".
pub fn bounded(
    title: &str,
    text: &str,
    order_id: i64,
    kind: &str,
    id: &str,
    limit: usize,
) -> Vec<u8> {
    let title = cut(title.trim(), MAX_TITLE_CHARS);
    let text = text.trim();
    let encode = |body: &str| {
        serde_json::to_vec(&Payload {
            title: &title,
            body,
            order_id,
            kind,
            id,
        })
        .expect("a push payload serializes")
    };
    let whole = encode(text);
    if whole.len() <= limit {
        return whole;
    }
    // Keeping the first `n` characters: `starts[n]` is where the cut goes. The JSON grows
    // with `n` (escapes included), so the largest `n` that fits is found by halving.
    let starts: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
    if starts.is_empty() {
        return whole; // no text to cut (and a title that short always fits)
    }
    let with_ellipsis = |n: usize| encode(&format!("{}…", text[..starts[n]].trim_end()));
    // `lo` chars fit (none, at worst: the title is short), `hi` do not (all of them did not).
    let (mut lo, mut hi) = (0, starts.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if with_ellipsis(mid).len() <= limit {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    with_ellipsis(lo)
}

/// `s` cut to `max` characters, the last of them an ellipsis if it was longer.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if s.chars().count() > max => format!("{}…", s[..at].trim_end()),
        _ => s.to_string(),
    }
}

/// RFC 8030's `Urgency` of a push of `kind`: `high` for what asks something of the
/// customer (an order rejected, or one that could not be processed), so that a device
/// saving its battery wakes for it; `normal` for the rest.
pub fn urgency(kind: &str) -> &'static str {
    match kind {
        "order.rejected" | "order.failed" => "high",
        _ => "normal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_short_notice_goes_whole_as_title_body_order_kind_and_id() {
        let bytes = bounded(
            " Order 7 is confirmed\n",
            "2 × ABC-001 reserved for you.\n",
            7,
            "order.confirmed",
            "0190abcd-key",
            MAX_PLAINTEXT,
        );
        assert_eq!(
            json(&bytes),
            serde_json::json!({
                "title": "Order 7 is confirmed",
                "body": "2 × ABC-001 reserved for you.",
                "orderId": 7,
                "kind": "order.confirmed",
                "id": "0190abcd-key",
            })
        );
    }

    #[test]
    fn a_long_text_is_cut_at_a_character_boundary_to_fit_the_plaintext_limit() {
        // Multi-byte characters, and characters JSON escapes (6 bytes for 1).
        for unit in ["é", "漢", "🦀", "\u{1}", "\"", "a"] {
            let text = unit.repeat(5_000);
            let bytes = bounded("Title", &text, 7, "order.updated", "k", MAX_PLAINTEXT);
            assert!(bytes.len() <= MAX_PLAINTEXT, "{unit:?}: {}", bytes.len());
            let body = json(&bytes)["body"].as_str().unwrap().to_string();
            assert!(body.ends_with('…'), "{unit:?}");
            let kept = body.trim_end_matches('…');
            assert!(text.starts_with(kept), "{unit:?}");
            // As much as fits: one more character would not.
            let one_more = format!("{kept}{unit}…");
            let longer = serde_json::to_vec(&Payload {
                title: "Title",
                body: &one_more,
                order_id: 7,
                kind: "order.updated",
                id: "k",
            })
            .unwrap();
            assert!(longer.len() > MAX_PLAINTEXT, "{unit:?}: room was left");
        }
        // Exactly at the limit is whole.
        let base = bounded("T", "", 1, "k", "i", usize::MAX).len();
        let fits = "x".repeat(MAX_PLAINTEXT - base);
        let bytes = bounded("T", &fits, 1, "k", "i", MAX_PLAINTEXT);
        assert_eq!(bytes.len(), MAX_PLAINTEXT);
        assert_eq!(json(&bytes)["body"], fits.as_str());
    }

    #[test]
    fn a_long_title_is_cut_too() {
        let bytes = bounded(&"t".repeat(500), "x", 1, "k", "i", MAX_PLAINTEXT);
        let title = json(&bytes)["title"].as_str().unwrap().to_string();
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.ends_with('…'));
    }

    #[test]
    fn what_asks_something_of_the_customer_is_urgent() {
        assert_eq!(urgency("order.rejected"), "high");
        assert_eq!(urgency("order.failed"), "high");
        for kind in [
            "order.confirmed",
            "order.cancelled",
            "order.updated",
            "notification.digest",
        ] {
            assert_eq!(urgency(kind), "normal", "{kind}");
        }
    }

    #[test]
    fn the_plaintext_limit_leaves_a_4096_byte_body() {
        // Header: salt 16, record size 4, key id length 1, key id 65 (uncompressed P-256);
        // one record: plaintext, delimiter 1, tag 16.
        assert_eq!(16 + 4 + 1 + 65 + MAX_PLAINTEXT + 1 + 16, 4096);
    }
}
