//! Web Push: `GET /api/push/vapid-public-key` (the key pages subscribe with, public) and a
//! user's subscriptions, `GET|POST /api/users/{userId}/push-subscriptions` and
//! `DELETE /api/users/{userId}/push-subscriptions/{subscriptionId}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use contracts::values::PushSubscription;
use platform::auth::Caller;
use platform::db::Database;
use platform::http::problems_doc::{AnotherUsers, CustomerAuth, DatabaseAwayOnWrite, JsonBody};
use platform::http::{ApiJson, FieldError, Problem};
use serde::{Deserialize, Serialize};

use super::{user_id, AppState};
use crate::delivery::channels::push;
use crate::store::{self, PushSubscriptionView, Registered};

/// `GET /api/push/vapid-public-key` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct VapidPublicKey {
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
pub(super) async fn vapid_public_key(
    State(state): State<AppState>,
) -> Result<Json<VapidPublicKey>, Problem> {
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
pub(super) struct PushSubscriptionBody {
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
pub(super) async fn list_push_subscriptions(
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
pub(super) async fn add_push_subscription(
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
pub(super) async fn remove_push_subscription(
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
