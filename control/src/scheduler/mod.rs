//! The scheduler: places each new pod on a node. `placement` is the pure
//! decision (pod, node snapshot) → node or reasons; the loop around it
//! watches pods and nodes through the API and binds.

pub mod placement;
