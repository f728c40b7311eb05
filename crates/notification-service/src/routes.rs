//! The HTTP API:
//! - `GET /api/notifications?orderId=`: an order's notifications with each channel's
//!   delivery (status, attempts, last error, times), or the latest 100.
//! - `GET /api/users/{userId}/contact`, `PUT /api/users/{userId}/contact`: the defaults a
//!   user registers (`{"email": …, "webhookUrl": …, "phone": …}`, all optional; PUT
//!   replaces).
//! - `GET /api/users/{userId}/notification-preferences`, `PUT …`: the channels a user wants
//!   per kind of notification, and quiet hours, critical kinds and a digest window
//!   ([`crate::preferences`]; PUT replaces).
//! - `GET /api/push/vapid-public-key`: the key pages subscribe to Web Push with (public).
//! - `GET|POST /api/users/{userId}/push-subscriptions`,
//!   `DELETE /api/users/{userId}/push-subscriptions/{subscriptionId}`: a user's browsers'
//!   Web Push subscriptions (POST takes what `PushSubscription.toJSON()` gives, as it is).
//! - `POST /callbacks/sms`: an SMS provider's delivery receipts; no credential, each
//!   request signed with the SMS auth token (`X-Twilio-Signature`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use contracts::destinations::Destinations;
use contracts::values::{PushSubscription, UserId};
use contracts::{Contact, Topics};
use platform::auth::{Caller, Routes};
use platform::db::Database;
use platform::http::problems_doc::{
    AnotherUsers, BodyOverLimit, CustomerAuth, DatabaseAwayOnWrite, JsonBody,
};
use platform::http::{ApiJson, FieldError, Problem};
use platform::metrics::Metrics;
use serde::{Deserialize, Serialize};

use crate::delivery::channels::{push, sms};
use crate::delivery::receipts::{self, Recorded, SmsReceipt};
use crate::preferences::{ChannelsByKind, Preferences, QuietHours, Timing};
use crate::store::{
    self, Notification, PushSubscriptionView, Registered, UserContact, UserPreferences,
};

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    /// Where a registered webhook may point.
    pub webhooks: Destinations,
    /// How SMS delivery receipts are checked, when messages ask for them.
    pub sms: Option<sms::Callbacks>,
    /// For `notification.failed`, when a receipt says an SMS failed.
    pub topics: Topics,
    pub metrics: Metrics,
    /// Where an SMS a receipt says failed falls back to (`--notify-fallback`), with the
    /// channels configured and the clock.
    pub fallback: Vec<String>,
    pub channels: std::sync::Arc<crate::delivery::channels::Channels>,
    pub clock: crate::schedule::Clock,
}

impl axum::extract::FromRef<AppState> for Database {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

/// The customers' routes (a customer reads and changes only their own notifications,
/// contact and preferences), and the SMS provider's callback, open to anyone who can sign.
pub fn routes(state: AppState) -> Routes {
    let customers = Router::new()
        .route("/api/notifications", get(list))
        .route(
            "/api/users/{user_id}/contact",
            get(get_contact).put(put_contact),
        )
        .route(
            "/api/users/{user_id}/notification-preferences",
            get(get_preferences).put(put_preferences),
        )
        .route(
            "/api/users/{user_id}/push-subscriptions",
            get(list_push_subscriptions).post(add_push_subscription),
        )
        .route(
            "/api/users/{user_id}/push-subscriptions/{subscription_id}",
            delete(remove_push_subscription),
        )
        .with_state(state.clone());
    let push_key = Router::new()
        .route("/api/push/vapid-public-key", get(vapid_public_key))
        .with_state(state.clone());
    let callbacks = Router::new()
        .route("/callbacks/sms", post(sms_status))
        .with_state(state);
    let docs = platform::http::openapi::routes(&openapi());
    Routes::default()
        .public(docs)
        .public(push_key)
        .public(callbacks)
        .customers(customers)
}

/// notification-service's OpenAPI document (`/openapi.json`, `docs/api/notification-service.openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    platform::http::openapi::document(Api::openapi())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "OpenOrder notification-service",
        description = "The notifications of each order with each channel's delivery, and where users are reached by default. Every error is an RFC 9457 problem (application/problem+json)."
    ),
    paths(list, get_contact, put_contact, get_preferences, put_preferences, vapid_public_key,
        list_push_subscriptions, add_push_subscription, remove_push_subscription, sms_status),
    tags(
        (name = "notifications", description = "With customer authentication, only the caller's own."),
        (name = "push", description = "Web Push: the key pages subscribe with (public), and each user's subscriptions (with customer authentication, only the caller's own)."),
        (name = "callbacks", description = "Called by providers: no credential, every request signed."),
    )
)]
struct Api;

