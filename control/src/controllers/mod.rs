//! The controllers that keep desired state: each one a `reconcile` plus an
//! `error_policy`, level-triggered and idempotent, talking only to the API
//! (kube-rs' `Controller` drives them). [`run`] composes them with the
//! scheduler under leader election: with several servers on one store,
//! exactly one runs them.
//!
//! Every kind is watched once ([`informer::Informer`]); controllers share
//! the caches and the change streams.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;

use crate::leader::{Elector, LeaderElection};

pub mod deployment;
pub mod endpoints;
pub use skiff_sdk::events;
pub mod garbage_collector;
pub mod informer;
pub mod node_lifecycle;
pub mod pods;
pub mod replica_set;

use events::Recorder;
use informer::Informer;

/// Why a reconcile failed; the controller retries after a pause.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// An API call failed.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    /// A workload object has no pod template.
    #[error("{0} has no pod template")]
    NoTemplate(String),
}

/// The lease in `kube-system` that decides which server runs the scheduler
/// and the controllers.
pub const LEADER_LEASE: &str = "skiff-controllers";

/// Settings of the controllers and their election.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// This server's name in the election (`holderIdentity`) and in events.
    pub identity: String,
    /// Election timing.
    pub leader_election: LeaderElection,
    /// A node whose Lease is older than this goes `Ready=Unknown` (40 s).
    pub node_monitor_grace_period: Duration,
    /// The range node pod CIDRs are carved from (`10.42.0.0/16`).
    pub cluster_cidr: String,
    /// The prefix length of each node's pod CIDR (24).
    pub node_cidr_mask_size: u8,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            identity: "skiff".to_owned(),
            leader_election: LeaderElection::default(),
            node_monitor_grace_period: Duration::from_secs(40),
            cluster_cidr: "10.42.0.0/16".to_owned(),
            node_cidr_mask_size: 24,
        }
    }
}

/// Campaigns for leadership and, while leading, runs the scheduler and
/// every controller; stops them when leadership is lost and campaigns
/// again, until `shutdown` resolves (then the lease is released so that
/// another server takes over at once).
pub async fn run(client: Client, options: ControllerOptions, shutdown: impl Future<Output = ()>) {
    let mut elector = Elector::new(
        client.clone(),
        "kube-system",
        LEADER_LEASE,
        &options.identity,
        options.leader_election.clone(),
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = elector.acquire() => {}
        }
        let lost = tokio::select! {
            () = &mut shutdown => false,
            () = elector.hold() => true,
            () = lead(client.clone(), &options) => true,
        };
        if !lost {
            elector.release().await;
            return;
        }
        tracing::warn!("stopped the scheduler and controllers; campaigning again");
    }
}

