//! From a record to the code for its event. A service's consumer is a [`Router`]: one
//! route per event type it consumes (the topic map's arrows into that service, see
//! [`contracts::topics::MAP`]), each with the handler ([`On`]) for that event.
//!
//! The consumer loop hands the router a batch of records ([`Handler::apply`]; a record
//! retried on its own is a batch of one). The router decodes each record **once**, into
//! the event its topic carries, runs the optional [`BeforeBatch`] hook on the whole decoded
//! batch, then hands each run of consecutive records of one type to that type's handler,
//! which applies them together (set-based statements). A record that does not decode, or
//! whose key is not its event's `orderId` (the contract's key rule, checked here as it is
//! decoded, for events; not for dead letters), fails the batch as a permanent error, so the
//! loop dead-letters it alone.

mod span;

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;

use contracts::topics::DLT_SUFFIX;
use contracts::{Event, Service, Topics};
use futures_util::future::BoxFuture;

use tracing::Instrument;

use crate::record::Record;
use span::process_span;
use store::db::Tx;
use store::failure::HandleError;

/// What the consumer loop calls: applies records, idempotently (the same record may come
/// more than once). Services implement it through a [`Router`].
pub trait Handler: Send + Sync + 'static {
    /// Applies `batch` (in partition order) inside `tx`, which the loop commits. On an
    /// error the loop rolls `tx` back whole (so an error may leave `tx` half-written) and
    /// applies the batch's records again one by one. `attempt` counts tries of a record
    /// on its own in this process, from 1 (a batch try is attempt 1 too).
    fn apply(
        &self,
        tx: &mut Tx,
        batch: &[Record],
        attempt: u32,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// A record and the event decoded from it.
pub struct Delivered<'a, E> {
    pub record: &'a Record,
    pub event: E,
    /// With traces on, the span of this record's processing: the run's `process` span for
    /// a record applied alone, a span of its own inside it in a batch. A handler enters it
    /// while it writes what the record causes, so that the outbox rows (which take the
    /// current span's context, [`store::outbox::Outgoing::new`]) and log lines of each
    /// record of a batch hang under that record, not under the batch.
    pub span: tracing::Span,
}

/// The handler of one event type `E`.
pub trait On<E>: Send + Sync + 'static {
    /// Applies `events` (consecutive records of one batch, in order) inside `tx`. It must
    /// have the effects of applying them one by one.
    fn apply(
        &self,
        tx: &mut Tx,
        events: &[Delivered<'_, E>],
        attempt: u32,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// A dead letter of an event of type `E`: the record itself (with its `kafka_dlt-*`
/// headers, see [`Record::dead_lettered_by`] and [`Record::dead_letter_error`]) and the
/// original event, when its value decodes as one.
/// A dead letter never fails to decode: what could not be read is often why it is one.
/// Nor is its key held to the key rule: a record keyed wrongly is one of the reasons.
pub struct DeadLetter<E> {
    pub original: Option<E>,
}

/// Runs first in a batch's transaction, on the whole decoded batch, before any handler:
/// where a service must take every lock the batch will need in one fixed order.
pub trait BeforeBatch: Send + Sync + 'static {
    fn before(
        &self,
        tx: &mut Tx,
        batch: &Decoded<'_>,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// No hook.
impl BeforeBatch for () {
    async fn before(&self, _tx: &mut Tx, _batch: &Decoded<'_>) -> Result<(), HandleError> {
        Ok(())
    }
}

/// A batch as the router decoded it, for [`BeforeBatch`].
pub struct Decoded<'a> {
    items: Vec<Item<'a>>,
}

struct Item<'a> {
    record: &'a Record,
    route: usize,
    event: Box<dyn Any + Send + Sync>,
    /// The record's span (see [`Delivered::span`]), set when its run is applied.
    span: tracing::Span,
}

impl Decoded<'_> {
    /// The batch's events of type `E`, in order.
    pub fn events<E: 'static>(&self) -> impl Iterator<Item = &E> {
        self.items
            .iter()
            .filter_map(|i| i.event.downcast_ref::<E>())
    }
}

type Decode = fn(&Record) -> Result<Box<dyn Any + Send + Sync>, HandleError>;

