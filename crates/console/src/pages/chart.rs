//! Small line charts drawn on the server as inline SVG (no charting script), for the
//! overview's "Lag in time": one figure over the samples the console keeps
//! ([`crate::history`]). The x axis is a span of time shared by every chart of a page, so
//! that they line up; the y axis runs from 0 to the series' highest value (at least 1). A
//! gap (a sample without the value: a service that did not answer) splits the line; a
//! value alone between gaps is a dot. The highest and the latest value are written above
//! the line. Every text goes through `maud`, which escapes it.

use maud::{html, Markup};

use crate::history::Point;

/// The chart's size (its `viewBox`), in pixels as drawn.
pub const WIDTH: i32 = 240;
pub const HEIGHT: i32 = 48;
/// The line's top and bottom: the labels' row is above it.
const TOP: f64 = 13.0;
const BOTTOM: f64 = 46.0;

/// What a series counts, for its labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    Seconds,
    Records,
}

/// A series as drawn: each run of values without a gap, as a polyline's `points`; the
/// values alone between gaps, as dots; the top of the y axis; the highest value and the
/// latest sample's.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    pub lines: Vec<String>,
    pub dots: Vec<(f64, f64)>,
    pub top: f64,
    pub highest: Option<f64>,
    pub latest: Option<f64>,
}

/// Lays `series` out over `span` (the first and last time of the x axis, in milliseconds).
pub fn plot(series: &[Point], span: (i64, i64)) -> Plot {
    let highest = series.iter().filter_map(|(_, v)| *v).reduce(f64::max);
    let top = highest.unwrap_or(0.0).max(1.0);
    let (from, to) = span;
    let x = |at: i64| {
        let width = f64::from(WIDTH);
        if to > from {
            ((at - from) as f64 / (to - from) as f64 * width).clamp(0.0, width)
        } else {
            width
        }
    };
    let y = |v: f64| BOTTOM - v.max(0.0) / top * (BOTTOM - TOP);
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut in_run = false;
    for &(at, value) in series {
        match value {
            Some(v) => {
                if !in_run {
                    runs.push(Vec::new());
                    in_run = true;
                }
                if let Some(run) = runs.last_mut() {
                    run.push((x(at), y(v)));
                }
            }
            None => in_run = false,
        }
    }
    let (mut lines, mut dots) = (Vec::new(), Vec::new());
    for run in runs {
        match run.as_slice() {
            [one] => dots.push(*one),
            points => lines.push(polyline(points)),
        }
    }
    Plot {
        lines,
        dots,
        top,
        highest,
        latest: series.last().and_then(|(_, v)| *v),
    }
}

/// A polyline's `points`: `x,y` pairs to the tenth of a pixel.
fn polyline(points: &[(f64, f64)]) -> String {
    let pairs: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    pairs.join(" ")
}

/// `value` as a label: seconds to the tenth under 10 s, then in their two largest units;
/// records as a whole number; `-` for none.
pub fn figure(value: Option<f64>, unit: Unit) -> String {
    match (value, unit) {
        (None, _) => "-".into(),
        (Some(v), Unit::Seconds) if v < 10.0 => format!("{v:.1} s"),
        (Some(v), Unit::Seconds) => super::age(v.round() as i64),
        (Some(v), Unit::Records) => format!("{}", v.round() as i64),
    }
}

