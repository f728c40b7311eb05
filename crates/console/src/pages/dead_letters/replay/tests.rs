//! The tests of the replay form.

use super::*;

#[test]
fn a_replay_form_takes_every_pick_and_the_defaults_of_what_it_leaves_out() {
    let form: ReplayForm = crate::form::decode(
        b"csrf=c&pick=orders.DLT%3A0%3A2&pick=a%3Ab%3A1%3A7&force=&maxReplays=",
    )
    .unwrap();
    assert_eq!(form.csrf, "c");
    assert_eq!(form.pick, ["orders.DLT:0:2", "a:b:1:7"]);
    assert_eq!(form.which, "picked");
    assert_eq!(form.mode, "dry-run");
    assert_eq!(form.topic, None);
    assert_eq!(form.force.as_deref(), Some(""));
    assert_eq!(form.max_replays.as_deref(), Some(""));
    assert!(form.checked().is_ok());
}

#[test]
fn a_replay_form_of_all_of_a_topic_keeps_it_even_empty() {
    let form: ReplayForm =
        crate::form::decode(b"which=all&topic=&mode=replay&view=parked").unwrap();
    assert_eq!(form.which, "all");
    assert_eq!(form.topic.as_deref(), Some(""));
    assert_eq!(form.mode, "replay");
    assert_eq!(form.view, "parked");
}

#[test]
fn a_replay_form_picking_more_than_a_thousand_is_refused() {
    let body = vec!["pick=t%3A0%3A1"; MAX_PICKS + 1].join("&");
    let form: ReplayForm = crate::form::decode(body.as_bytes()).unwrap();
    assert!(form.checked().is_err());
}
