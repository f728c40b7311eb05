//! `POST /callbacks/sms`: an SMS provider's delivery receipts, each request signed with the
//! SMS auth token (`X-Twilio-Signature`), recorded by [`crate::delivery::receipts`].

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use platform::http::problems_doc::{BodyOverLimit, DatabaseAwayOnWrite};
use platform::http::Problem;
use serde::Deserialize;

use super::AppState;
use crate::delivery::receipts::{self, Recorded, SmsReceipt};

/// What an SMS provider posts to `/callbacks/sms` (its status callback); every field it
/// sends is signed, those not named here are otherwise ignored.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)] // documentation only: the form is read as pairs, to check its signature
struct SmsStatusForm {
    /// The provider's id of the message.
    message_sid: String,
    /// `queued`, `sent`, `delivered`, `undelivered` or `failed` (others are noted only).
    message_status: String,
    /// The provider's error code, for a message that failed.
    #[serde(default)]
    error_code: Option<String>,
}

/// An SMS delivery receipt, from the provider (Twilio's status callback): moves the SMS
/// delivery named by `delivery` to DELIVERED or FAILED. Signed: `X-Twilio-Signature` is
/// base64(HMAC-SHA1(auth token, the public callback URL as called + each form field's name
/// and value, sorted by name)); without a valid one nothing changes.
#[utoipa::path(post, path = "/callbacks/sms", tag = "callbacks",
    security(()),
    params(
        ("delivery" = String, Query, description = "The delivery's idempotency key, as the status callback URL sent with the message carries it"),
        ("X-Twilio-Signature" = String, Header, description = "The provider's signature of this request"),
    ),
    request_body(content = SmsStatusForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Recorded (a delivery already DELIVERED or FAILED stays so)"),
        (status = 400, description = "Signed, but without `delivery`, `MessageSid` or `MessageStatus`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No signature, or one that does not sign this URL and form with the SMS auth token: nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "SMS delivery receipts are not configured here (`--sms-status-callback-url`), or no SMS delivery has this key", body = Problem, content_type = "application/problem+json"),
        BodyOverLimit,
        DatabaseAwayOnWrite,
    ))]
#[tracing::instrument(skip_all)]
pub(super) async fn sms_status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<StatusCode, Problem> {
    // An unsigned callback is refused before anything else is said about this service.
    if !headers.contains_key("x-twilio-signature") {
        return Err(platform::auth::forbidden(
            "X-Twilio-Signature is missing; nothing was changed",
        ));
    }
    let Some(callbacks) = &state.sms else {
        return Err(Problem::not_found(
            "SMS delivery receipts are not configured here (--sms-status-callback-url)",
        ));
    };
    let body = axum::body::to_bytes(body, platform::http::MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
                format!(
                    "the body must be at most {} bytes",
                    platform::http::MAX_BODY_BYTES
                ),
            )
        })?;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let signed_url = callbacks.signed_url(uri.query());
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    if !callbacks.is_signed(&signed_url, &form, signature) {
        tracing::warn!(
            signed = signature.is_some(),
            "refused an SMS status callback whose signature does not verify"
        );
        return Err(platform::auth::forbidden(
            "X-Twilio-Signature is missing or does not sign this URL and form with the SMS auth token; nothing was changed",
        ));
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let key = uri.query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| *k == "delivery")
            .map(|(_, v)| v.into_owned())
    });
    let (Some(key), Some(message_sid), Some(status)) =
        (key, field("MessageSid"), field("MessageStatus"))
    else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid parameter",
            "a status callback names its delivery (?delivery=), MessageSid and MessageStatus",
        ));
    };
    let receipt = SmsReceipt {
        key: &key,
        message_sid,
        status,
        error_code: field("ErrorCode"),
    };
    let fallback = receipts::FallbackTo {
        order: &state.fallback,
        channels: &state.channels,
        now: state.clock.now(),
    };
    match receipts::record_sms(
        &state.db,
        &state.topics,
        &state.metrics,
        &receipt,
        &fallback,
    )
    .await?
    {
        Recorded::Unknown => Err(Problem::not_found(format!(
            "no SMS delivery has the key {:?}",
            key.chars().take(64).collect::<String>()
        ))),
        Recorded::Noted(_) | Recorded::AlreadyFinal => Ok(StatusCode::NO_CONTENT),
    }
}
