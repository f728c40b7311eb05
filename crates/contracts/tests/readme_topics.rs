//! The book's topic table (docs/book/src/concepts/architecture.md) says what the topic map
//! says: the same topics, and for each the services that write and read it, no more and no fewer.

use contracts::topics::{writers_of, MAP};
use contracts::Service;

const PAGE: &str = include_str!("../../../docs/book/src/concepts/architecture.md");

/// `(topic, written by, read by)` of every row of the table under `| topic | written by |`.
fn rows() -> Vec<(String, String, String)> {
    let table = PAGE
        .split("| topic | written by | read by |")
        .nth(1)
        .expect("the architecture page has the topic table");
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_string(),
                cells[2].to_string(),
                cells[3].to_string(),
            )
        })
        .collect()
}

/// The services a cell names.
fn named(cell: &str) -> Vec<Service> {
    Service::ALL
        .into_iter()
        .filter(|s| cell.contains(s.name()))
        .collect()
}

#[test]
fn the_topic_table_lists_every_topic_of_the_map_with_its_writers_and_readers() {
    let rows = rows();
    for flow in MAP {
        let row = rows
            .iter()
            .find(|(topic, _, _)| topic == flow.topic)
            .unwrap_or_else(|| panic!("the book's topic table has no row for {}", flow.topic));
        assert_eq!(named(&row.1), writers_of(flow), "writers of {}", flow.topic);
        assert_eq!(named(&row.2), flow.readers, "readers of {}", flow.topic);
    }
    for (topic, _, _) in &rows {
        assert!(
            topic.starts_with('<') || MAP.iter().any(|f| f.topic == topic),
            "the book's topic table lists {topic}, which the topic map does not have"
        );
    }
}
