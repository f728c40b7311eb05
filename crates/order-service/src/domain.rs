//! Orders as order-service understands them: the request parsed into domain types and the
//! events an order emits (`order.created`, `order.cancelled`). Its statuses and the moves
//! between them are [`contracts::lifecycle`]'s table.

use chrono::{DateTime, Utc};
use contracts::destinations::Destinations;
use contracts::values::{Quantity, Sku, UserId, MAX_ITEMS};
use contracts::{Contact, LineItem, OrderCancelled, OrderCreated};
use platform::http::FieldError;
use serde::Deserialize;

pub use contracts::lifecycle::OrderStatus;

/// `POST /api/orders` body as it arrives. Unknown fields are refused (422), so a typo
/// in a field name is reported instead of silently ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderBody {
    /// Who orders (a positive integer); with customer authentication, the token's user.
    #[schema(minimum = 1, example = 42)]
    pub user_id: i64,
    /// 1 to 100 lines; lines of one SKU are merged.
    #[serde(deserialize_with = "platform::http::objects")]
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ItemBody>,
    /// Optional: where to tell the customer about this order (else the user's defaults).
    #[serde(default, deserialize_with = "platform::http::optional_object")]
    pub contact: Option<ContactBody>,
}

/// `contact` in an order request or in `PUT /api/users/{userId}/contact`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactBody {
    /// An e-mail address, up to 254 characters.
    #[serde(default)]
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// An `https://` (or `http://`) URL of a public address.
    #[serde(default)]
    #[schema(format = "iri", pattern = "^https?://")]
    pub webhook_url: Option<String>,
    /// A phone number for SMS in E.164 form: `+` and 8 to 15 digits, the first not 0.
    #[serde(default)]
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// 1 to 64 characters: letters, digits, `-`, `_`, `.`.
    #[schema(example = "ABC-001", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    #[schema(minimum = 1, maximum = 10000, example = 2)]
    pub qty: i64,
}

/// A valid order request. Lines naming the same SKU are merged into one line (quantities
/// summed, first position kept), and the sum must itself be a valid quantity.
#[derive(Debug, PartialEq, Eq)]
pub struct OrderRequest {
    pub user_id: UserId,
    pub items: Vec<(Sku, Quantity)>,
    /// Checked addresses; `None` when the request has none (or an empty one).
    pub contact: Option<Contact>,
}

impl OrderRequest {
    /// The `order.created` event of this request, accepted as order `order_id` at `at`.
    pub fn created(&self, order_id: i64, at: DateTime<Utc>) -> OrderCreated {
        OrderCreated {
            event_id: contracts::new_event_id(),
            order_id,
            user_id: self.user_id.get(),
            items: self
                .items
                .iter()
                .map(|(sku, qty)| LineItem {
                    sku: sku.to_string(),
                    qty: qty.get(),
                })
                .collect(),
            created_at: at,
            contact: self.contact.clone(),
        }
    }
}

/// The `order.cancelled` event of `user_id`'s order `order_id`, cancelled now.
pub fn cancelled(order_id: i64, user_id: i64) -> OrderCancelled {
    OrderCancelled {
        event_id: contracts::new_event_id(),
        order_id,
        user_id,
        cancelled_at: Utc::now(),
    }
}

/// Checks a contact's e-mail address, webhook URL and phone number, naming bad fields
/// under `pointer`.
fn parse_contact(
    body: ContactBody,
    pointer: &str,
    destinations: &Destinations,
    errors: &mut Vec<FieldError>,
) -> Contact {
    Contact::checked(
        body.email.as_deref(),
        body.webhook_url.as_deref(),
        body.phone.as_deref(),
        destinations,
    )
    .unwrap_or_else(|bad| {
        errors.extend(
            bad.into_iter()
                .map(|(field, m)| FieldError::new(format!("{pointer}/{field}"), m)),
        );
        Contact::default()
    })
}

impl TryFrom<CreateOrderBody> for OrderRequest {
    type Error = Vec<FieldError>;

    /// [`OrderRequest::parse`] with webhooks to public addresses only.
    fn try_from(body: CreateOrderBody) -> Result<Self, Self::Error> {
        Self::parse(body, &Destinations::public_only())
    }
}

