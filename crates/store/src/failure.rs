//! Error classification, in one place: what a consumer does with a record that failed.
//!
//! | kind | examples | what the consumer loop does |
//! |---|---|---|
//! | [`FailureKind::Unavailable`] | database down or busy, connection lost | retries with capped backoff until it works (or shutdown); never dead-letters: the record is fine, a dependency is not |
//! | [`FailureKind::Transient`] | injected faults (`FAIL`, `FLAKY`), a concurrent stock change, an unexpected database error | retries in place with exponential backoff and jitter, up to the policy's attempts, then dead-letters |
//! | [`FailureKind::Permanent`] | undecodable, schema-invalid or business-invalid record | dead-letters at once |

/// How a failure is handled (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Unavailable,
    Transient,
    Permanent,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

/// Why a handler could not apply a record. `class` names the error for people and tools
/// (it becomes the `kafka_dlt-exception-fqcn` header and a metrics label).
#[derive(Debug, thiserror::Error)]
#[error("{class}: {message}")]
pub struct HandleError {
    pub kind: FailureKind,
    pub class: &'static str,
    pub message: String,
}

impl HandleError {
    pub fn new(kind: FailureKind, class: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            kind,
            class,
            message: message.to_string(),
        }
    }

    pub fn unavailable(class: &'static str, message: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::Unavailable, class, message)
    }

    pub fn transient(class: &'static str, message: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::Transient, class, message)
    }

    pub fn permanent(class: &'static str, message: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::Permanent, class, message)
    }
}

impl From<sqlx::Error> for HandleError {
    fn from(err: sqlx::Error) -> Self {
        if crate::db::is_transient(&err) {
            Self::unavailable("openorder.DatabaseUnavailable", err)
        } else {
            Self::transient("openorder.DatabaseError", err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_database_connection_is_unavailable_and_a_bad_query_transient() {
        let lost = HandleError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(lost.kind, FailureKind::Unavailable);
        let bad = HandleError::from(sqlx::Error::RowNotFound);
        assert_eq!(bad.kind, FailureKind::Transient);
    }
}
