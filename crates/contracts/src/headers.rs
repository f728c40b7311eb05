//! Record header names.

/// The event's `eventId`, so consumers can dedupe without parsing the value.
pub const EVENT_ID: &str = "event-id";
/// The event's type, e.g. `order.created` (see [`crate::Event::event_type`]).
pub const EVENT_TYPE: &str = "event-type";
/// The schema version of the event's value, an integer (`1` today, [`crate::Event::VERSION`]).
/// It grows only for a change a reader cannot ignore (a field removed, renamed or given
/// another meaning); fields added are not a new version: readers ignore fields they do not
/// know (tolerant readers) and never dead-letter a record for them.
pub const EVENT_VERSION: &str = "event-version";
/// Always `application/json`.
pub const CONTENT_TYPE: &str = "content-type";
pub const JSON: &str = "application/json";

/// Dead-letter headers, named as Spring Kafka names them so existing tooling reads them.
pub const DLT_ORIGINAL_TOPIC: &str = "kafka_dlt-original-topic";
pub const DLT_ORIGINAL_PARTITION: &str = "kafka_dlt-original-partition";
pub const DLT_ORIGINAL_OFFSET: &str = "kafka_dlt-original-offset";
pub const DLT_ORIGINAL_TIMESTAMP: &str = "kafka_dlt-original-timestamp";
pub const DLT_ORIGINAL_CONSUMER_GROUP: &str = "kafka_dlt-original-consumer-group";
pub const DLT_EXCEPTION_FQCN: &str = "kafka_dlt-exception-fqcn";
pub const DLT_EXCEPTION_MESSAGE: &str = "kafka_dlt-exception-message";
/// How many times the consumer tried the record before dead-lettering it.
pub const ATTEMPTS: &str = "openorder-attempts";
/// On a dead letter written without the original's value (it would not fit in a record
/// the broker takes, with the dead-letter headers added): why the value was left out.
/// The original is still in its topic, at the `kafka_dlt-original-*` position.
pub const DLT_VALUE_OMITTED: &str = "openorder-dlt-value-omitted";
/// On such a dead letter: the original value's size in bytes.
pub const DLT_ORIGINAL_VALUE_BYTES: &str = "openorder-dlt-original-value-bytes";
/// How many times a record was replayed from a dead-letter topic (absent: never).
pub const REPLAY_COUNT: &str = "openorder-replay-count";
/// On a dead letter: the kind of the failure that gave up on the record (`transient`,
/// `permanent`), as the consumer classified it. The automatic redrive policy takes
/// transient ones only.
pub const FAILURE_KIND: &str = "openorder-failure-kind";
/// On a record replayed with its value edited (a JSON merge patch applied): `true`.
pub const EDITED: &str = "openorder-edited";
/// On such a record: the SHA-256 (lower-case hex) of the patch, as the replay ledger
/// records it.
pub const PATCH_SHA256: &str = "openorder-patch-sha256";
/// One per replay a record went through, oldest first: a JSON object saying which dead
/// letter it was replayed from, why that failed, after how many attempts, by whom, when,
/// and whether its value was edited. A dead letter keeps them (it keeps every header of
/// its record), so a parked record shows its whole history.
pub const REPLAY_HISTORY: &str = "openorder-replay-history";