/// A handler behind a type-erased face, so that routes of different types fit one list.
trait Apply: Send + Sync {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        run: Vec<Item<'a>>,
        attempt: u32,
    ) -> BoxFuture<'a, Result<(), HandleError>>;
}

struct Typed<E, H>(H, PhantomData<fn() -> E>);

impl<E: Send + Sync + 'static, H: On<E>> Apply for Typed<E, H> {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        run: Vec<Item<'a>>,
        attempt: u32,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let events: Vec<Delivered<'a, E>> = run
                .into_iter()
                .map(|item| Delivered {
                    record: item.record,
                    event: *item
                        .event
                        .downcast::<E>()
                        .expect("decoded by this route's decoder"),
                    span: item.span,
                })
                .collect();
            self.0.apply(tx, &events, attempt).await
        })
    }
}

struct Route {
    /// The event type (the topic without prefix).
    event_type: String,
    decode: Decode,
    apply: Box<dyn Apply>,
}

/// The records of a family of topics (`inventory.`) that no route names: a newer
/// producer's event types.
struct Others {
    family: &'static str,
    route: Route,
}

/// A service's consumer: event type → decoder and handler. See the module header.
pub struct Router<B = ()> {
    service: Service,
    topics: Topics,
    /// The consumer group this router runs in (prefixed), for the spans ([`Router::in_group`]).
    group: String,
    routes: Vec<Route>,
    by_topic: HashMap<String, usize>,
    others: Option<Others>,
    before: B,
}

/// Decodes an event of a known type, and holds its record to the contract's key rule:
/// keyed by the event's `orderId` ([`crate::record::key_names_order`]). Every event a
/// service consumes passes here once, so a record breaking the rule is refused (and
/// dead-lettered, [`crate::record::KEY_MISMATCH`]) before any handler applies it.
fn decode_event<E: Event + Send + Sync + 'static>(
    record: &Record,
) -> Result<Box<dyn Any + Send + Sync>, HandleError> {
    let event = record.json::<E>()?;
    record.check_key(event.order_id())?;
    Ok(Box::new(event))
}

/// [`decode_event`] for an event type this build does not know ([`Router::on_others_of`]):
/// the key rule is checked against the value's `orderId`, when it has one.
fn decode_other<E: serde::de::DeserializeOwned + Send + Sync + 'static>(
    record: &Record,
) -> Result<Box<dyn Any + Send + Sync>, HandleError> {
    let event = record.json::<E>()?;
    if let Some(order_id) = record
        .payload
        .as_deref()
        .and_then(crate::record::value_order_id)
    {
        record.check_key(order_id)?;
    }
    Ok(Box::new(event))
}

fn decode_dead_letter<E: serde::de::DeserializeOwned + Send + Sync + 'static>(
    record: &Record,
) -> Result<Box<dyn Any + Send + Sync>, HandleError> {
    Ok(Box::new(DeadLetter {
        original: record.json::<E>().ok(),
    }))
}

impl Router<()> {
    /// A router for `service`'s consumer, on the topics of `topics`' deployment.
    pub fn new(service: Service, topics: &Topics) -> Self {
        Self {
            service,
            topics: topics.clone(),
            group: String::new(),
            routes: Vec::new(),
            by_topic: HashMap::new(),
            others: None,
            before: (),
        }
    }
}

impl<B: BeforeBatch> Router<B> {
    /// This router running in consumer group `group` (prefixed), which its spans name.
    pub fn in_group(mut self, group: String) -> Self {
        self.group = group;
        self
    }

    fn add(mut self, event_type: String, decode: Decode, apply: Box<dyn Apply>) -> Self {
        assert!(
            !self.by_topic.contains_key(&self.topics.name(&event_type)),
            "{event_type} routed twice"
        );
        self.by_topic
            .insert(self.topics.name(&event_type), self.routes.len());
        self.routes.push(Route {
            event_type,
            decode,
            apply,
        });
        self
    }

    /// Records of `E`'s topic go to `handler`, decoded as `E`.
    pub fn on<E, H>(self, handler: H) -> Self
    where
        E: Event + Send + Sync + 'static,
        H: On<E>,
    {
        let apply = Box::new(Typed::<E, H>(handler, PhantomData));
        self.add(E::TYPE.to_string(), decode_event::<E>, apply)
    }