/// The chart of `series` over `span`: an `<svg data-chart="{id}">` with `title` as its
/// `<title>`.
pub fn chart(id: &str, title: &str, series: &[Point], span: (i64, i64), unit: Unit) -> Markup {
    let plot = plot(series, span);
    // SVG elements are closed explicitly (`{}`): inside HTML, a start tag left open would
    // take the elements after it as its children.
    html! {
        svg.plot data-chart=(id) viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            width=(WIDTH) height=(HEIGHT) role="img" {
            title { (title) }
            line.axis x1="0" y1=(BOTTOM) x2=(WIDTH) y2=(BOTTOM) {}
            @for points in &plot.lines {
                polyline points=(points) fill="none" stroke="currentColor" {}
            }
            @for (x, y) in &plot.dots {
                circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="1.5" {}
            }
            text.max x="1" y="10" { "max " (figure(plot.highest, unit)) }
            text.latest x=(WIDTH - 1) y="10" text-anchor="end" {
                "now " (figure(plot.latest, unit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_drawn_as_lines_split_at_its_gaps_on_an_axis_from_zero_to_its_highest() {
        let series: [Point; 5] = [
            (0, Some(0.0)),
            (1_000, Some(2.0)),
            (2_000, None),
            (3_000, Some(1.0)),
            (4_000, Some(1.0)),
        ];
        let plot = plot(&series, (0, 4_000));
        assert_eq!(plot.lines, ["0.0,46.0 60.0,13.0", "180.0,29.5 240.0,29.5"]);
        assert!(plot.dots.is_empty());
        assert_eq!(
            (plot.top, plot.highest, plot.latest),
            (2.0, Some(2.0), Some(1.0))
        );
    }

    #[test]
    fn a_value_alone_between_gaps_is_a_dot_and_a_latest_gap_has_no_latest_value() {
        let series: [Point; 4] = [
            (0, Some(4.0)),
            (1_000, None),
            (2_000, Some(2.0)),
            (4_000, None),
        ];
        let plot = plot(&series, (0, 4_000));
        assert!(plot.lines.is_empty());
        assert_eq!(plot.dots, [(0.0, 13.0), (120.0, 29.5)]);
        assert_eq!((plot.highest, plot.latest), (Some(4.0), None));
    }

    #[test]
    fn the_y_axis_goes_up_to_one_at_least_and_one_sample_sits_at_the_right_edge() {
        let flat = plot(&[(0, Some(0.0)), (5_000, Some(0.0))], (0, 5_000));
        assert_eq!(flat.lines, ["0.0,46.0 240.0,46.0"]);
        assert_eq!((flat.top, flat.highest), (1.0, Some(0.0)));
        let one = plot(&[(7_000, Some(0.5))], (7_000, 7_000));
        assert_eq!(one.dots, [(240.0, 29.5)]);
        let none = plot(&[], (0, 0));
        assert_eq!((none.top, none.highest, none.latest), (1.0, None, None));
    }

    #[test]
    fn labels_are_seconds_to_the_tenth_then_in_units_and_records_whole() {
        assert_eq!(figure(Some(2.345), Unit::Seconds), "2.3 s");
        assert_eq!(figure(Some(125.0), Unit::Seconds), "2 min 5 s");
        assert_eq!(figure(Some(41.6), Unit::Records), "42");
        assert_eq!(figure(None, Unit::Records), "-");
    }

    #[test]
    fn a_chart_is_an_svg_named_and_titled_with_its_labels_and_every_text_escaped() {
        let series: [Point; 2] = [(0, Some(2.0)), (1_000, Some(1.0))];
        let svg = chart(
            "consumer:<c>",
            "lag of <c>",
            &series,
            (0, 1_000),
            Unit::Seconds,
        );
        let html = svg.into_string();
        let head = r#"<svg class="plot" data-chart="consumer:&lt;c&gt;" "#;
        assert!(html.starts_with(head), "{html}");
        assert!(html.contains(r#"viewBox="0 0 240 48""#), "{html}");
        assert!(html.contains("<title>lag of &lt;c&gt;</title>"), "{html}");
        let line = r#"<polyline points="0.0,13.0 240.0,29.5" fill="none""#;
        assert!(html.contains(line), "{html}");
        assert!(html.contains("</polyline>"), "{html}");
        assert!(html.contains(">max 2.0 s</text>"), "{html}");
        assert!(html.contains(">now 1.0 s</text>"), "{html}");
        assert!(html.ends_with("</svg>"), "{html}");
    }
}
