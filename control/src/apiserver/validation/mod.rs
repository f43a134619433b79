//! Validation as Kubernetes does it: every check of an object, returning all
//! failed fields at once as [`Cause`]s (the API answers 422 Invalid with
//! them). Pure functions over typed objects, tested as tables.
//!
//! Messages and field paths are Kubernetes' (`pkg/apis/*/validation` and
//! apimachinery), so kubectl users read what they would read against a real
//! cluster. Validation runs after defaulting; where Kubernetes always
//! defaults a field (a protocol, a restart policy, a strategy), an absent
//! value is read as that default rather than reported missing.

use super::error::Cause;

pub mod field;
pub mod meta;
pub use skiff_sdk::quantity;
pub mod rules;

mod config;
mod endpoints;
mod event;
mod lease;
mod namespace;
mod node;
mod pod;
mod resources;
mod runtime_class;
mod service;
mod workloads;

pub use meta::{
    NameRule, validate_label_selector, validate_object_meta, validate_object_meta_update,
};
pub use quantity::{ParsedQuantity, QuantityError};

/// Validation of one kind of object.
pub trait Validate {
    /// Checks a new object (after defaulting, before it is stored).
    fn validate_create(&self) -> Vec<Cause>;

    /// Checks an update of `old` to `self`: everything `validate_create`
    /// checks plus immutable fields.
    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let _ = old;
        self.validate_create()
    }
}

/// Drops repeated causes, keeping the first of each (Kubernetes reports
/// some checks twice on update; one is enough).
fn dedup(causes: Vec<Cause>) -> Vec<Cause> {
    let mut unique: Vec<Cause> = Vec::with_capacity(causes.len());
    for cause in causes {
        if !unique.contains(&cause) {
            unique.push(cause);
        }
    }
    unique
}

#[cfg(test)]
pub(crate) mod testing {
    //! The shared shape of the validation tables.

    use crate::apiserver::error::{Cause, CauseType};

    /// Each cause as `(reason, field path)`, the part the tables assert.
    pub fn summary(causes: &[Cause]) -> Vec<(CauseType, &str)> {
        causes.iter().map(|c| (c.kind, c.field.as_str())).collect()
    }
}
