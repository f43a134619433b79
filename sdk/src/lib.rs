//! The shared vocabulary of skiff: API types, skiff's well-known labels,
//! annotations and RuntimeClass names, the typed client, and the runtime trait
//! that runtimes implement (`runtime`).
//!
//! Architecture invariant: this crate depends on no server and no runtime crate.

pub mod annotations;
pub mod client;
pub mod events;
pub mod labels;
pub mod quantity;
pub mod runtime;
pub mod runtime_class;

/// An error and its sources, joined with `: ` (a source whose text the
/// outer message already ends with is not repeated), for messages that
/// users read: statuses, events, logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
