//! The etcd backend against a real etcd: the whole conformance suite, each
//! scenario on its own etcd process (free loopback ports, temporary data dir)
//! so that compaction and revisions of one scenario never touch another.

use std::sync::Arc;

use skiff_control::store::{EtcdConfig, EtcdStore, Store};

use crate::support::etcd::EtcdProcess;

async fn open() -> (Arc<dyn Store>, EtcdProcess) {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .expect("start etcd");
    let store = EtcdStore::connect(EtcdConfig::default().endpoints([etcd.endpoint()]))
        .await
        .expect("connect to etcd");
    (Arc::new(store), etcd)
}

mod conformance {
    crate::store_conformance!(
        #[ignore = "needs etcd; run by make test"]
        open = super::open()
    );
}
