//! Rendering a notice for its user and working out where it goes: the channels the user can
//! be reached on, less those their preferences leave out for the kind, and the message
//! each needs (the HTML for e-mail, the JSON body for webhooks).

use contracts::Contact;
use platform::consumer::HandleError;
use serde::Serialize;
use serde_json::{json, Value};

use super::{Notifier, Plan};
use crate::preferences::ChannelsByKind;
use crate::store::OrderContact;

impl Notifier {
    /// Renders a notification for its user and works out its channels (`defaults`: the
    /// user's registered contact, if any; `push`: the user's push subscriptions;
    /// `preferences`: the channels the user wants per kind, if they said).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan(
        &self,
        event_id: &str,
        order_id: i64,
        kind: &str,
        context: &Value,
        order: &OrderContact,
        defaults: Option<&Contact>,
        push: &[i64],
        preferences: Option<&ChannelsByKind>,
    ) -> Result<Plan, HandleError> {
        let mut template_context = context["fields"].clone();
        if !template_context.is_object() {
            template_context = json!({});
        }
        for key in ["order_id", "kind", "event_type"] {
            template_context[key] = context[key].clone();
        }
        template_context["user_id"] = json!(order.user_id);
        let reachable = self
            .channels
            .recipients(order.user_id, &order.contact, defaults, push);
        let mut recipients = reachable.clone();
        if let Some(preferences) = preferences {
            recipients.retain(|(channel, _)| preferences.allows(kind, channel));
        }
        // Only what a channel the user can be reached on sends is rendered and stored: the
        // HTML body for e-mail, the JSON body for webhooks. A channel their preferences
        // leave out may still be where a failed delivery falls back to
        // ([`crate::delivery::fallback`]).
        let to = |channel: &str| reachable.iter().any(|(c, _)| *c == channel);
        let rendered = self
            .templates
            .render(kind, &template_context, to("email"))
            .map_err(|e| HandleError::permanent("openorder.TemplateError", format!("{e:#}")))?;
        let payload = if to("webhook") {
            let body = WebhookBody {
                kind,
                timestamp: &context["event"]["timestamp"]
                    .as_str()
                    .or(context["event"]["createdAt"].as_str())
                    .map(str::to_string)
                    .unwrap_or_else(platform::now_text),
                data: WebhookData {
                    event_id,
                    order_id,
                    user_id: order.user_id,
                    event_type: context["event_type"].as_str().unwrap_or_default(),
                    subject: &rendered.subject,
                    text: &rendered.text,
                    event: &context["event"],
                },
            };
            serde_json::to_string(&body).expect("a JSON body serializes")
        } else {
            String::new()
        };
        let channels = recipients
            .iter()
            .map(|(channel, _)| *channel)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Plan {
            rendered,
            payload,
            channels,
            recipients,
        })
    }
}

/// The JSON a webhook receives: `{type, timestamp, data}` as Standard Webhooks suggests.
#[derive(Serialize)]
struct WebhookBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: &'a str,
    data: WebhookData<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookData<'a> {
    event_id: &'a str,
    order_id: i64,
    user_id: i64,
    event_type: &'a str,
    subject: &'a str,
    text: &'a str,
    /// The event itself, as it travelled.
    event: &'a Value,
}
