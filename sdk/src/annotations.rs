//! Annotations skiff's components set and read.

/// On a Node: the range of local addresses its agent gives pods
/// (`--pod-address-range`), so that pods of one node have addresses of
/// their own and their container ports are not the node's host ports.
pub const POD_ADDRESS_RANGE: &str = "skiff.dev/pod-address-range";
