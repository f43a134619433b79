//! Endpoints and EndpointSlices from Services' selectors: every pod the
//! selector matches that has an IP and has not finished becomes an address,
//! ready or not as its Ready condition says (Kubernetes' endpoints and
//! endpointslice controllers). Services without a selector are left to
//! their users.
//!
//! The objects written carry the Service as their controlling owner, so the
//! garbage collector removes them with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::{Selector, SelectorExt as _};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt as _};

use super::ControllerError;
use super::informer::Informer;
use super::pods::{self, landed, owner_reference};

/// Label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming who manages an EndpointSlice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`] (Kubernetes' own, so
/// that tools recognising controller-managed slices recognise these).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Endpoints per slice, Kubernetes' default.
const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Re-check after an error.
const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// What the controller shares between reconciles.
pub struct Context {
    client: Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
}

/// Runs the controller until the informers end.
pub async fn run(
    client: Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    endpoints: Arc<Informer<Endpoints>>,
    slices: Arc<Informer<EndpointSlice>>,
) {
    let context = Arc::new(Context {
        client,
        pods: pods.store(),
        endpoints: endpoints.store(),
        slices: slices.store(),
    });
    let service_store = services.store();
    Controller::for_shared_stream(services.triggers(), services.store())
        // A pod change concerns every selecting Service of its namespace,
        // including those its old labels matched: all of them are checked.
        .watches_shared_stream(pods.triggers(), move |pod| {
            let namespace = pod.namespace().unwrap_or_default();
            service_store
                .state()
                .iter()
                .filter(|svc| svc.namespace().as_deref() == Some(namespace.as_str()))
                .filter(|svc| has_selector(svc))
                .map(|svc| ObjectRef::from_obj(&**svc))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(endpoints.triggers(), |endpoints| {
            Some(
                ObjectRef::new(&endpoints.name_any())
                    .within(&endpoints.namespace().unwrap_or_default()),
            )
        })
        .owns_shared_stream(slices.triggers())
        .run(reconcile, error_policy, context)
        .for_each(|_| async {})
        .await;
}

fn has_selector(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// Writes the Service's Endpoints and EndpointSlices.
pub async fn reconcile(
    service: Arc<Service>,
    context: Arc<Context>,
) -> Result<Action, ControllerError> {
    if !has_selector(&service) || service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = service.namespace().unwrap_or_default();
    let selector: Selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut selected: Vec<Arc<Pod>> = context
        .pods
        .state()
        .into_iter()
        .filter(|pod| pod.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|pod| selector.matches(pod.labels()))
        .collect();
    selected.sort_by_key(|pod| pod.name_any());
    let desired = Desired::of(&service, &selected);

    sync_endpoints(&service, &desired, &context).await?;
    sync_slices(&service, &desired, &context).await?;
    Ok(Action::await_change())
}

/// Requeues a failed reconcile after a pause.
pub fn error_policy(service: Arc<Service>, error: &ControllerError, _: Arc<Context>) -> Action {
    tracing::debug!(service = %service.name_any(), %error, "endpoints sync failed");
    Action::requeue(ERROR_REQUEUE)
}

/// What endpoints of one slice share: address type and ports.
type SliceKey = (String, Vec<SlicePort>);

/// One address of the Service.
#[derive(Clone, Debug, PartialEq)]
struct Member {
    ip: String,
    node: Option<String>,
    target: ObjectReference,
    hostname: Option<String>,
    ready: bool,
    serving: bool,
    terminating: bool,
    ports: Vec<EndpointPort>,
}

/// What the Service's Endpoints and slices should hold.
#[derive(Debug, PartialEq)]
pub struct Desired {
    subsets: Vec<EndpointSubset>,
    /// Slice contents: address type, ports, endpoints.
    slices: Vec<(String, Vec<SlicePort>, Vec<Endpoint>)>,
}

impl Desired {
    /// The addresses `pods` give `service` (pods already selected, sorted).
    pub fn of(service: &Service, pods: &[Arc<Pod>]) -> Self {
        let publish_not_ready = service
            .spec
            .as_ref()
            .and_then(|s| s.publish_not_ready_addresses)
            .unwrap_or(false);
        let members: Vec<Member> = pods
            .iter()
            .filter_map(|pod| member(service, pod, publish_not_ready))
            .collect();

        // Endpoints: one subset per distinct port set, in first-seen order.
        let mut subsets: Vec<EndpointSubset> = Vec::new();
        for member in members.iter().filter(|m| !m.terminating) {
            let address = EndpointAddress {
                ip: member.ip.clone(),
                node_name: member.node.clone(),
                target_ref: Some(member.target.clone()),
                hostname: member.hostname.clone(),
            };
            let ports = Some(member.ports.clone()).filter(|p| !p.is_empty());
            let subset = match subsets.iter_mut().find(|s| s.ports == ports) {
                Some(subset) => subset,
                None => {
                    subsets.push(EndpointSubset {
                        ports,
                        ..EndpointSubset::default()
                    });
                    subsets.last_mut().expect("just pushed")
                }
            };
            let list = if member.ready {
                &mut subset.addresses
            } else {
                &mut subset.not_ready_addresses
            };
            list.get_or_insert_with(Vec::new).push(address);
        }

        // Slices: per address type and port set, at most 100 endpoints each.
        let mut groups: Vec<(SliceKey, Vec<Endpoint>)> = Vec::new();
        for member in &members {
            let address_type = if member.ip.contains(':') {
                "IPv6"
            } else {
                "IPv4"
            }
            .to_owned();
            let ports: Vec<SlicePort> = member
                .ports
                .iter()
                .map(|p| SlicePort {
                    name: p.name.clone(),
                    port: Some(p.port),
                    protocol: p.protocol.clone(),
                    app_protocol: p.app_protocol.clone(),
                })
                .collect();
            let endpoint = Endpoint {
                addresses: vec![member.ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(member.ready),
                    serving: Some(member.serving),
                    terminating: Some(member.terminating),
                }),
                hostname: member.hostname.clone(),
                node_name: member.node.clone(),
                target_ref: Some(member.target.clone()),
                ..Endpoint::default()
            };
            let key = (address_type, ports);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, endpoints)) => endpoints.push(endpoint),
                None => groups.push((key, vec![endpoint])),
            }
        }
        let mut slices = Vec::new();
        for ((address_type, ports), endpoints) in groups {
            for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
                slices.push((address_type.clone(), ports.clone(), chunk.to_vec()));
            }
        }
        if slices.is_empty() {
            // Like Kubernetes: a selecting Service always has a slice, an
            // empty placeholder while nothing matches.
            slices.push(("IPv4".to_owned(), Vec::new(), Vec::new()));
        }
        Self { subsets, slices }
    }
}

