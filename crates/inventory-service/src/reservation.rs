//! The reservation rule, as a pure function: given the stock on hand and an order's lines,
//! reserve all of them or none. No database, no broker: tested exhaustively below.

use std::collections::{BTreeMap, HashMap};

use contracts::{LineItem, RejectionReason, Shortage};

/// What to do with an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Take these quantities (one line per SKU, lines of the same SKU summed).
    Reserve(Vec<LineItem>),
    /// Take nothing, for this reason; `shortages` lists every line that cannot be served.
    Reject {
        reason: RejectionReason,
        shortages: Vec<Shortage>,
    },
}

/// Decides an order against `available` (SKU → units available). A SKU missing from
/// `available` is unknown; the reason is `UNKNOWN_SKU` if any line's SKU is unknown,
/// else `OUT_OF_STOCK`. Lines naming the same SKU are summed before checking.
pub fn reserve(available: &HashMap<String, i64>, items: &[LineItem]) -> Decision {
    let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
    for item in items {
        *wanted.entry(item.sku.as_str()).or_default() += item.qty;
    }
    let mut shortages = Vec::new();
    let mut unknown = false;
    for (&sku, &requested) in &wanted {
        match available.get(sku) {
            Some(&on_hand) if on_hand >= requested => {}
            Some(&on_hand) => shortages.push(Shortage {
                sku: sku.to_string(),
                requested,
                available: on_hand.max(0),
            }),
            None => {
                unknown = true;
                shortages.push(Shortage {
                    sku: sku.to_string(),
                    requested,
                    available: 0,
                });
            }
        }
    }
    if shortages.is_empty() {
        Decision::Reserve(
            wanted
                .into_iter()
                .map(|(sku, qty)| LineItem {
                    sku: sku.to_string(),
                    qty,
                })
                .collect(),
        )
    } else {
        let reason = if unknown {
            RejectionReason::UnknownSku
        } else {
            RejectionReason::OutOfStock
        };
        Decision::Reject { reason, shortages }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(pairs: &[(&str, i64)]) -> HashMap<String, i64> {
        pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    fn line(sku: &str, qty: i64) -> LineItem {
        LineItem {
            sku: sku.into(),
            qty,
        }
    }

    #[test]
    fn an_order_within_stock_is_reserved_whole() {
        let decision = reserve(&stock(&[("A", 5), ("B", 1)]), &[line("A", 5), line("B", 1)]);
        assert_eq!(
            decision,
            Decision::Reserve(vec![line("A", 5), line("B", 1)])
        );
    }

    #[test]
    fn one_short_line_rejects_the_whole_order_and_names_only_that_line() {
        let decision = reserve(&stock(&[("A", 5), ("B", 1)]), &[line("A", 2), line("B", 2)]);
        assert_eq!(
            decision,
            Decision::Reject {
                reason: RejectionReason::OutOfStock,
                shortages: vec![Shortage {
                    sku: "B".into(),
                    requested: 2,
                    available: 1
                }],
            }
        );
    }

    #[test]
    fn an_unknown_sku_is_rejected_as_unknown_even_beside_a_short_one() {
        let decision = reserve(&stock(&[("A", 0)]), &[line("A", 1), line("NOPE", 1)]);
        match decision {
            Decision::Reject { reason, shortages } => {
                assert_eq!(reason, RejectionReason::UnknownSku);
                assert_eq!(shortages.len(), 2);
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn lines_of_the_same_sku_are_summed_before_checking() {
        let s = stock(&[("A", 3)]);
        assert_eq!(
            reserve(&s, &[line("A", 2), line("A", 1)]),
            Decision::Reserve(vec![line("A", 3)])
        );
        assert!(matches!(
            reserve(&s, &[line("A", 2), line("A", 2)]),
            Decision::Reject { .. }
        ));
    }

    #[test]
    fn every_order_of_up_to_three_lines_is_reserved_exactly_when_each_sku_suffices() {
        // Exhaustive over small stocks and quantities: the rule never over-reserves and
        // never rejects an order that fits.
        let skus = ["A", "B", "C"];
        for a in 0..=3 {
            for b in 0..=3 {
                let s = stock(&[("A", a), ("B", b)]);
                for qa in 1..=4 {
                    for qb in 1..=4 {
                        for third in skus {
                            let items = vec![line("A", qa), line("B", qb), line(third, 1)];
                            let mut need = HashMap::new();
                            for i in &items {
                                *need.entry(i.sku.clone()).or_insert(0) += i.qty;
                            }
                            let fits = need
                                .iter()
                                .all(|(k, q)| s.get(k).is_some_and(|have| have >= q));
                            match reserve(&s, &items) {
                                Decision::Reserve(taken) => {
                                    assert!(fits, "{items:?} reserved against {s:?}");
                                    for t in taken {
                                        assert!(t.qty <= s[&t.sku]);
                                    }
                                }
                                Decision::Reject { shortages, .. } => {
                                    assert!(!fits, "{items:?} rejected against {s:?}");
                                    assert!(!shortages.is_empty());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
