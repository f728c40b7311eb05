//! `/`: the README's diagram, live. Each service with its health and outbox, each topic as
//! an arrow from its writer to its readers with events/s, records kept and each reading
//! group's lag; dead letters waiting. The figures update through `/live`.

use axum::extract::State;
use axum::Extension;
use contracts::topics::{Writer, MAP};
use maud::{html, Markup};

use crate::live::Snapshot;
use crate::session::Session;
use crate::Shared;

pub async fn page(State(console): State<Shared>, Extension(session): Extension<Session>) -> Markup {
    let snapshot = console.live.snapshot(&console, session.token()).await;
    super::page("Overview", "/", &session, body(&console, &snapshot))
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "…".into(), |r| format!("{r:.1}"))
}

fn body(console: &Shared, s: &Snapshot) -> Markup {
    let prefix = console.prefix();
    html! {
        div #overview data-live="overview" {
            @if let Some(err) = &s.broker_error {
                (super::notice("error", &format!("The broker could not be read: {err}")))
            }
            section.services {
                @for svc in &s.services {
                    div.service data-service=(svc.name) {
                        h2 { (svc.name) }
                        p {
                            span.health data-live=(format!("service:{}:ready", svc.name))
                                class=(if svc.ready { "up" } else { "down" }) {
                                (if svc.ready { "ready" } else { "not ready" })
                            }
                        }
                        p { "outbox: " span data-live=(format!("service:{}:outbox", svc.name)) {
                            (svc.outbox_pending.map_or("-".to_string(), |n| n.to_string()))
                        } " pending, oldest "
                            span data-live=(format!("service:{}:outboxAge", svc.name)) {
                                (svc.outbox_oldest_age_ms.map_or("-".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0)))
                            }
                        }
                    }
                }
            }
            h2 { "The flow" }
            table.flow {
                thead { tr { th { "writer" } th { "topic" } th { "readers" } th.num { "events/s" } th.num { "records kept" } th { "lag by group" } } }
                tbody {
                    @for flow in MAP {
                        @let name = format!("{prefix}{}", flow.topic);
                        @let figures = s.topics.iter().find(|t| t.name == name);
                        tr {
                            td { (match flow.writer { Writer::Outbox(svc) => svc.name(), Writer::DeadLetters => "consumers that give up" }) }
                            td { a href=(format!("/topics/{}", super::encode(&name))) { (flow.topic) } " " span.event { (flow.event) } }
                            td { (flow.readers.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")) }
                            td.num data-live=(format!("topic:{name}:rate")) { (rate(figures.and_then(|t| t.per_second))) }
                            td.num data-live=(format!("topic:{name}:records")) { (figures.map_or(0, |t| t.records)) }
                            td data-live=(format!("topic:{name}:lag")) {
                                (figures.map(|t| t.groups.iter().map(|(g, l)| format!("{g}: {l}")).collect::<Vec<_>>().join(", ")).unwrap_or_default())
                            }
                        }
                    }
                }
            }
            p.deadletters {
                "Dead letters kept: "
                a href="/dead-letters" { b data-live="deadLetters" { (s.dead_letters) } }
            }
            p.small { "Updated " span data-live="at" { (super::time(Some(s.at_ms))) } " UTC, every 2 s." }
        }
    }
}