/// An order's notifications, oldest first, or the latest 100, newest first; each with its
/// channels' deliveries (status, attempts, last error).
#[utoipa::path(get, path = "/api/notifications", tag = "notifications",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("orderId" = Option<i64>, Query, description = "One order's; default: the latest (a customer's own)", minimum = 1)),
    responses(
        (status = 200, description = "Notifications", body = Vec<Notification>),
        (status = 400, description = "`orderId` is not a positive integer", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
    ))]
#[tracing::instrument(skip_all)]
async fn list(
    State(db): State<Database>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Notification>>, Problem> {
    let order_id = match query.get("orderId") {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            Problem::bad_parameter(
                "orderId",
                format!("must be a positive integer, got {raw:?}"),
            )
        })?),
    };
    Ok(Json(
        store::list(&db, order_id, caller.only_user(), 100).await?,
    ))
}

/// `PUT /api/users/{userId}/contact` body. Unknown fields are refused (422).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContactBody {
    /// An e-mail address, up to 254 characters.
    #[serde(default)]
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// An `https://` (or `http://`) URL of a public address.
    #[serde(default)]
    #[schema(format = "iri", pattern = "^https?://")]
    webhook_url: Option<String>,
    /// A phone number for SMS in E.164 form: `+` and 8 to 15 digits, the first not 0.
    #[serde(default)]
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    phone: Option<String>,
}

fn user_id(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .map_err(|_| format!("must be a positive integer, got {raw:?}"))
        .and_then(UserId::parse)
        .map(UserId::get)
        .map_err(|m| Problem::bad_parameter("userId", m))
}

