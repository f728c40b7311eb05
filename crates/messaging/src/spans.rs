//! What every messaging span says of itself (OpenTelemetry semantic conventions 1.37): its
//! name (`<operation> <topic>`), kind and service, and the system, operation and destination
//! of the messages it covers. The router's `process` spans ([`crate::router`]) and the
//! relay's `send` spans ([`crate::relay`]) are made with [`messaging_span!`].

/// A `tracing` INFO span named `$name` that carries the attributes every messaging span
/// does, in this order: `otel.name` (`<operation> <topic>`), `otel.kind`,
/// `openorder.service`, `messaging.system` (`kafka`), `messaging.operation.type` and
/// `messaging.destination.name` (the topic); then, after a comma, the span's own fields as
/// `tracing::info_span!` takes them. A `parent: …,` first sets the parent as in
/// `tracing::info_span!` (without it, the current span is).
///
/// ```text
/// messaging_span!(
///     parent: parent_id,    // optional
///     "messaging.process",  // the span's name
///     "process",            // messaging.operation.type
///     "consumer",           // otel.kind
///     service,              // openorder.service (a &str, or an Option<&str>)
///     topic,                // messaging.destination.name (Display)
///     messaging.consumer.group.name = group,
///     error.type = tracing::field::Empty,
/// )
/// ```
macro_rules! messaging_span {
    (parent: $parent:expr, $($rest:tt)*) => {
        $crate::spans::messaging_span!(@span [parent: $parent,] $($rest)*)
    };
    (@span [$($parent:tt)*] $name:expr, $operation:expr, $kind:expr, $service:expr, $topic:expr, $($fields:tt)*) => {
        ::tracing::info_span!(
            $($parent)*
            $name,
            otel.name = format!("{} {}", $operation, $topic),
            otel.kind = $kind,
            openorder.service = $service,
            messaging.system = "kafka",
            messaging.operation.type = $operation,
            messaging.destination.name = %$topic,
            $($fields)*
        )
    };
    ($($rest:tt)*) => {
        $crate::spans::messaging_span!(@span [] $($rest)*)
    };
}

pub(crate) use messaging_span;
