//! A user's defaults: `GET|PUT /api/users/{userId}/contact` (where they are reached) and
//! `GET|PUT /api/users/{userId}/notification-preferences` (the channels they want per kind,
//! and when notices come: [`crate::preferences`]).

use axum::extract::{Path, State};
use axum::Json;
use contracts::Contact;
use platform::auth::Caller;
use platform::db::Database;
use platform::http::problems_doc::{AnotherUsers, CustomerAuth, DatabaseAwayOnWrite, JsonBody};
use platform::http::{ApiJson, FieldError, Problem};
use serde::Deserialize;

use super::{user_id, AppState};
use crate::preferences::{ChannelsByKind, Preferences, QuietHours, Timing};
use crate::store::{self, UserContact, UserPreferences};

/// `PUT /api/users/{userId}/contact` body. Unknown fields are refused (422).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ContactBody {
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
pub(super) async fn get_contact(
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
pub(super) async fn put_contact(
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
pub(super) struct PreferencesBody {
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
pub(super) async fn get_preferences(
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
pub(super) async fn put_preferences(
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
