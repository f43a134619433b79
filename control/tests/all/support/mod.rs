//! Helpers shared by the integration tests: real components started and
//! cleaned up by the test itself.

pub mod cluster;
pub mod etcd;
