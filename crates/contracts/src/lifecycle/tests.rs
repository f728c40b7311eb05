//! The lifecycle table's own rules (no cycle, one target per trigger, terminal states),
//! its diagrams, and the book's copy of them.

use super::*;
use crate::html::escape;

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
