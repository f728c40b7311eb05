//! The order lifecycle as data: the states an order goes through ([`OrderStatus`]), what may
//! move it ([`Trigger`]: an event order-service consumes, or a customer's request), and
//! [`MOVES`], the one table of the moves allowed. order-service moves an order only from a
//! state the table lists with the trigger ([`sources`]), in one conditional UPDATE; any
//! other move (a late or repeated event, a cancel of a rejected order) is ignored.
//!
//! No move goes backwards: the moves form no cycle, so a late event can never undo a
//! decision. [`TERMINAL`] states are left by no move. FAILED is not one of them: once its
//! dead letter is replayed, inventory decides and the order takes the real outcome.
//!
//! The book's diagram ([`markdown`], in `docs/book/src/concepts/lifecycle.md`) and the
//! console's picture ([`svg`]) are generated from the table; tests hold the committed
//! diagram, the console and order-service's behaviour to it.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
    Failed,
    Cancelled,
}

impl OrderStatus {
    /// Every status, in declaration order (which `index` relies on).
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Confirmed,
        Self::Rejected,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// What may move an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `inventory.reserved`: every item of the order was reserved.
    Reserved,
    /// `inventory.rejected`: nothing was reserved (with the reason and the shortages).
    Rejected,
    /// A dead letter of `order.created` from the inventory consumer group: inventory gave
    /// up on the order. Another group's dead letter says nothing about the order.
    DeadLettered,
    /// `POST /api/orders/{id}/cancel`: the customer (or an operator) cancels the order.
    Cancel,
    /// The order stayed PENDING past order-service's `--expire-pending-after` (off unless
    /// set): it is cancelled with the reason `TIMEOUT`, and `order.cancelled` gives back
    /// whatever inventory reserves for it later.
    Expired,
}

impl Trigger {
    pub const ALL: [Self; 5] = [
        Self::Reserved,
        Self::Rejected,
        Self::DeadLettered,
        Self::Cancel,
        Self::Expired,
    ];

    /// How the diagrams name it: the topic of the event, or the request.
    pub fn label(self) -> &'static str {
        match self {
            Self::Reserved => crate::topics::INVENTORY_RESERVED,
            Self::Rejected => crate::topics::INVENTORY_REJECTED,
            Self::DeadLettered => crate::topics::ORDER_CREATED_DLT,
            Self::Cancel => "POST …/cancel",
            Self::Expired => "pending too long",
        }
    }
}

/// Where every order starts: order-service stores it so, with its `order.created`.
pub const START: OrderStatus = OrderStatus::Pending;

/// Every move an order may make, `(from, trigger, to)`. A trigger that finds its order in
/// a state not listed with it moves nothing.
pub const MOVES: &[(OrderStatus, Trigger, OrderStatus)] = &[
    (
        OrderStatus::Pending,
        Trigger::Reserved,
        OrderStatus::Confirmed,
    ),
    (
        OrderStatus::Pending,
        Trigger::Rejected,
        OrderStatus::Rejected,
    ),
    (
        OrderStatus::Pending,
        Trigger::DeadLettered,
        OrderStatus::Failed,
    ),
    (
        OrderStatus::Pending,
        Trigger::Cancel,
        OrderStatus::Cancelled,
    ),
    (
        OrderStatus::Pending,
        Trigger::Expired,
        OrderStatus::Cancelled,
    ),
    (
        OrderStatus::Failed,
        Trigger::Reserved,
        OrderStatus::Confirmed,
    ),
    (
        OrderStatus::Failed,
        Trigger::Rejected,
        OrderStatus::Rejected,
    ),
    (
        OrderStatus::Confirmed,
        Trigger::Cancel,
        OrderStatus::Cancelled,
    ),
];

/// The states no move leaves: an order there is decided for good.
pub const TERMINAL: &[OrderStatus] = &[OrderStatus::Rejected, OrderStatus::Cancelled];

/// Where `trigger` moves an order in `from`; None: the table has no such move, and it is
/// ignored.
pub fn next(from: OrderStatus, trigger: Trigger) -> Option<OrderStatus> {
    MOVES
        .iter()
        .find(|(f, t, _)| *f == from && *t == trigger)
        .map(|(_, _, to)| *to)
}

/// The states `trigger` moves an order from, in [`OrderStatus::ALL`]'s order: what a
/// conditional update's `WHERE status IN (…)` lists.
pub fn sources(trigger: Trigger) -> Vec<OrderStatus> {
    OrderStatus::ALL
        .into_iter()
        .filter(|from| next(*from, trigger).is_some())
        .collect()
}

/// The state `trigger` moves an order to. It is the same from every state it moves one
/// from (a test checks it), so one UPDATE applies a trigger to many orders.
pub fn target(trigger: Trigger) -> OrderStatus {
    MOVES
        .iter()
        .find(|(_, t, _)| *t == trigger)
        .map(|(_, _, to)| *to)
        .expect("every trigger moves some state")
}

pub fn is_terminal(state: OrderStatus) -> bool {
    TERMINAL.contains(&state)
}

/// `state`'s place in [`OrderStatus::ALL`].
fn index(state: OrderStatus) -> usize {
    state as usize
}

/// The lifecycle as a Mermaid state diagram (left to right; a terminal state leads to
/// the end `[*]`).
pub fn mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    direction LR\n");
    let _ = writeln!(out, "    [*] --> {}", START.as_str());
    for (from, trigger, to) in MOVES {
        let _ = writeln!(
            out,
            "    {} --> {}: {}",
            from.as_str(),
            to.as_str(),
            trigger.label()
        );
    }
    for state in TERMINAL {
        let _ = writeln!(out, "    {} --> [*]", state.as_str());
    }
    out
}

/// What the book shows between its `<!-- lifecycle:begin -->` and `<!-- lifecycle:end -->`
/// markers: the Mermaid diagram, the table of moves, and the terminal states.
pub fn markdown() -> String {
    let mut out = format!("```mermaid\n{}```\n\n", mermaid());
    out.push_str("| from | trigger | to |\n|---|---|---|\n");
    for (from, trigger, to) in MOVES {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | `{}` |",
            from.as_str(),
            trigger.label(),
            to.as_str()
        );
    }
    let terminal: Vec<String> = TERMINAL
        .iter()
        .map(|s| format!("`{}`", s.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "\nEvery order starts `{}`. Terminal (no move leaves them): {}.",
        START.as_str(),
        terminal.join(", ")
    );
    out
}

/// Each state's layer, indexed like [`OrderStatus::ALL`]: the length of the longest chain
/// of moves that reaches it (the moves form no cycle, so every move goes to a later layer).
fn layers() -> Vec<usize> {
    let mut layer = vec![0; OrderStatus::ALL.len()];
    // Relaxing every move once per state is enough when there is no cycle (and still ends
    // when there is one).
    for _ in OrderStatus::ALL {
        for &(from, _, to) in MOVES {
            layer[index(to)] = layer[index(to)].max(layer[index(from)] + 1);
        }
    }
    layer
}

mod picture;

pub use picture::svg;

#[cfg(test)]
mod tests;