/// Everything that runs while leading. Returns only if every part ended.
async fn lead(client: Client, options: &ControllerOptions) {
    let config = watcher::Config::default();
    let all = |client: &Client| client.clone();
    let pods = Informer::<Pod>::new(Api::all(all(&client)), config.clone());
    let nodes = Informer::<Node>::new(Api::all(all(&client)), config.clone());
    let replica_sets = Informer::<ReplicaSet>::new(Api::all(all(&client)), config.clone());
    let deployments = Informer::<Deployment>::new(Api::all(all(&client)), config.clone());
    let services = Informer::<Service>::new(Api::all(all(&client)), config.clone());
    let endpoints = Informer::<Endpoints>::new(Api::all(all(&client)), config.clone());
    let slices = Informer::<EndpointSlice>::new(Api::all(all(&client)), config.clone());
    let config_maps = Informer::<ConfigMap>::new(Api::all(all(&client)), config.clone());
    let secrets = Informer::<Secret>::new(Api::all(all(&client)), config.clone());
    let leases = Informer::<Lease>::new(Api::all(all(&client)), config.clone());
    let runtime_classes = Informer::<RuntimeClass>::new(Api::all(all(&client)), config);

    let (recorder, recorder_task) = Recorder::new(
        client.clone(),
        "skiff-controller-manager",
        &options.identity,
    );
    let (scheduler_recorder, scheduler_recorder_task) = Recorder::new(
        client.clone(),
        crate::scheduler::SCHEDULER_NAME,
        &options.identity,
    );

    // The garbage collector's view: every kind that owns or is owned.
    let mut kinds = garbage_collector::Kinds::default();
    let mut graph_changes = Vec::new();
    macro_rules! collect {
        ($($informer:ident: $kind:ty),*) => {$(
            kinds.add::<$kind>();
            graph_changes.push(garbage_collector::changes($informer.subscribe()));
        )*};
    }
    collect!(
        pods: Pod,
        nodes: Node,
        replica_sets: ReplicaSet,
        deployments: Deployment,
        services: Service,
        endpoints: Endpoints,
        slices: EndpointSlice,
        config_maps: ConfigMap,
        secrets: Secret,
        leases: Lease
    );

    let informers = futures::future::join_all([
        pods.clone().run().boxed(),
        nodes.clone().run().boxed(),
        replica_sets.clone().run().boxed(),
        deployments.clone().run().boxed(),
        services.clone().run().boxed(),
        endpoints.clone().run().boxed(),
        slices.clone().run().boxed(),
        config_maps.clone().run().boxed(),
        secrets.clone().run().boxed(),
        leases.clone().run().boxed(),
        runtime_classes.clone().run().boxed(),
    ]);
    let synced = {
        let stores = (
            pods.store(),
            nodes.store(),
            replica_sets.store(),
            deployments.store(),
            services.store(),
            endpoints.store(),
            slices.store(),
            config_maps.store(),
            secrets.store(),
            leases.store(),
            runtime_classes.store(),
        );
        async move {
            // A store's writer drops only when its informer ends, which
            // ends leadership anyway.
            let _ = futures::future::join_all([
                stores.0.wait_until_ready().boxed(),
                stores.1.wait_until_ready().boxed(),
                stores.2.wait_until_ready().boxed(),
                stores.3.wait_until_ready().boxed(),
                stores.4.wait_until_ready().boxed(),
                stores.5.wait_until_ready().boxed(),
                stores.6.wait_until_ready().boxed(),
                stores.7.wait_until_ready().boxed(),
                stores.8.wait_until_ready().boxed(),
                stores.9.wait_until_ready().boxed(),
                stores.10.wait_until_ready().boxed(),
            ])
            .await;
        }
        .shared()
    };
    let controllers = {
        let synced = synced.clone();
        async move {
            // Controllers act on complete caches only.
            synced.clone().await;
            tracing::info!("caches synced; controllers running");
            futures::future::join(
                deployment::run(
                    client.clone(),
                    deployments.clone(),
                    replica_sets.clone(),
                    pods.clone(),
                    recorder.clone(),
                ),
                futures::future::join5(
                    crate::scheduler::run(
                        client.clone(),
                        pods.clone(),
                        nodes.clone(),
                        runtime_classes.clone(),
                        scheduler_recorder,
                    ),
                    replica_set::run(
                        client.clone(),
                        pods.clone(),
                        replica_sets.clone(),
                        recorder.clone(),
                    ),
                    endpoints::run(
                        client.clone(),
                        services.clone(),
                        pods.clone(),
                        endpoints.clone(),
                        slices.clone(),
                    ),
                    node_lifecycle::run(
                        client.clone(),
                        nodes.clone(),
                        leases.clone(),
                        pods.clone(),
                        recorder.clone(),
                        options.clone(),
                    ),
                    garbage_collector::run(client.clone(), kinds, graph_changes, synced.clone()),
                ),
            )
            .await;
            drop((deployments, runtime_classes, config_maps, secrets, recorder));
        }
    };
    futures::future::join4(
        informers,
        controllers,
        recorder_task,
        scheduler_recorder_task,
    )
    .await;
}