    /// Dead letters of `E` (its topic's `.DLT`) go to `handler`.
    pub fn on_dead_letters<E, H>(self, handler: H) -> Self
    where
        E: Event + Send + Sync + 'static,
        H: On<DeadLetter<E>>,
    {
        let apply = Box::new(Typed::<DeadLetter<E>, H>(handler, PhantomData));
        self.add(
            format!("{}{DLT_SUFFIX}", E::TYPE),
            decode_dead_letter::<E>,
            apply,
        )
    }

    /// Records of any other topic of `family` (`inventory.`: an event type this build
    /// does not know) go to `handler`, decoded as `E` (say [`contracts::AnyEvent`]). With
    /// group assignment the consumer subscribes to the family by pattern, so a new topic
    /// of it is read once it exists.
    pub fn on_others_of<E, H>(mut self, family: &'static str, handler: H) -> Self
    where
        E: serde::de::DeserializeOwned + Send + Sync + 'static,
        H: On<E>,
    {
        self.others = Some(Others {
            family,
            route: Route {
                event_type: format!("{family}*"),
                decode: decode_other::<E>,
                apply: Box::new(Typed::<E, H>(handler, PhantomData)),
            },
        });
        self
    }

    /// Runs `hook` first in every batch's transaction.
    pub fn before_each_batch<B2: BeforeBatch>(self, hook: B2) -> Router<B2> {
        Router {
            service: self.service,
            topics: self.topics,
            group: self.group,
            routes: self.routes,
            by_topic: self.by_topic,
            others: self.others,
            before: hook,
        }
    }

    /// The event types routed (topics without prefix), in the order they were added.
    pub fn event_types(&self) -> Vec<&str> {
        self.routes.iter().map(|r| r.event_type.as_str()).collect()
    }

    /// What the consumer subscribes to: every routed topic by name, and with `pattern`
    /// (group assignment) a family with an [`Router::on_others_of`] route as one regex
    /// instead of its names.
    pub fn subscription(&self, pattern: bool) -> Vec<String> {
        let family = self.others.as_ref().filter(|_| pattern).map(|o| o.family);
        let mut topics: Vec<String> = self
            .routes
            .iter()
            .filter(|r| family.is_none_or(|f| !r.event_type.starts_with(f)))
            .map(|r| self.topics.name(&r.event_type))
            .collect();
        if let Some(family) = family {
            topics.push(self.topics.family_pattern(family));
        }
        topics
    }

    fn route_of(&self, record: &Record) -> Result<(usize, &Route), HandleError> {
        if let Some(&index) = self.by_topic.get(&record.topic) {
            return Ok((index, &self.routes[index]));
        }
        match &self.others {
            Some(others)
                if self
                    .topics
                    .unprefixed(&record.topic)
                    .starts_with(others.family)
                    && !record.topic.ends_with(DLT_SUFFIX) =>
            {
                Ok((self.routes.len(), &others.route))
            }
            _ => Err(HandleError::permanent(
                "openorder.UnexpectedTopic",
                format!("no handler for topic {}", record.topic),
            )),
        }
    }
}

impl<B: BeforeBatch> Handler for Router<B> {
    async fn apply(&self, tx: &mut Tx, batch: &[Record], attempt: u32) -> Result<(), HandleError> {
        let mut items = Vec::with_capacity(batch.len());
        for record in batch {
            let (route, found) = self.route_of(record)?;
            items.push(Item {
                record,
                route,
                event: (found.decode)(record)?,
                span: tracing::Span::none(),
            });
        }
        let decoded = Decoded { items };
        self.before.before(tx, &decoded).await?;
        let mut items = decoded.items.into_iter().peekable();
        while let Some(first) = items.next() {
            let index = first.route;
            let mut run = vec![first];
            while let Some(next) = items.next_if(|i| i.route == index) {
                run.push(next);
            }
            let route = match self.routes.get(index) {
                Some(route) => route,
                None => &self.others.as_ref().expect("routed to others").route,
            };
            let span = process_span(&mut run, self.service.name(), &self.group);
            tx.trace_in(&span);
            let applied = route
                .apply
                .apply(tx, run, attempt)
                .instrument(span.clone())
                .await;
            if let Err(err) = &applied {
                span.record("error.type", err.class);
                span.record("otel.status_code", "ERROR");
            }
            applied?;
        }
        Ok(())
    }
}
