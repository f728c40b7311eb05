//! The lifecycle as an SVG picture for the console: where each state's box and each move's
//! arrow go ([`Layout`]), and the drawing of them ([`svg`]).

use std::fmt::Write;
use std::ops::Range;

use super::{index, is_terminal, layers, OrderStatus, MOVES, START};
use crate::html::escape;

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
fn free_row(taken: &[Vec<i32>], columns: Range<usize>, twice_mid: i32) -> i32 {
    (0..)
        .flat_map(|d: i32| [twice_mid - d, twice_mid + d])
        .filter(|twice| twice % 2 == 0)
        .map(|twice| twice / 2)
        .find(|row| columns.clone().all(|c| !taken[c].contains(row)))
        .expect("some row is free")
}

/// The left edge of `column`: column 2 L holds the states of layer L; column 2 L + 1, the
/// labels after them.
fn x(column: usize) -> i32 {
    let before = (column / 2) as i32 * (BOX_W + BEND_W + LABEL_W + BEND_W);
    match column % 2 {
        0 => LEFT + before,
        _ => LEFT + before + BOX_W + BEND_W,
    }
}

/// Where everything goes: the columns of states and labels, and each move's row.
struct Layout {
    /// Each state's layer ([`layers`]), indexed like [`OrderStatus::ALL`].
    layer: Vec<usize>,
    /// How many columns of states and labels there are.
    columns: usize,
    /// Each move's columns (from the labels after its state to the labels before its
    /// target) and row, indexed like [`MOVES`].
    stretches: Vec<(Range<usize>, i32)>,
    /// The first and the last row anything takes.
    top_row: i32,
    bottom_row: i32,
}

impl Layout {
    fn new() -> Self {
        let layer = layers();
        let layers = layer.iter().max().map_or(1, |m| m + 1);
        let columns = 2 * layers - 1;
        let mut layout = Self {
            layer,
            columns,
            stretches: vec![(0..0, 0); MOVES.len()],
            top_row: 0,
            bottom_row: 0,
        };
        // (One spare column: a table with a cycle, which a test refuses, still draws.)
        let mut taken: Vec<Vec<i32>> = vec![Vec::new(); columns + 1];
        for state in OrderStatus::ALL {
            taken[layout.column_of(state)].push(layout.row_of(state));
        }
        // Shorter moves take their rows first.
        let mut order: Vec<usize> = (0..MOVES.len()).collect();
        order.sort_by_key(|&m| {
            let (from, _, to) = MOVES[m];
            layout.layer[index(to)].saturating_sub(layout.layer[index(from)])
        });
        for m in order {
            let (from, _, to) = MOVES[m];
            let first = layout.column_of(from) + 1;
            let last = layout.column_of(to).saturating_sub(1).max(first);
            let row = free_row(
                &taken,
                first..last + 1,
                layout.row_of(from) + layout.row_of(to),
            );
            for column in &mut taken[first..=last] {
                column.push(row);
            }
            layout.stretches[m] = (first..last + 1, row);
        }
        layout.top_row = taken.iter().flatten().min().copied().unwrap_or(0);
        layout.bottom_row = taken.iter().flatten().max().copied().unwrap_or(0);
        layout
    }

    /// The column of `state`'s box.
    fn column_of(&self, state: OrderStatus) -> usize {
        2 * self.layer[index(state)]
    }

    /// `state`'s row in its column: states of one layer top to bottom in
    /// [`OrderStatus::ALL`]'s order.
    fn row_of(&self, state: OrderStatus) -> i32 {
        OrderStatus::ALL
            .into_iter()
            .filter(|s| self.layer[index(*s)] == self.layer[index(state)])
            .position(|s| s == state)
            .expect("every state is in its column") as i32
    }

    /// The middle of `row`, from the top.
    fn y(&self, row: i32) -> i32 {
        MARGIN + (row - self.top_row) * ROW_H + BOX_H / 2
    }
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
    let layout = Layout::new();
    let width = x(layout.columns - 1) + BOX_W + MARGIN;
    let bottom = layout.y(layout.bottom_row) + BOX_H / 2 + MARGIN;
    let height = bottom + LEGEND_H;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="lifecycle" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="lifecycle-title" font-family="system-ui, sans-serif" font-size="12"><title id="lifecycle-title">The order lifecycle</title><defs><marker id="lifecycle-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#5d6675"/></marker></defs>"##
    );
    // The start dot, and its arrow to the start state.
    let (start_x, start_y) = (x(layout.column_of(START)), layout.y(layout.row_of(START)));
    let _ = write!(
        svg,
        r##"<circle cx="{}" cy="{start_y}" r="6" fill="#1d2330"/><line x1="{}" y1="{start_y}" x2="{start_x}" y2="{start_y}" stroke="#5d6675" stroke-width="1.5" marker-end="url(#lifecycle-arrow)"/>"##,
        start_x - 26,
        start_x - 20
    );
    draw_moves(&mut svg, &layout);
    draw_states(&mut svg, &layout);
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="{}" fill="#5d6675">Every order starts at the dot; a double border marks a terminal state (no move leaves it). Any move not drawn is ignored.</text></svg>"##,
        bottom + 6
    );
    svg
}

/// Every move's arrow, with its trigger on its straight stretch.
fn draw_moves(svg: &mut String, layout: &Layout) {
    for (&(from, trigger, to), (span, row)) in MOVES.iter().zip(&layout.stretches) {
        let (first, last) = (span.start, span.end - 1);
        let points = [
            (x(first - 1) + BOX_W, layout.y(layout.row_of(from))),
            (x(first), layout.y(*row)),
            (x(last) + LABEL_W, layout.y(*row)),
            (x(last + 1), layout.y(layout.row_of(to))),
        ];
        let line: Vec<String> = points.iter().map(|(px, py)| format!("{px},{py}")).collect();
        let _ = write!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#5d6675" stroke-width="1.5" marker-end="url(#lifecycle-arrow)"/><text x="{}" y="{}" text-anchor="middle" fill="#5d6675">{}</text>"##,
            line.join(" "),
            x(first) + LABEL_W / 2,
            layout.y(*row) - 5,
            escape(trigger.label())
        );
    }
}

/// Every state's box with its name; a terminal state's with a second, inner border.
fn draw_states(svg: &mut String, layout: &Layout) {
    for state in OrderStatus::ALL {
        let (left, top) = (
            x(layout.column_of(state)),
            layout.y(layout.row_of(state)) - BOX_H / 2,
        );
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
}
