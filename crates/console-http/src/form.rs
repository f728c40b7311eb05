//! [`HtmlForm`]: a form body as a browser sends it, decoded with `serde_html_form`, which
//! takes a repeated field (the dead letters picked on `/dead-letters`, the item rows of
//! `/try`) into a `Vec`. axum's own `Form` decodes with `serde_urlencoded`, which has no
//! sequences; axum-extra's `Form` is this same extractor over the same crate, but
//! axum-extra is not among the workspace's dependencies while `serde_html_form` already is
//! in `Cargo.lock`, so the few lines are kept here instead.
//!
//! Unlike axum's `Form` it does not ask for a `Content-Type`: the handlers it replaced read
//! the raw body and took any, and it keeps that.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform::http::Problem;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};

/// A form body decoded into `T`: a field named more than once goes into a `Vec` field, a
/// field missing takes the field's `#[serde(default)]`.
#[derive(Clone, Debug)]
pub struct HtmlForm<T>(pub T);

/// Why a form body could not be read.
#[derive(Debug)]
pub enum FormRejection {
    /// The body itself did not arrive (too large, cut off).
    Body(BytesRejection),
    /// The body arrived but does not decode into the form (a single field sent twice).
    Fields(serde_html_form::de::Error),
}

impl std::fmt::Display for FormRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Body(rejection) => write!(f, "the form's body: {}", rejection.body_text()),
            Self::Fields(err) => write!(f, "the form's fields: {err}"),
        }
    }
}

impl IntoResponse for FormRejection {
    fn into_response(self) -> Response {
        match self {
            // As a handler reading the body as `Bytes` answered.
            Self::Body(rejection) => rejection.into_response(),
            Self::Fields(err) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-fields",
                "Invalid form fields",
                format!("the form's fields could not be read: {err}"),
            )
            .into_response(),
        }
    }
}

impl<S, T> FromRequest<S> for HtmlForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = FormRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(FormRejection::Body)?;
        decode(&body).map(HtmlForm).map_err(FormRejection::Fields)
    }
}

/// Decodes a form body (`+` and `%XX` escapes; an escape that is not one is kept as it is,
/// bytes that are not UTF-8 become U+FFFD).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_html_form::de::Error> {
    serde_html_form::from_bytes(body)
}

/// For `#[serde(default, deserialize_with = "form::present")]` on an `Option<String>`: the
/// field was sent, even empty (`force=`), is `Some`. `serde_html_form` reads an empty value
/// as `None`, which would tell a checkbox sent without a value from one not sent.
pub fn present<'de, D: Deserializer<'de>>(field: D) -> Result<Option<String>, D::Error> {
    String::deserialize(field).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Picks {
        #[serde(default)]
        pick: Vec<String>,
        #[serde(default)]
        bad: String,
        #[serde(default)]
        tail: String,
        #[serde(default, deserialize_with = "present")]
        force: Option<String>,
        #[serde(default, deserialize_with = "present")]
        topic: Option<String>,
    }

    #[test]
    fn a_form_body_decodes_repeated_fields_plus_signs_and_percent_escapes() {
        let picks: Picks = decode(b"pick=a%3A1%3A2&pick=b+c&bad=%zz&tail=%4&force=").unwrap();
        assert_eq!(
            picks,
            Picks {
                pick: vec!["a:1:2".into(), "b c".into()],
                bad: "%zz".into(),
                tail: "%4".into(),
                force: Some(String::new()),
                topic: None,
            }
        );
    }

    #[test]
    fn one_field_or_none_is_a_vec_of_one_or_none() {
        let one: Picks = decode(b"pick=t%3A0%3A7").unwrap();
        assert_eq!(one.pick, vec!["t:0:7".to_string()]);
        let none: Picks = decode(b"").unwrap();
        assert!(none.pick.is_empty());
    }

    #[test]
    fn a_single_field_sent_twice_is_refused() {
        assert!(decode::<Picks>(b"topic=a&topic=b").is_err());
    }
}
