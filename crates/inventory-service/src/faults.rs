//! Fault injection, switchable at run time (`GET`/`PUT /admin/faults`):
//! - an order with an item of the **fail SKU** (`FAIL`) fails every attempt, so it is retried
//!   and then dead-lettered;
//! - an order with an item of the **flaky SKU** (`FLAKY`) fails its first attempt only, so a
//!   retry succeeds and nothing reaches the DLT.
//!
//! An empty SKU switches that fault off. A `PUT` names the switches it changes (one field
//! switches one fault: `{"failSku": ""}` leaves `flakySku` as it is). What a `PUT` sets is
//! stored in the database: it outlives a restart and wins over `--fail-sku` /
//! `--flaky-sku`, which give only the value of a switch never set through the API.

use std::sync::{Arc, RwLock};

use clap::Args;
use contracts::OrderCreated;
use platform::consumer::HandleError;
use serde::{Deserialize, Serialize};

/// The fault switches' values at start, as flags: those of a switch never set through the
/// API (`inventory-service` and `openorder up` both take them).
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct FaultFlags {
    /// Orders with an item of this SKU fail every attempt, for fault injection (empty disables).
    #[arg(
        long,
        env = "OPENORDER_FAIL_SKU",
        default_value = "FAIL",
        hide_short_help = true,
        help_heading = "Inventory"
    )]
    pub fail_sku: String,

    /// Orders with an item of this SKU fail their first attempt only (empty disables).
    #[arg(
        long,
        env = "OPENORDER_FLAKY_SKU",
        default_value = "FLAKY",
        hide_short_help = true,
        help_heading = "Inventory"
    )]
    pub flaky_sku: String,
}

impl Default for FaultFlags {
    /// The flags' defaults: `FAIL` and `FLAKY`.
    fn default() -> Self {
        Self {
            fail_sku: "FAIL".into(),
            flaky_sku: "FLAKY".into(),
        }
    }
}

impl FaultFlags {
    /// The switches these flags set.
    pub fn config(&self) -> FaultConfig {
        FaultConfig {
            fail_sku: self.fail_sku.clone(),
            flaky_sku: self.flaky_sku.clone(),
        }
    }
}

/// The fault switches: orders with an item of `failSku` fail every attempt, of `flakySku`
/// their first attempt only (empty: off).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    pub fail_sku: String,
    pub flaky_sku: String,
}

/// A `PUT /admin/faults` body: the switches to change; an absent field stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultChange {
    pub fail_sku: Option<String>,
    pub flaky_sku: Option<String>,
}

impl FaultConfig {
    /// This configuration with `change` applied.
    pub fn with(&self, change: &FaultChange) -> Self {
        Self {
            fail_sku: change
                .fail_sku
                .clone()
                .unwrap_or_else(|| self.fail_sku.clone()),
            flaky_sku: change
                .flaky_sku
                .clone()
                .unwrap_or_else(|| self.flaky_sku.clone()),
        }
    }

    /// This configuration with the stored switches (name `fail` or `flaky`, SKU) over it.
    pub fn with_stored(&self, stored: &[(String, String)]) -> Self {
        let mut out = self.clone();
        for (name, sku) in stored {
            match name.as_str() {
                "fail" => out.fail_sku = sku.clone(),
                "flaky" => out.flaky_sku = sku.clone(),
                _ => {}
            }
        }
        out
    }
}

/// The current fault configuration, shared by the consumer and the admin API.
#[derive(Clone, Debug)]
pub struct Faults(Arc<RwLock<FaultConfig>>);

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Self(Arc::new(RwLock::new(config)))
    }

    pub fn get(&self) -> FaultConfig {
        self.0
            .read()
            .expect("never poisoned: no panics under the lock")
            .clone()
    }

    pub fn set(&self, config: FaultConfig) {
        *self
            .0
            .write()
            .expect("never poisoned: no panics under the lock") = config;
    }

    /// Fails `order` on `attempt` if a fault says so.
    pub fn check(&self, order: &OrderCreated, attempt: u32) -> Result<(), HandleError> {
        let config = self.get();
        let has = |sku: &str| !sku.is_empty() && order.items.iter().any(|i| i.sku == sku);
        if has(&config.fail_sku) {
            return Err(HandleError::transient(
                "openorder.SimulatedFailure",
                format!(
                    "order {} has an item with SKU {} (fault injection)",
                    order.order_id, config.fail_sku
                ),
            ));
        }
        if has(&config.flaky_sku) && attempt == 1 {
            return Err(HandleError::transient(
                "openorder.SimulatedFlakiness",
                format!(
                    "order {} has an item with SKU {}: failing its first attempt (fault injection)",
                    order.order_id, config.flaky_sku
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::LineItem;

    fn order(sku: &str) -> OrderCreated {
        OrderCreated {
            event_id: contracts::new_event_id(),
            order_id: 1,
            user_id: 1,
            items: vec![LineItem {
                sku: sku.into(),
                qty: 1,
            }],
            created_at: chrono::Utc::now(),
            contact: None,
        }
    }

    fn faults() -> Faults {
        Faults::new(FaultConfig {
            fail_sku: "FAIL".into(),
            flaky_sku: "FLAKY".into(),
        })
    }

    #[test]
    fn fail_fails_every_attempt() {
        let f = faults();
        for attempt in 1..=5 {
            assert!(f.check(&order("FAIL"), attempt).is_err());
        }
    }

    #[test]
    fn flaky_fails_only_the_first_attempt() {
        let f = faults();
        assert!(f.check(&order("FLAKY"), 1).is_err());
        assert!(f.check(&order("FLAKY"), 2).is_ok());
    }

    #[test]
    fn a_change_names_only_the_switches_it_changes() {
        let config = faults().get();
        let change = FaultChange {
            fail_sku: Some(String::new()),
            flaky_sku: None,
        };
        assert_eq!(
            config.with(&change),
            FaultConfig {
                fail_sku: String::new(),
                flaky_sku: "FLAKY".into()
            }
        );
        let stored = vec![("flaky".to_string(), "ABC-001".to_string())];
        assert_eq!(config.with_stored(&stored).flaky_sku, "ABC-001");
        assert_eq!(config.with_stored(&stored).fail_sku, "FAIL");
    }

    #[test]
    fn an_empty_sku_switches_the_fault_off() {
        let f = faults();
        f.set(FaultConfig {
            fail_sku: String::new(),
            flaky_sku: String::new(),
        });
        assert!(f.check(&order("FAIL"), 1).is_ok());
        assert!(f.check(&order(""), 1).is_ok());
    }
}
