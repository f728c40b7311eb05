//! Topic names, the prefix, dead-letter naming and the topic map.

use super::*;

#[test]
fn plain_topics_are_the_seeds_names() {
    let t = Topics::default();
    assert_eq!(t.order_created(), "order.created");
    assert_eq!(t.inventory_reserved(), "inventory.reserved");
    assert_eq!(t.inventory_rejected(), "inventory.rejected");
    assert_eq!(t.order_created_dlt(), "order.created.DLT");
}

/// The map's topics that inventory-service and order-service both write or read, in the
/// map's order: every one but `notification.failed`.
const ORDER_FLOW: [&str; 6] = [
    "order.created",
    "inventory.reserved",
    "inventory.rejected",
    "order.cancelled",
    "inventory.released",
    "order.created.DLT",
];

#[test]
fn each_service_creates_what_it_writes_reads_and_dead_letters() {
    let flow_then = |own: &[&'static str]| [ORDER_FLOW.as_slice(), own].concat();
    assert_eq!(
        topics_of(Service::Inventory),
        flow_then(&[
            "order.cancelled.DLT",
            "order.created.PARKED",
            "order.cancelled.PARKED",
        ])
    );
    assert_eq!(
        topics_of(Service::Order),
        flow_then(&[
            "inventory.reserved.DLT",
            "inventory.rejected.DLT",
            "inventory.released.DLT",
            "inventory.reserved.PARKED",
            "inventory.rejected.PARKED",
            "inventory.released.PARKED",
        ])
    );
    let notification = topics_of(Service::Notification);
    assert!(notification.contains(&"notification.failed".to_string()));
    assert!(notification.contains(&"order.created.DLT".to_string()));
    assert!(!notification.contains(&"order.cancelled".to_string()));
    assert!(
        !notification.contains(&"order.created.DLT.DLT".to_string()),
        "dead letters of dead letters are not created up front"
    );
    assert!(!notification.contains(&"order.created.DLT.PARKED".to_string()));
}

#[test]
fn a_record_replayed_before_that_fails_again_goes_to_the_parking_lot() {
    assert_eq!(
        Topics::dead_letter_topic_for("t1.order.created", 0),
        "t1.order.created.DLT"
    );
    assert_eq!(
        Topics::dead_letter_topic_for("t1.order.created", 1),
        "t1.order.created.PARKED"
    );
    assert_eq!(
        Topics::dead_letter_topic_for("t1.order.created.DLT", 2),
        "t1.order.created.DLT.DLT",
        "a dead letter's own failure is no replay's"
    );
}

#[test]
fn a_dead_letter_topic_is_written_by_the_readers_of_its_original() {
    let dlt = flow(ORDER_CREATED_DLT).unwrap();
    assert_eq!(writers_of(dlt), [Service::Inventory, Service::Notification]);
    assert!(consumes(Service::Order, ORDER_CREATED_DLT));
    assert!(!consumes(Service::Inventory, ORDER_CREATED_DLT));
}

#[test]
fn every_event_type_is_the_topic_the_map_gives_it() {
    use crate::events::*;
    for (type_, name) in [
        (OrderCreated::TYPE, "OrderCreated"),
        (OrderCancelled::TYPE, "OrderCancelled"),
        (InventoryReserved::TYPE, "InventoryReserved"),
        (InventoryRejected::TYPE, "InventoryRejected"),
        (InventoryReleased::TYPE, "InventoryReleased"),
        (NotificationFailed::TYPE, "NotificationFailed"),
    ] {
        assert_eq!(flow(type_).map(|f| f.event), Some(name), "{type_}");
    }
}

#[test]
fn a_prefix_goes_in_front_of_topics_and_groups() {
    let t = Topics::with_prefix("t1.");
    assert_eq!(t.order_created_dlt(), "t1.order.created.DLT");
    assert_eq!(t.group("inventory-service"), "t1.inventory-service");
    assert_eq!(t.unprefixed("t1.inventory.reserved"), "inventory.reserved");
    assert_eq!(t.inventory_pattern(), "^t1\\.inventory\\.[A-Za-z0-9_-]+$");
}
