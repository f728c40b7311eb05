//! Edit and retry: a dead letter's value with a JSON merge patch applied, checked against
//! its event's JSON Schema before anything is sent.

use messaging::record::Record;

use super::LetterHeaders;
use crate::merge_patch::merge_patch;

/// An edit refused: the patched value breaks its event's schema (each error: a JSON
/// pointer into the value, and what is wrong), or cannot be checked or sent at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidEdit {
    /// What is wrong as a whole.
    pub reason: String,
    /// `(pointer into the edited value, message)`, one per error.
    pub errors: Vec<(String, String)>,
}

impl std::fmt::Display for InvalidEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)?;
        for (pointer, message) in &self.errors {
            let pointer = if pointer.is_empty() {
                "/"
            } else {
                pointer.as_str()
            };
            write!(f, "; {pointer}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidEdit {}

/// A dead letter's value as an edit makes it.
#[derive(Clone, Debug)]
pub struct Edit {
    /// The patch as asked (for the ledger).
    pub patch: serde_json::Value,
    /// The edited value, as sent.
    pub value: Vec<u8>,
    /// SHA-256 of the patch's JSON text, lower-case hex (`openorder-patch-sha256`).
    pub patch_sha256: String,
}

/// `letter`'s value with `patch` applied (RFC 7396), checked against the JSON Schema of
/// its original topic's event ([`contracts::schemas`]): refused when the dead letter has no
/// value, when the contract has no schema for that topic, when the result breaks the
/// schema (every error listed), or when the patch changes `orderId` (the record's key) or
/// `eventId` (its `event-id` header). A value that was not JSON is patched as `null` (an
/// object patch then gives the whole new value).
pub fn edit(
    letter: &Record,
    topics: &contracts::Topics,
    patch: &serde_json::Value,
) -> Result<Edit, InvalidEdit> {
    let refuse = |reason: String| InvalidEdit {
        reason,
        errors: Vec::new(),
    };
    if letter.value_omitted().is_some() {
        return Err(refuse(format!(
            "{} was written without its value (too large): there is nothing to edit",
            letter.position()
        )));
    }
    let original: serde_json::Value = letter
        .payload
        .as_deref()
        .and_then(|v| serde_json::from_slice(v).ok())
        .unwrap_or(serde_json::Value::Null);
    let mut value = original.clone();
    merge_patch(&mut value, patch);
    let event = topics.unprefixed(&letter.original_topic()).to_string();
    let Some(schema_errors) = contracts::schemas::validate(&event, &value) else {
        return Err(refuse(format!(
            "the contract has no JSON Schema for {event}: an edited value could not be checked, so none is sent"
        )));
    };
    let mut errors: Vec<(String, String)> = schema_errors
        .into_iter()
        .map(|e| (e.pointer, e.message))
        .collect();
    for (field, what) in [
        ("orderId", "the record's key"),
        ("eventId", "its event-id header"),
    ] {
        if let Some(before) = original.get(field) {
            if value.get(field) != Some(before) {
                errors.push((
                    format!("/{field}"),
                    format!("a patch may not change {field} ({what}): it was {before}"),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(InvalidEdit {
            reason: format!("the edited value breaks the {event} contract"),
            errors,
        });
    }
    let patch_text = patch.to_string();
    Ok(Edit {
        patch: patch.clone(),
        value: value.to_string().into_bytes(),
        patch_sha256: store::dedupe::body_hash(Some(patch_text.as_bytes())),
    })
}
