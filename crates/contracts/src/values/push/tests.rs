//! Push subscriptions: a browser's parses; each bad field is named; http only to loopback
//! where it is opened.

use super::*;

/// A subscription as a browser gives it (the keys of RFC 8291's example).
const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

fn subscription(
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    destinations: &crate::destinations::Destinations,
) -> Result<PushSubscription, Vec<(&'static str, String)>> {
    PushSubscription::checked(Some(endpoint), Some(p256dh), Some(auth), destinations)
}

#[test]
fn a_browsers_push_subscription_parses_and_keeps_its_keys_unpadded() {
    let public = crate::destinations::Destinations::public_only();
    let s = subscription(
        "https://fcm.googleapis.com/fcm/send/dZ7x:APA91b",
        P256DH,
        AUTH,
        &public,
    )
    .unwrap();
    assert_eq!(s.p256dh().len(), 65);
    assert_eq!(s.auth().len(), 16);
    assert_eq!(s.p256dh_base64url(), P256DH);
    assert_eq!(s.auth_base64url(), AUTH);
    // Padded base64url is the same keys.
    let padded = subscription(
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAAA",
        &format!("{P256DH}="),
        &format!("{AUTH}=="),
        &public,
    )
    .unwrap();
    assert_eq!(padded.auth_base64url(), AUTH);
    assert!(!format!("{s:?}").contains(AUTH), "Debug hides the secret");
}

#[test]
fn bad_push_subscriptions_are_refused_naming_each_field() {
    let public = crate::destinations::Destinations::public_only();
    let fields = |r: Result<PushSubscription, Vec<(&'static str, String)>>| {
        r.unwrap_err()
            .into_iter()
            .map(|(f, _)| f)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        fields(PushSubscription::checked(None, None, None, &public)),
        ["/endpoint", "/keys/p256dh", "/keys/auth"]
    );
    for endpoint in [
        "http://push.example.com/x",
        "ftp://push.example.com/x",
        "https://user:pw@push.example.com/x",
        "https://push.example.com/x#f",
        "https://push.example.com:0/x",
        "https://10.0.0.1/x",
        "https://169.254.169.254/x",
        "https://localhost/x",
        "http://127.0.0.1:8080/x",
        "not a url",
    ] {
        assert_eq!(
            fields(subscription(endpoint, P256DH, AUTH, &public)),
            ["/endpoint"],
            "{endpoint}"
        );
    }
    let long = format!("https://push.example.com/{}", "a".repeat(2048));
    assert_eq!(
        fields(subscription(&long, P256DH, AUTH, &public)),
        ["/endpoint"]
    );
    let endpoint = "https://push.example.com/x";
    // Standard base64, not an uncompressed point, the wrong length, not base64 at all.
    let not_uncompressed = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut point = b64.decode(P256DH).unwrap();
        point[0] = 0x02;
        b64.encode(point)
    };
    for p256dh in [
        P256DH.replace('-', "+").replace('_', "/"),
        not_uncompressed,
        P256DH[..80].to_string(),
        "not base64!".to_string(),
        format!("{P256DH}AAAA"),
    ] {
        assert_eq!(
            fields(subscription(endpoint, &p256dh, AUTH, &public)),
            ["/keys/p256dh"],
            "{p256dh}"
        );
    }
    for auth in [
        "",
        "BTBZMqHH6r4Tts7J_aSI",
        "BTBZMqHH6r4Tts7J_aSIggAA",
        "BTBZ====",
    ] {
        assert_eq!(
            fields(subscription(endpoint, P256DH, auth, &public)),
            ["/keys/auth"],
            "{auth}"
        );
    }
}

#[test]
fn a_push_service_on_loopback_is_taken_over_http_only_where_loopback_is_opened() {
    let opened =
        crate::destinations::Destinations::allowing(vec![crate::destinations::Network::parse(
            "127.0.0.0/8",
        )
        .unwrap()]);
    assert!(subscription("http://127.0.0.1:8080/push/1", P256DH, AUTH, &opened).is_ok());
    assert!(subscription("https://127.0.0.1:8443/push/1", P256DH, AUTH, &opened).is_ok());
    // Opened or not, http goes nowhere else.
    assert!(subscription("http://10.0.0.1/push/1", P256DH, AUTH, &opened).is_err());
    assert!(subscription("http://push.example.com/1", P256DH, AUTH, &opened).is_err());
}