/// Where a user is reached by default.
#[utoipa::path(get, path = "/api/users/{userId}/contact", tag = "notifications",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The contact", body = UserContact),
        (status = 400, description = "`userId` is not a positive integer", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        AnotherUsers,
        (status = 404, description = "None registered", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn get_contact(
    State(db): State<Database>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<UserContact>, Problem> {
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    store::user_contact(&db.pool, user_id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("user {user_id} has registered no contact")))
}

/// Register (replace) where a user is reached: e-mail, webhook and phone (SMS), all
/// optional. An order's own contact wins, field by field. A webhook must point at a public
/// address; a phone number must be E.164 (`+14155550100`).
#[utoipa::path(put, path = "/api/users/{userId}/contact", tag = "notifications",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1)),
    request_body = ContactBody,
    responses(
        (status = 200, description = "The contact now", body = UserContact),
        (status = 400, description = "`userId` is not a positive integer, or not one JSON object", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        AnotherUsers,
        JsonBody,
        (status = 422, description = "Not an e-mail address, a webhook URL that is not https/http to a public address, or a phone number not in E.164 form", body = Problem, content_type = "application/problem+json"),
        DatabaseAwayOnWrite,
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn put_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<ContactBody>,
) -> Result<Json<UserContact>, Problem> {
    let db = state.db;
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    let contact = Contact::checked(
        body.email.as_deref(),
        body.webhook_url.as_deref(),
        body.phone.as_deref(),
        &state.webhooks,
    )
    .map_err(|bad| {
        Problem::invalid_fields(
            bad.into_iter()
                .map(|(field, m)| FieldError::new(format!("/{field}"), m))
                .collect(),
        )
    })?;
    Ok(Json(store::put_user_contact(&db, user_id, &contact).await?))
}

/// `PUT /api/users/{userId}/notification-preferences` body. Unknown fields are refused (422).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PreferencesBody {
    /// Per kind (`CONFIRMED`, `REJECTED`, `CANCELLED`, `FAILED`: could not be processed),
    /// the channels wanted (`log`, `email`, `webhook`, `sms`, `push`); a kind left out gets
    /// every channel, an empty list none. Left out: every kind gets every channel.
    #[serde(default, deserialize_with = "platform::http::object")]
    channels: ChannelsByKind,
    /// An IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`): where the quiet
    /// hours are. Required with `quietHours`.
    #[serde(default)]
    #[schema(example = "Europe/Berlin")]
    time_zone: Option<String>,
    /// Quiet hours, `{"start": "23:00", "end": "07:00"}` (local times `HH:MM`; an end before
    /// the start wraps midnight; they may not be equal): a notice due inside them waits until
    /// they end, unless its kind is critical.
    #[serde(default, deserialize_with = "platform::http::optional_object")]
    quiet_hours: Option<QuietHours>,
    /// Kinds that go at once, inside quiet hours and digest windows too (`["FAILED"]`).
    #[serde(default)]
    critical: Vec<String>,
    /// A digest window in minutes, 0 (none, the default) to 1440: the first notice opens a
    /// window, and the notices inside it go as one message per channel when it closes.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1440)]
    digest_minutes: i64,
}

/// Which channels a user wants for which kind of notification.
#[utoipa::path(get, path = "/api/users/{userId}/notification-preferences", tag = "notifications",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The preferences", body = UserPreferences),
        (status = 400, description = "`userId` is not a positive integer", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        AnotherUsers,
        (status = 404, description = "None set: every kind goes to every channel", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn get_preferences(
    State(db): State<Database>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<UserPreferences>, Problem> {
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    store::notification_preferences(&db.pool, user_id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "user {user_id} has set no notification preferences: every kind goes to every channel"
            ))
        })
}

/// Set (replace) which channels a user wants per kind of notification: `CONFIRMED`,
/// `REJECTED`, `CANCELLED`, `FAILED` (could not be processed), each a list of `log`,
/// `email`, `webhook`, `sms`, `push`. A kind left out gets every channel. And when notices
/// come: quiet hours in the user's time zone (held until they end), critical kinds (at once),
/// a digest window (one message per channel for the notices inside it). Applies to
/// notifications routed from now on.
#[utoipa::path(put, path = "/api/users/{userId}/notification-preferences", tag = "notifications",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1)),
    request_body = PreferencesBody,
    responses(
        (status = 200, description = "The preferences now", body = UserPreferences),
        (status = 400, description = "`userId` is not a positive integer, or not one JSON object", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        AnotherUsers,
        JsonBody,
        (status = 422, description = "An unknown kind or channel, time zone or critical kind; a time of day not `HH:MM`, quiet hours that start when they end or without a time zone; a digest window outside 0 to 1440 minutes: each named by its JSON pointer (`/quietHours/start`)", body = Problem, content_type = "application/problem+json"),
        DatabaseAwayOnWrite,
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn put_preferences(
    State(db): State<Database>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<PreferencesBody>,
) -> Result<Json<UserPreferences>, Problem> {
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    let timing = Timing {
        time_zone: body.time_zone,
        quiet_hours: body.quiet_hours,
        critical: body.critical,
        digest_minutes: body.digest_minutes,
    };
    let (channels, timing) = match (body.channels.checked(), timing.checked()) {
        (Ok(channels), Ok(timing)) => (channels, timing),
        (channels, timing) => {
            let bad = channels
                .err()
                .into_iter()
                .flatten()
                .chain(timing.err().into_iter().flatten());
            return Err(Problem::invalid_fields(
                bad.map(|(field, m)| FieldError::new(field, m)).collect(),
            ));
        }
    };
    let preferences = Preferences { channels, timing };
    Ok(Json(
        store::put_notification_preferences(&db, user_id, &preferences).await?,
    ))
}

/// `GET /api/push/vapid-public-key` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct VapidPublicKey {
    /// base64url of the service's VAPID public key (an uncompressed P-256 point): the
    /// `applicationServerKey` of `pushManager.subscribe`.
    #[schema(
        example = "BDd3_hVL9fZi9Ybo2UUzA284WG5FZR30_95YeZJsiApwXKpNcF1rRPF3foIiBHXRdJI2Qhumhf6_LFTeZaNndIo"
    )]
    public_key: String,
}

/// The key a page subscribes to Web Push with: pass it to
/// `registration.pushManager.subscribe({userVisibleOnly: true, applicationServerKey})`,
/// then post the subscription to `POST /api/users/{userId}/push-subscriptions`. Public: it
/// is a public key.
#[utoipa::path(get, path = "/api/push/vapid-public-key", tag = "push",
    security(()),
    responses(
        (status = 200, description = "The public key", body = VapidPublicKey),
        (status = 404, description = "Web Push is not configured here (`--push-subject`)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn vapid_public_key(State(state): State<AppState>) -> Result<Json<VapidPublicKey>, Problem> {
    match &state.channels.push {
        Some(push) => Ok(Json(VapidPublicKey {
            public_key: push.public_key().to_string(),
        })),
        None => Err(push_off()),
    }
}

fn push_off() -> Problem {
    Problem::not_found("Web Push is not configured here (--push-subject)")
}

/// `POST /api/users/{userId}/push-subscriptions` body: the object
/// `PushSubscription.toJSON()` gives, as it is. Unknown fields are refused (422).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PushSubscriptionBody {
    /// The push service's URL for this browser: `https://`, to a public address.
    #[serde(default)]
    #[schema(format = "iri", pattern = "^https://", max_length = 2048)]
    endpoint: Option<String>,
    /// When the push service ends the subscription (ms since the epoch), or null: taken
    /// and not used (a push to an ended subscription is answered 404 or 410, and the
    /// subscription is removed then).
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    #[allow(dead_code)] // read so that the body is taken as browsers send it
    expiration_time: Option<serde_json::Value>,
    /// The keys the notifications are encrypted for.
    #[serde(default, deserialize_with = "platform::http::optional_object")]
    keys: Option<PushKeysBody>,
}

/// A push subscription's keys, as the browser gives them.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PushKeysBody {
    /// base64url of the browser's P-256 public key (an uncompressed point, 65 bytes).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{86}[AEIMQUYcgkosw048]=?$")]
    p256dh: Option<String>,
    /// base64url of the browser's authentication secret (16 bytes).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{21}[AQgw](==)?$")]
    auth: Option<String>,
}

