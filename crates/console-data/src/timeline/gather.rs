//! An order's timeline gathered from the services and the brokers side by side, and a
//! user's notification preferences.

use std::sync::Arc;

use super::{build, millis, Preferences, Timeline};
use crate::records::Page;
use crate::services::Services;
use crate::Sources;

/// A user's notification preferences from notification-service (its 404: none set, the
/// defaults apply), or what went wrong, in one line.
pub async fn preferences_of(
    services: &Services,
    token: Option<&str>,
    user: i64,
) -> Result<Preferences, String> {
    let path = format!("/api/users/{user}/notification-preferences");
    match services.get(&services.notification, &path, token).await {
        Ok(r) if r.ok() => Ok(Preferences {
            user_id: user,
            set: Some(r.body),
        }),
        Ok(r) if r.status == 404 => Ok(Preferences {
            user_id: user,
            set: None,
        }),
        Ok(r) => Err(format!("notification-service: {}", r.why())),
        Err(err) => Err(format!("{err:#}")),
    }
}

/// Gathers an order's timeline: the order, its notifications, its records, and its user's
/// notification preferences.
pub async fn gather<S: Sources>(console: &Arc<S>, token: Option<&str>, order_id: i64) -> Timeline {
    let services = console.services();
    let mut problems = Vec::new();
    let (order, notifications) = tokio::join!(
        services.find_order(order_id, token),
        services.notifications_of(order_id, token),
    );
    let order = order.unwrap_or_else(|err| {
        problems.push(format!("{err:#}"));
        None
    });
    let notifications = notifications.unwrap_or_else(|err| {
        problems.push(format!("{err:#}"));
        Vec::new()
    });
    // From a minute before the order was placed (its records cannot be older).
    let since = order
        .as_ref()
        .and_then(|o| millis(&o.created_at))
        .map(|ms| ms - 60_000);
    let user = order.as_ref().map(|o| o.user_id);
    let c = console.clone();
    let (records, preferences) = tokio::join!(
        crate::blocking(move || {
            let topics = c.readers().topics()?;
            c.readers().by_key(&topics, &order_id.to_string(), since)
        }),
        async {
            match user {
                Some(user) => Some(preferences_of(services, token, user).await),
                None => None,
            }
        },
    );
    let preferences = match preferences {
        Some(Ok(p)) => Some(p),
        Some(Err(why)) => {
            problems.push(why);
            None
        }
        None => None,
    };
    let records = records.unwrap_or_else(|err| {
        problems.push(format!("The broker could not be read: {err:#}"));
        Page {
            records: Vec::new(),
            scanned: 0,
            cut_short: false,
        }
    });
    let prefix = console.readers().kafka().topic_prefix.as_str();
    let mut t = build(order_id, order, &notifications, &records, prefix, problems);
    t.preferences = preferences;
    t
}
