use super::*;

#[test]
fn the_answers_of_the_dead_letter_api_read_back_as_they_were_written() {
    let summary = Summary {
        topic: "order.created.DLT".into(),
        partition: 0,
        offset: 7,
        key: Some("12".into()),
        order_id: Some(12),
        error: "Boom: no".into(),
        attempts: Some(3),
        replay_count: 0,
        replayed: 1,
        parked: false,
        error_class: Some("Boom".into()),
        failure_kind: None,
        history: vec![Replayed {
            from: "order.created.DLT/0/3".into(),
            error: "Boom: no".into(),
            attempts: None,
            replay_count: 1,
            by: "console:ops".into(),
            at: "2026-01-01T10:00:00.000Z".into(),
            edited: true,
        }],
        value_omitted: None,
        original_value_bytes: None,
        original_topic: "order.created".into(),
        original_partition: Some(0),
        original_offset: None,
        consumer_group: None,
        timestamp_ms: Some(1_767_261_600_000),
    };
    let json = serde_json::to_string(&summary).unwrap();
    let back: Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);

    // `edited` is left out when false, and reads back as false.
    let result = ReplayResult {
        position: "order.created.DLT/0/7".into(),
        order_id: None,
        target_topic: "order.created".into(),
        replay_count: 1,
        outcome: "would-replay".into(),
        edited: false,
    };
    let json = serde_json::to_string(&result).unwrap();
    assert!(!json.contains("edited"), "{json}");
    assert_eq!(serde_json::from_str::<ReplayResult>(&json).unwrap(), result);

    let report = RedriveReport {
        dry_run: true,
        matched: 2,
        selected: 1,
        replayed: 0,
        would_replay: 1,
        truncated: true,
        elapsed_ms: 12,
        results: vec![result],
    };
    let json = serde_json::to_string(&report).unwrap();
    let back: RedriveReport = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
}
