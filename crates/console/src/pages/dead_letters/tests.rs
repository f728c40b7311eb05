//! The tests of the dead-letter list: the table and the results of a replay.

use platform::dead_letters::read::Summary;
use serde_json::json;

use super::*;

#[test]
fn a_dead_letter_shows_what_the_service_left_out_as_before_and_is_escaped() {
    let letters: Vec<Summary> = serde_json::from_value(json!([{
        "topic": "order.created.DLT", "partition": 0, "offset": 7, "key": null,
        "orderId": null, "error": "Boom: <no>", "attempts": null, "replayCount": 1,
        "replayed": 2, "parked": false, "errorClass": null, "failureKind": null,
        "history": [{
            "from": "order.created.DLT/0/3", "error": "Boom", "attempts": 3,
            "replayCount": 1, "by": "console:ops", "at": "2026-01-01T10:00:00.000Z",
            "edited": true
        }],
        "originalTopic": "order.created", "originalPartition": 1, "originalOffset": null,
        "consumerGroup": null, "timestampMs": null
    }]))
    .expect("GET /admin/dlt's answer");
    let session = crate::session::Sessions::default().open();
    let html = table(&session, &View::default(), &letters).into_string();
    for shown in [
        "<tr data-order=\"\">",
        "value=\"order.created.DLT:0:7\"",
        ">0:7</a>",
        "<td>-</td>",
        "<td class=\"error\">Boom: &lt;no&gt;</td>",
        "<td class=\"num\"></td>",
        "<td>order.created</td>",
        "<td class=\"num\">2</td>",
        "from order.created.DLT/0/3 by console:ops at 2026-01-01T10:00:00.000Z (edited), after: Boom",
        "/dead-letters/edit?topic=order.created.DLT&amp;partition=0&amp;offset=7",
    ] {
        assert!(html.contains(shown), "{shown} in {html}");
    }
}

#[test]
fn replay_results_show_the_order_and_the_edit_only_when_there_is_one() {
    let rows: Vec<ReplayResult> = serde_json::from_value(json!([
        {"position": "t/0/1", "orderId": null, "targetTopic": "order.created",
         "replayCount": 1, "outcome": "would-replay"},
        {"position": "t/0/2", "orderId": 12, "targetTopic": "order.created",
         "replayCount": 2, "outcome": "replayed", "edited": true}
    ]))
    .expect("POST /admin/dlt/replay's answer");
    let html = results_table(&rows).into_string();
    assert!(
        html.contains("<td>t/0/1</td><td></td><td>order.created</td><td>1</td><td class=\"outcome\">would-replay</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td>12</td>") && html.contains(">replayed (edited)</td>"),
        "{html}"
    );
}