impl OrderRequest {
    /// The request, or every bad field; a contact's webhook must point where
    /// `destinations` allow.
    pub fn parse(
        body: CreateOrderBody,
        destinations: &Destinations,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let user_id =
            UserId::parse(body.user_id).map_err(|e| errors.push(FieldError::new("/userId", e)));
        if body.items.is_empty() || body.items.len() > MAX_ITEMS {
            errors.push(FieldError::new(
                "/items",
                format!("must hold 1 to {MAX_ITEMS} items, got {}", body.items.len()),
            ));
        }
        let mut merged: Vec<(Sku, i64)> = Vec::new();
        for (i, item) in body.items.iter().enumerate() {
            let sku = Sku::parse(&item.sku)
                .map_err(|e| errors.push(FieldError::new(format!("/items/{i}/sku"), e)));
            let qty = Quantity::parse(item.qty)
                .map_err(|e| errors.push(FieldError::new(format!("/items/{i}/qty"), e)));
            if let (Ok(sku), Ok(qty)) = (sku, qty) {
                match merged.iter_mut().find(|(s, _)| *s == sku) {
                    Some((_, total)) => *total += qty.get(),
                    None => merged.push((sku, qty.get())),
                }
            }
        }
        let mut items = Vec::with_capacity(merged.len());
        for (sku, total) in merged {
            match Quantity::parse(total) {
                Ok(qty) => items.push((sku, qty)),
                Err(_) => errors.push(FieldError::new(
                    "/items",
                    format!(
                        "SKU {sku} appears more than once and its quantities sum to {total}, more than {}",
                        Quantity::MAX
                    ),
                )),
            }
        }
        let contact = body
            .contact
            .map(|c| parse_contact(c, "/contact", destinations, &mut errors))
            .filter(|c| !c.is_empty());
        match user_id {
            Ok(user_id) if errors.is_empty() => Ok(Self {
                user_id,
                items,
                contact,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(user_id: i64, items: &[(&str, i64)]) -> CreateOrderBody {
        CreateOrderBody {
            user_id,
            items: items
                .iter()
                .map(|(sku, qty)| ItemBody {
                    sku: sku.to_string(),
                    qty: *qty,
                })
                .collect(),
            contact: None,
        }
    }

    #[test]
    fn a_contact_is_checked_and_kept() {
        let mut ok = body(42, &[("ABC-001", 1)]);
        ok.contact = Some(ContactBody {
            email: Some("alice@example.com".into()),
            webhook_url: Some("https://hooks.example.com/x".into()),
            phone: Some("+14155550100".into()),
        });
        let contact = OrderRequest::try_from(ok).unwrap().contact.unwrap();
        assert_eq!(contact.email.as_deref(), Some("alice@example.com"));
        assert_eq!(
            contact.webhook_url.as_deref(),
            Some("https://hooks.example.com/x")
        );
        assert_eq!(contact.phone.as_deref(), Some("+14155550100"));

        let mut bad = body(42, &[("ABC-001", 1)]);
        bad.contact = Some(ContactBody {
            email: Some("not an address".into()),
            webhook_url: Some("ftp://x".into()),
            phone: Some("0151 1234567".into()),
        });
        let fields: Vec<String> = OrderRequest::try_from(bad)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["/contact/email", "/contact/webhookUrl", "/contact/phone"]
        );

        // A phone number alone is a contact.
        let mut phone_only = body(42, &[("ABC-001", 1)]);
        phone_only.contact = Some(ContactBody {
            phone: Some("+442079460958".into()),
            ..ContactBody::default()
        });
        let contact = OrderRequest::try_from(phone_only).unwrap().contact.unwrap();
        assert_eq!(contact.phone.as_deref(), Some("+442079460958"));
        assert_eq!(contact.email, None);

        let mut empty = body(42, &[("ABC-001", 1)]);
        empty.contact = Some(ContactBody::default());
        assert_eq!(OrderRequest::try_from(empty).unwrap().contact, None);
    }

    #[test]
    fn a_valid_body_becomes_a_request() {
        let request = OrderRequest::try_from(body(42, &[("ABC-001", 2)])).unwrap();
        assert_eq!(request.user_id.get(), 42);
        assert_eq!(request.items.len(), 1);
    }

    #[test]
    fn every_invalid_field_is_named_by_its_pointer() {
        let errors = OrderRequest::try_from(body(0, &[("ok", 1), ("bad sku", 0)])).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/userId", "/items/1/sku", "/items/1/qty"]);
    }

    #[test]
    fn an_order_needs_one_to_a_hundred_items() {
        assert!(OrderRequest::try_from(body(1, &[])).is_err());
        let many: Vec<(String, i64)> = (0..101).map(|i| (format!("S{i}"), 1)).collect();
        let many: Vec<(&str, i64)> = many.iter().map(|(s, q)| (s.as_str(), *q)).collect();
        assert_eq!(
            OrderRequest::try_from(body(1, &many)).unwrap_err()[0].field,
            "/items"
        );
    }

    #[test]
    fn duplicate_skus_are_merged_and_their_sum_checked() {
        let request = OrderRequest::try_from(body(1, &[("A", 2), ("B", 1), ("A", 3)])).unwrap();
        let items: Vec<(&str, i64)> = request
            .items
            .iter()
            .map(|(s, q)| (s.as_str(), q.get()))
            .collect();
        assert_eq!(items, [("A", 5), ("B", 1)]);
        assert!(OrderRequest::try_from(body(1, &[("A", 6000), ("A", 6000)])).is_err());
    }
}
