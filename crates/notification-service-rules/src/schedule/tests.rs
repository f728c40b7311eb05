//! Tests of the schedule: quiet hours (across midnight and daylight saving changes), critical
//! kinds, digest windows, times of day and the manual clock.

use super::*;

fn at(zone: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    zone.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn night() -> Quiet {
    Quiet {
        start: parse_time_of_day("23:00").unwrap(),
        end: parse_time_of_day("07:00").unwrap(),
    }
}

fn quiet_in(zone: Tz) -> Schedule {
    Schedule {
        quiet: Some((zone, night())),
        critical: vec!["order.failed".into()],
        digest: None,
    }
}

#[test]
fn a_notice_at_22_59_goes_now_and_one_at_23_01_at_7_the_next_morning() {
    let berlin = chrono_tz::Europe::Berlin;
    let schedule = quiet_in(berlin);
    let before = at(berlin, 2025, 3, 10, 22, 59);
    assert_eq!(
        schedule.decide("order.confirmed", before),
        Decision::Due {
            at: before,
            held: None
        }
    );
    let inside = at(berlin, 2025, 3, 10, 23, 1);
    assert_eq!(
        schedule.decide("order.confirmed", inside),
        Decision::Due {
            at: at(berlin, 2025, 3, 11, 7, 0),
            held: Some(HELD_QUIET)
        }
    );
    // After midnight, the same morning.
    let small_hours = at(berlin, 2025, 3, 11, 3, 30);
    assert_eq!(
        schedule.not_before(small_hours),
        at(berlin, 2025, 3, 11, 7, 0)
    );
    // The end itself is no longer quiet.
    let seven = at(berlin, 2025, 3, 11, 7, 0);
    assert_eq!(schedule.not_before(seven), seven);
    // In UTC that is 06:00 (CET is UTC+1).
    assert_eq!(
        at(berlin, 2025, 3, 11, 7, 0).to_rfc3339(),
        "2025-03-11T06:00:00+00:00"
    );
}

#[test]
fn a_critical_kind_goes_at_once_inside_quiet_hours() {
    let zone = chrono_tz::America::New_York;
    let schedule = quiet_in(zone);
    let inside = at(zone, 2025, 6, 1, 2, 0);
    assert_eq!(
        schedule.decide("order.failed", inside),
        Decision::Due {
            at: inside,
            held: None
        }
    );
}

#[test]
fn quiet_hours_within_one_day_do_not_wrap() {
    let zone = chrono_tz::Asia::Tokyo;
    let lunch = Quiet {
        start: parse_time_of_day("12:00").unwrap(),
        end: parse_time_of_day("13:30").unwrap(),
    };
    assert_eq!(quiet_end(at(zone, 2025, 1, 5, 11, 59), zone, lunch), None);
    assert_eq!(
        quiet_end(at(zone, 2025, 1, 5, 12, 0), zone, lunch),
        Some(at(zone, 2025, 1, 5, 13, 30))
    );
    assert_eq!(quiet_end(at(zone, 2025, 1, 5, 13, 30), zone, lunch), None);
    assert_eq!(quiet_end(at(zone, 2025, 1, 5, 23, 0), zone, lunch), None);
}

#[test]
fn the_end_of_quiet_hours_is_in_the_users_zone_across_daylight_saving_changes() {
    let berlin = chrono_tz::Europe::Berlin;
    let schedule = quiet_in(berlin);
    // The night the clocks go forward (30 March 2025, 02:00 → 03:00): 23:30 CET is
    // 22:30 UTC; 07:00 CEST is 05:00 UTC, 7.5 hours later, not 8.5.
    let evening = at(berlin, 2025, 3, 29, 23, 30);
    assert_eq!(evening.to_rfc3339(), "2025-03-29T22:30:00+00:00");
    assert_eq!(
        schedule.not_before(evening).to_rfc3339(),
        "2025-03-30T05:00:00+00:00"
    );
    // The night they go back (26 October 2025, 03:00 → 02:00): 07:00 CET is 06:00 UTC.
    let evening = at(berlin, 2025, 10, 25, 23, 30);
    assert_eq!(
        schedule.not_before(evening).to_rfc3339(),
        "2025-10-26T06:00:00+00:00"
    );
    // Quiet hours ending inside the skipped hour end when the clocks jump past it.
    let gap = Schedule {
        quiet: Some((
            berlin,
            Quiet {
                start: parse_time_of_day("01:00").unwrap(),
                end: parse_time_of_day("02:30").unwrap(),
            },
        )),
        ..Schedule::default()
    };
    let inside = at(berlin, 2025, 3, 30, 1, 15);
    assert_eq!(
        gap.not_before(inside).to_rfc3339(),
        "2025-03-30T01:00:00+00:00" // 03:00 CEST
    );
    // Ending in the hour that comes twice: the first 02:30 after now. Inside at the
    // second 02:10 (CET, 01:10 UTC) of quiet hours 02:00–02:30: the second 02:30.
    let twice = Schedule {
        quiet: Some((
            berlin,
            Quiet {
                start: parse_time_of_day("02:00").unwrap(),
                end: parse_time_of_day("02:30").unwrap(),
            },
        )),
        ..Schedule::default()
    };
    let second = DateTime::parse_from_rfc3339("2025-10-26T01:10:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        twice.not_before(second).to_rfc3339(),
        "2025-10-26T01:30:00+00:00"
    );
    let first = DateTime::parse_from_rfc3339("2025-10-26T00:10:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        twice.not_before(first).to_rfc3339(),
        "2025-10-26T00:30:00+00:00"
    );
}

#[test]
fn five_notices_within_a_ten_minute_window_are_one_message_and_the_sixth_opens_another() {
    let schedule = Schedule {
        digest: Some(Duration::minutes(10)),
        ..Schedule::default()
    };
    let t0 = at(chrono_tz::UTC, 2025, 5, 1, 12, 0);
    // Each notice joins the open window if it is still to come, else opens one.
    let mut windows: Vec<(DateTime<Utc>, Vec<i64>)> = Vec::new();
    for minute in [0, 2, 4, 7, 9, 11] {
        let now = t0 + Duration::minutes(minute);
        let Decision::Digest { window_due } = schedule.decide("order.confirmed", now) else {
            panic!("a digest user's notice is gathered");
        };
        match windows.last_mut() {
            Some((due, notices)) if joins(*due, now) => notices.push(minute),
            _ => windows.push((window_due, vec![minute])),
        }
    }
    assert_eq!(
        windows,
        [
            (t0 + Duration::minutes(10), vec![0, 2, 4, 7, 9]),
            (t0 + Duration::minutes(21), vec![11]),
        ]
    );
    // Critical kinds are not gathered.
    let critical = Schedule {
        critical: vec!["order.failed".into()],
        ..schedule.clone()
    };
    assert_eq!(
        critical.decide("order.failed", t0),
        Decision::Due { at: t0, held: None }
    );
}

#[test]
fn a_digest_window_closing_inside_quiet_hours_goes_when_they_end() {
    let zone = chrono_tz::UTC;
    let schedule = Schedule {
        digest: Some(Duration::minutes(10)),
        ..quiet_in(zone)
    };
    assert_eq!(
        schedule.window_due(at(zone, 2025, 5, 1, 22, 55)),
        at(zone, 2025, 5, 2, 7, 0)
    );
    assert_eq!(
        schedule.window_due(at(zone, 2025, 5, 1, 22, 40)),
        at(zone, 2025, 5, 1, 22, 50)
    );
}

#[test]
fn times_of_day_are_hh_mm() {
    assert_eq!(parse_time_of_day("07:05"), NaiveTime::from_hms_opt(7, 5, 0));
    assert_eq!(parse_time_of_day("23:59").unwrap().to_string(), "23:59:00");
    for bad in [
        "7:00", "24:00", "12:60", "12-00", "1200", "ab:cd", "+1:00", "07:00:00",
    ] {
        assert_eq!(parse_time_of_day(bad), None, "{bad}");
    }
}

#[test]
fn a_manual_clock_moves_only_when_told() {
    let t0 = at(chrono_tz::UTC, 2025, 5, 1, 12, 0);
    let clock = Clock::manual(t0);
    let shared = clock.clone();
    assert_eq!(clock.now(), t0);
    shared.advance(Duration::minutes(11));
    assert_eq!(clock.now(), t0 + Duration::minutes(11));
    clock.set(t0);
    assert_eq!(shared.now_ms(), t0.timestamp_millis());
}