/// The pod as an address of `service`, if it has an IP and is running or
/// about to.
fn member(service: &Service, pod: &Pod, publish_not_ready: bool) -> Option<Member> {
    let ip = pod
        .status
        .as_ref()?
        .pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())?;
    if pods::is_terminated(pod) {
        return None;
    }
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish_not_ready || (pods::is_ready(pod) && !terminating);
    let spec = pod.spec.as_ref()?;
    let service_name = service.name_any();
    let hostname = spec
        .hostname
        .clone()
        .filter(|_| spec.subdomain.as_deref() == Some(service_name.as_str()));
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|port| {
            let target = match &port.target_port {
                None => port.port,
                Some(IntOrString::Int(number)) => *number,
                Some(IntOrString::String(name)) => spec
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .map(|p| p.container_port)?,
            };
            Some(EndpointPort {
                name: port.name.clone(),
                port: target,
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect();
    Some(Member {
        ip,
        node: spec.node_name.clone(),
        target: ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: pod.namespace(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        },
        hostname,
        ready,
        serving: pods::is_ready(pod),
        terminating,
        ports,
    })
}

async fn sync_endpoints(
    service: &Service,
    desired: &Desired,
    context: &Context,
) -> Result<(), ControllerError> {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let api: Api<Endpoints> = Api::namespaced(context.client.clone(), &namespace);
    let subsets = Some(desired.subsets.clone()).filter(|s| !s.is_empty());
    let labels = service.metadata.labels.clone();
    let current = context
        .endpoints
        .get(&ObjectRef::new(&name).within(&namespace));
    match current {
        Some(current) if current.subsets == subsets && current.metadata.labels == labels => Ok(()),
        Some(current) => {
            let mut updated = (*current).clone();
            updated.subsets = subsets;
            updated.metadata.labels = labels;
            if updated
                .metadata
                .owner_references
                .as_ref()
                .is_none_or(|o| o.is_empty())
            {
                updated.metadata.owner_references = Some(vec![owner_reference(service)]);
            }
            landed(api.replace(&name, &PostParams::default(), &updated).await).map(drop)
        }
        None => {
            let endpoints = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(namespace),
                    labels,
                    owner_references: Some(vec![owner_reference(service)]),
                    ..ObjectMeta::default()
                },
                subsets,
            };
            landed(api.create(&PostParams::default(), &endpoints).await).map(drop)
        }
    }
}

async fn sync_slices(
    service: &Service,
    desired: &Desired,
    context: &Context,
) -> Result<(), ControllerError> {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let api: Api<EndpointSlice> = Api::namespaced(context.client.clone(), &namespace);
    let mut existing: Vec<Arc<EndpointSlice>> = context
        .slices
        .state()
        .into_iter()
        .filter(|slice| slice.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|slice| {
            let labels = slice.labels();
            labels.get(SERVICE_NAME_LABEL) == Some(&name)
                && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .collect();
    existing.sort_by_key(|slice| slice.name_any());

    let mut labels: BTreeMap<String, String> = service.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.to_owned(), name.clone());
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());

    let mut existing = existing.into_iter();
    for (address_type, ports, endpoints) in &desired.slices {
        let ports = Some(ports.clone()).filter(|p| !p.is_empty());
        let endpoints = Some(endpoints.clone());
        match existing.next() {
            Some(slice)
                if slice.address_type == *address_type
                    && slice.ports == ports
                    && slice.endpoints == endpoints
                    && slice.metadata.labels.as_ref() == Some(&labels) => {}
            Some(slice) => {
                let mut updated = (*slice).clone();
                updated.address_type = address_type.clone();
                updated.ports = ports;
                updated.endpoints = endpoints;
                updated.metadata.labels = Some(labels.clone());
                landed(
                    api.replace(&slice.name_any(), &PostParams::default(), &updated)
                        .await,
                )
                .map(drop)?;
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(namespace.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner_reference(service)]),
                        ..ObjectMeta::default()
                    },
                    address_type: address_type.clone(),
                    ports,
                    endpoints,
                };
                api.create(&PostParams::default(), &slice).await?;
            }
        }
    }
    for leftover in existing {
        match api
            .delete(&leftover.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