/// A user's Web Push subscriptions, oldest first.
#[utoipa::path(get, path = "/api/users/{userId}/push-subscriptions", tag = "push",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "The subscriptions (none: an empty list)", body = Vec<PushSubscriptionView>),
        (status = 400, description = "`userId` is not a positive integer", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        AnotherUsers,
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn list_push_subscriptions(
    State(db): State<Database>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<Vec<PushSubscriptionView>>, Problem> {
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    Ok(Json(store::push_subscriptions_of(&db, user_id).await?))
}

/// Register a browser's Web Push subscription for a user: the object
/// `PushSubscription.toJSON()` gives, as it is (`endpoint`, `expirationTime`, `keys.p256dh`,
/// `keys.auth`). The user's notifications then go to it too, one push per subscription,
/// unless their preferences leave `push` out. Idempotent on the endpoint: the same
/// subscription again is 200 with the same id. The endpoint must be `https` to a public
/// address (the webhook destination rules).
#[utoipa::path(post, path = "/api/users/{userId}/push-subscriptions", tag = "push",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1)),
    request_body = PushSubscriptionBody,
    responses(
        (status = 201, description = "Registered", body = PushSubscriptionView),
        (status = 200, description = "Registered already (its keys updated if they changed): the same subscription", body = PushSubscriptionView),
        (status = 400, description = "`userId` is not a positive integer, or not one JSON object", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        AnotherUsers,
        (status = 404, description = "Web Push is not configured here (`--push-subject`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is another user's with other keys, or the user has 20 subscriptions already", body = Problem, content_type = "application/problem+json"),
        JsonBody,
        (status = 422, description = "A field missing or not as a browser gives it: an endpoint not `https` to a public address, a `p256dh` that is not base64url of a P-256 point, an `auth` not of 16 bytes; each named by its JSON pointer (`/keys/p256dh`)", body = Problem, content_type = "application/problem+json"),
        DatabaseAwayOnWrite,
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn add_push_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<PushSubscriptionBody>,
) -> Result<(StatusCode, Json<PushSubscriptionView>), Problem> {
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    if state.channels.push.is_none() {
        return Err(push_off());
    }
    let keys = body.keys.unwrap_or_default();
    let subscription = PushSubscription::checked(
        body.endpoint.as_deref(),
        keys.p256dh.as_deref(),
        keys.auth.as_deref(),
        &state.webhooks,
    )
    .map_err(|bad| {
        Problem::invalid_fields(
            bad.into_iter()
                .map(|(field, m)| FieldError::new(field, m))
                .collect(),
        )
    })?;
    if p256::PublicKey::from_sec1_bytes(subscription.p256dh()).is_err() {
        return Err(Problem::invalid_fields(vec![FieldError::new(
            "/keys/p256dh",
            "is not a point on the P-256 curve",
        )]));
    }
    let registered = store::register_push_subscription(
        &state.db,
        user_id,
        &subscription,
        push::MAX_SUBSCRIPTIONS_PER_USER,
    )
    .await?;
    match registered {
        Registered::Created(view) => Ok((StatusCode::CREATED, Json(view))),
        Registered::Existing(view) => Ok((StatusCode::OK, Json(view))),
        Registered::Taken => Err(Problem::new(
            StatusCode::CONFLICT,
            "push-subscription-taken",
            "Push subscription taken",
            "this endpoint is registered for another user, with other keys; nothing was changed",
        )),
        Registered::TooMany { max } => Err(Problem::new(
            StatusCode::CONFLICT,
            "too-many-push-subscriptions",
            "Too many push subscriptions",
            format!("user {user_id} has {max} push subscriptions, the most one may have: remove one first"),
        )),
    }
}

/// Remove one of a user's Web Push subscriptions (a page does when the browser
/// unsubscribes, or the user signs out there). Pushes still queued for it fail.
#[utoipa::path(delete, path = "/api/users/{userId}/push-subscriptions/{subscriptionId}", tag = "push",
    security((), ("customerJwt" = []), ("operatorToken" = [])),
    params(("userId" = i64, Path, minimum = 1), ("subscriptionId" = i64, Path, minimum = 1)),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`userId` or `subscriptionId` is not a positive integer", body = Problem, content_type = "application/problem+json"),
        CustomerAuth,
        AnotherUsers,
        (status = 404, description = "The user has no such subscription", body = Problem, content_type = "application/problem+json"),
        DatabaseAwayOnWrite,
    ))]
#[tracing::instrument(skip_all, fields(user = %raw))]
async fn remove_push_subscription(
    State(db): State<Database>,
    caller: Caller,
    Path((raw, raw_id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let user_id = user_id(&raw)?;
    caller.may_act_for(user_id)?;
    let id = raw_id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Problem::bad_parameter(
                "subscriptionId",
                format!("must be a positive integer, got {raw_id:?}"),
            )
        })?;
    if store::remove_push_subscription(&db, Some(user_id), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!(
            "user {user_id} has no push subscription {id}"
        )))
    }
}

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
async fn sms_status(
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
