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

/// `text` for SVG (or HTML) text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Sizes of the picture, in pixels.
const BOX_W: i32 = 112;
const BOX_H: i32 = 34;
/// A column of labels between two columns of states.
const LABEL_W: i32 = 136;
/// Between a column of states and one of labels: where arrows bend.
const BEND_W: i32 = 28;
const ROW_H: i32 = 52;
/// Left of the first column: the start dot.
const LEFT: i32 = 48;
const MARGIN: i32 = 16;
/// Below the states: the legend.
const LEGEND_H: i32 = 22;

/// The row nearest `twice_mid / 2` (above first, on a tie) that no column of `columns`
/// has taken.
fn free_row(taken: &[Vec<i32>], columns: std::ops::Range<usize>, twice_mid: i32) -> i32 {
    (0..)
        .flat_map(|d: i32| [twice_mid - d, twice_mid + d])
        .filter(|twice| twice % 2 == 0)
        .map(|twice| twice / 2)
        .find(|row| columns.clone().all(|c| !taken[c].contains(row)))
        .expect("some row is free")
}

/// The lifecycle as an SVG picture, the same for the same table, with no script and no
/// style sheet (attributes only). States are boxes in columns by layer (the longest chain
/// of moves reaching them), left to right from the start dot, top to bottom in
/// [`OrderStatus::ALL`]'s order. Between two columns of states runs a column of labels.
/// Every move is an arrow with a straight stretch of its own, on one row, through the
/// columns it crosses; its trigger is written on that stretch in the first column of
/// labels. Shorter moves take their rows first, each the free row nearest the middle of
/// its two states'. Terminal states have a double border.
pub fn svg() -> String {
    let layer = layers();
    let layers = layer.iter().max().map_or(1, |m| m + 1);
    // Column 2 L holds the states of layer L; column 2 L + 1, the labels after them.
    let columns = 2 * layers - 1;
    let row_of = |state: OrderStatus| {
        OrderStatus::ALL
            .into_iter()
            .filter(|s| layer[index(*s)] == layer[index(state)])
            .position(|s| s == state)
            .expect("every state is in its column") as i32
    };
    // (One spare column: a table with a cycle, which a test refuses, still draws.)
    let mut taken: Vec<Vec<i32>> = vec![Vec::new(); columns + 1];
    for state in OrderStatus::ALL {
        taken[2 * layer[index(state)]].push(row_of(state));
    }
    // Each move's columns (from the labels after its state to the labels before its
    // target) and row, shorter moves first.
    let mut order: Vec<usize> = (0..MOVES.len()).collect();
    order.sort_by_key(|&m| {
        let (from, _, to) = MOVES[m];
        layer[index(to)].saturating_sub(layer[index(from)])
    });
    let mut stretches = vec![(0..0, 0); MOVES.len()];
    for m in order {
        let (from, _, to) = MOVES[m];
        let first = 2 * layer[index(from)] + 1;
        let last = (2 * layer[index(to)]).saturating_sub(1).max(first);
        let row = free_row(&taken, first..last + 1, row_of(from) + row_of(to));
        for column in &mut taken[first..=last] {
            column.push(row);
        }
        stretches[m] = (first..last + 1, row);
    }
    let top_row = taken.iter().flatten().min().copied().unwrap_or(0);
    let bottom_row = taken.iter().flatten().max().copied().unwrap_or(0);

    let x = |column: usize| {
        let before = (column / 2) as i32 * (BOX_W + BEND_W + LABEL_W + BEND_W);
        match column % 2 {
            0 => LEFT + before,
            _ => LEFT + before + BOX_W + BEND_W,
        }
    };
    let y = |row: i32| MARGIN + (row - top_row) * ROW_H + BOX_H / 2;
    let width = x(columns - 1) + BOX_W + MARGIN;
    let bottom = y(bottom_row) + BOX_H / 2 + MARGIN;
    let height = bottom + LEGEND_H;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="lifecycle" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="lifecycle-title" font-family="system-ui, sans-serif" font-size="12"><title id="lifecycle-title">The order lifecycle</title><defs><marker id="lifecycle-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#5d6675"/></marker></defs>"##
    );
    // The start dot, and its arrow to the start state.
    let (start_x, start_y) = (x(2 * layer[index(START)]), y(row_of(START)));
    let _ = write!(
        svg,
        r##"<circle cx="{}" cy="{start_y}" r="6" fill="#1d2330"/><line x1="{}" y1="{start_y}" x2="{start_x}" y2="{start_y}" stroke="#5d6675" stroke-width="1.5" marker-end="url(#lifecycle-arrow)"/>"##,
        start_x - 26,
        start_x - 20
    );
    for (&(from, trigger, to), (span, row)) in MOVES.iter().zip(&stretches) {
        let (first, last) = (span.start, span.end - 1);
        let points = [
            (x(first - 1) + BOX_W, y(row_of(from))),
            (x(first), y(*row)),
            (x(last) + LABEL_W, y(*row)),
            (x(last + 1), y(row_of(to))),
        ];
        let line: Vec<String> = points.iter().map(|(px, py)| format!("{px},{py}")).collect();
        let _ = write!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#5d6675" stroke-width="1.5" marker-end="url(#lifecycle-arrow)"/><text x="{}" y="{}" text-anchor="middle" fill="#5d6675">{}</text>"##,
            line.join(" "),
            x(first) + LABEL_W / 2,
            y(*row) - 5,
            escape(trigger.label())
        );
    }
    for state in OrderStatus::ALL {
        let (left, top) = (x(2 * layer[index(state)]), y(row_of(state)) - BOX_H / 2);
        let _ = write!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="#ffffff" stroke="#1d2330" stroke-width="1.5"/>"##
        );
        if is_terminal(state) {
            let _ = write!(
                svg,
                r##"<rect x="{}" y="{}" width="{}" height="{}" rx="4" fill="none" stroke="#1d2330"/>"##,
                left + 4,
                top + 4,
                BOX_W - 8,
                BOX_H - 8
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="13" font-weight="600" fill="#1d2330">{}</text>"##,
            left + BOX_W / 2,
            top + BOX_H / 2 + 5,
            escape(state.as_str())
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="{}" fill="#5d6675">Every order starts at the dot; a double border marks a terminal state (no move leaves it). Any move not drawn is ignored.</text></svg>"##,
        bottom + 6
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_status_at_its_index() {
        for (i, status) in OrderStatus::ALL.into_iter().enumerate() {
            assert_eq!(index(status), i, "{status:?}");
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn terminal_states_are_exactly_those_no_move_leaves() {
        for state in OrderStatus::ALL {
            let leaves = MOVES.iter().any(|(from, _, _)| *from == state);
            assert_eq!(is_terminal(state), !leaves, "{state:?}");
            if is_terminal(state) {
                for trigger in Trigger::ALL {
                    assert_eq!(next(state, trigger), None, "{state:?} on {trigger:?}");
                }
            }
        }
    }

    #[test]
    fn the_table_has_one_move_per_state_and_trigger_at_most() {
        for (i, (from, trigger, _)) in MOVES.iter().enumerate() {
            assert!(
                !MOVES[..i].iter().any(|(f, t, _)| f == from && t == trigger),
                "{from:?} on {trigger:?} is listed twice"
            );
        }
    }

    #[test]
    fn every_trigger_moves_some_state_and_always_to_one_state() {
        for trigger in Trigger::ALL {
            assert!(!sources(trigger).is_empty(), "{trigger:?} moves nothing");
            for from in sources(trigger) {
                assert_eq!(next(from, trigger), Some(target(trigger)), "{from:?}");
            }
        }
    }

    #[test]
    fn no_move_goes_backwards_and_every_state_is_reached_from_the_start() {
        let layer = layers();
        for (from, trigger, to) in MOVES {
            assert!(
                layer[index(*to)] > layer[index(*from)],
                "{from:?} on {trigger:?} to {to:?} closes a cycle"
            );
            assert_ne!(*to, START, "nothing moves an order back to the start");
        }
        let mut reached = vec![START];
        for _ in OrderStatus::ALL {
            for (from, _, to) in MOVES {
                if reached.contains(from) && !reached.contains(to) {
                    reached.push(*to);
                }
            }
        }
        for state in OrderStatus::ALL {
            assert!(reached.contains(&state), "{state:?} is never reached");
        }
    }

    #[test]
    fn a_late_event_never_revives_or_reverses_an_order() {
        use OrderStatus::*;
        assert_eq!(next(Pending, Trigger::Reserved), Some(Confirmed));
        assert_eq!(next(Pending, Trigger::DeadLettered), Some(Failed));
        assert_eq!(next(Failed, Trigger::Reserved), Some(Confirmed));
        assert_eq!(next(Confirmed, Trigger::Rejected), None);
        assert_eq!(next(Confirmed, Trigger::DeadLettered), None);
        assert_eq!(next(Rejected, Trigger::Reserved), None);
        assert_eq!(next(Confirmed, Trigger::Cancel), Some(Cancelled));
        assert_eq!(next(Rejected, Trigger::Cancel), None);
        assert_eq!(next(Failed, Trigger::Cancel), None);
        assert_eq!(next(Pending, Trigger::Expired), Some(Cancelled));
        assert_eq!(
            sources(Trigger::Expired),
            [Pending],
            "only a PENDING order expires"
        );
        assert_eq!(
            next(Cancelled, Trigger::Reserved),
            None,
            "a late reservation cannot revive a cancelled order"
        );
        assert_eq!(sources(Trigger::Cancel), [Pending, Confirmed]);
    }

    #[test]
    fn the_mermaid_diagram_has_every_move_and_ends_at_the_terminal_states() {
        let diagram = mermaid();
        assert!(diagram.starts_with("stateDiagram-v2\n"), "{diagram}");
        assert!(diagram.contains("    [*] --> PENDING\n"), "{diagram}");
        assert!(
            diagram.contains("    FAILED --> REJECTED: inventory.rejected\n"),
            "{diagram}"
        );
        assert_eq!(
            diagram.matches(" --> ").count(),
            1 + MOVES.len() + TERMINAL.len()
        );
        assert!(diagram.contains("    CANCELLED --> [*]\n"), "{diagram}");
    }

    #[test]
    fn the_svg_draws_every_state_and_move_and_escapes_its_text() {
        let picture = svg();
        assert_eq!(picture, svg(), "the same every time");
        assert!(picture.starts_with("<svg ") && picture.ends_with("</svg>"));
        for state in OrderStatus::ALL {
            assert!(picture.contains(&format!(">{}</text>", state.as_str())));
        }
        for trigger in Trigger::ALL {
            assert!(picture.contains(&format!(">{}</text>", escape(trigger.label()))));
        }
        assert_eq!(picture.matches("<polyline ").count(), MOVES.len());
        // A terminal state's inner border.
        assert_eq!(picture.matches(r#"rx="4""#).count(), TERMINAL.len());
        assert!(!picture.contains("<script") && !picture.contains("style="));
        assert_eq!(
            escape(r#"<a & "b">'"#),
            "&lt;a &amp; &quot;b&quot;&gt;&#39;"
        );
    }

    /// The book's page about the lifecycle.
    fn book_page() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/book/src/concepts/lifecycle.md")
    }

    const BEGIN: &str = "<!-- lifecycle:begin -->";
    const END: &str = "<!-- lifecycle:end -->";

    /// The page's text with its generated block as [`markdown`] makes it.
    fn regenerated(page: &str) -> String {
        let (before, rest) = page
            .split_once(BEGIN)
            .expect("the lifecycle page has the begin marker");
        let (_, after) = rest
            .split_once(END)
            .expect("the lifecycle page has the end marker");
        format!("{before}{BEGIN}\n{}{END}{after}", markdown())
    }

    #[test]
    fn the_books_lifecycle_diagram_is_the_one_the_table_generates() {
        let path = book_page();
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = regenerated(&committed);
        if std::env::var("OPENORDER_TEST_WRITE_DOCS").as_deref() == Ok("1") {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/book/src/concepts/lifecycle.md's diagram differs from the table's: review the \
             change and run `OPENORDER_TEST_WRITE_DOCS=1 cargo test -p contracts lifecycle` to \
             write it"
        );
    }
}
