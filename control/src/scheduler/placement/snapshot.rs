//! The scheduler's view of the cluster: per node, what the filters and
//! scores read (precomputed from the Node) and what its pods use (kept up
//! to date pod by pod), so that evaluating a node parses nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod};

use super::requirements::{
    HostPort, NodeTaint, Resources, controller_uid, host_ports, normalized_image_name, pod_requests,
};

/// Zone labels in the order kube's `GetZoneKey` reads them: the deprecated
/// beta label wins when both are set.
const ZONE_LABELS: [&str; 2] = [
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/zone",
];
/// Region labels, in the same order.
const REGION_LABELS: [&str; 2] = [
    "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/region",
];

/// The scheduler's view of the cluster, kept up to date incrementally from
/// watch events: nodes with [`upsert_node`](Self::upsert_node) and
/// [`remove_node`](Self::remove_node), pods bound to nodes with
/// [`add_pod`](Self::add_pod) and [`remove_pod`](Self::remove_pod), and
/// the scheduler's own decisions with [`assume`](Self::assume) until their
/// bindings are observed.
///
/// Every update costs O(size of the object), independent of cluster size.
/// Pods accounted to a node the snapshot does not (or no longer) know are
/// kept aside and show up when that node is upserted.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Nodes in the order placement visits them.
    nodes: Vec<NodeEntry>,
    /// Node name → position in `nodes`.
    index: HashMap<String, usize>,
    /// What pods use on nodes not in `nodes`, by node name.
    detached: HashMap<String, Usage>,
    /// Accounted pods by uid (or namespace/name when they have none).
    pods: HashMap<String, PodRecord>,
    /// Controller uids of accounted pods, referenced once per pod.
    owners: Interner,
    /// Image names on nodes, referenced once per node.
    images: Interner,
    /// Label keys and values on nodes, referenced once per node and label.
    labels: Interner,
    /// Zone keys (region and zone) seen on nodes, never released: zones
    /// are few.
    zones: HashMap<String, u32>,
}

/// A node as placement reads it.
#[derive(Clone, Debug)]
pub(super) struct NodeEntry {
    pub name: String,
    /// (key id, value id), sorted by key id.
    pub labels: Vec<(u32, u32)>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// The node gives pods addresses of their own (annotation
    /// `skiff.dev/pod-address-range`), so their container ports are not
    /// its host ports.
    pub own_pod_addresses: bool,
    /// The Ready condition is "True".
    pub ready: bool,
    /// Taints with an effect Kubernetes defines.
    pub taints: Vec<NodeTaint>,
    /// `status.allocatable` (its `non_zero_*` fields unused).
    pub allocatable: Resources,
    /// `status.allocatable["pods"]`.
    pub allocatable_pods: i64,
    /// `1 / allocatable cpu` and `1 / allocatable memory` (0 when there is
    /// none), so that scoring multiplies instead of dividing.
    pub inverse_capacity: [f64; 2],
    /// Ids of the images in `status.images`, sorted.
    pub images: Vec<u32>,
    /// Bit `id % 128` set for each of `images`: most lookups of an image
    /// the node lacks end here, without touching `images`.
    pub image_mask: u128,
    /// Id of the node's zone key, if it has a zone or region label.
    pub zone: Option<u32>,
    /// What the node's pods use.
    pub usage: Usage,
}

/// What the pods accounted to one node use.
#[derive(Clone, Debug, Default)]
pub(super) struct Usage {
    pub requested: Resources,
    pub pods: i64,
    /// One entry per pod port (a multiset, so removing a pod frees only its own).
    pub host_ports: Vec<HostPort>,
    /// (owner id, pods of that owner), sorted by id.
    pub owners: Vec<(u32, u32)>,
    /// Bit `id % 128` set for each of `owners` (see `NodeEntry::image_mask`).
    pub owner_mask: u128,
}

/// What an accounted pod contributes to its node, kept so that removing
/// it subtracts exactly what was added.
#[derive(Clone, Debug)]
struct PodRecord {
    node: String,
    requests: Resources,
    host_ports: Vec<HostPort>,
    owner: Option<u32>,
}

impl Snapshot {
    /// Adds `node` or updates it, keeping what its pods use.
    /// A node without a name is ignored.
    pub fn upsert_node(&mut self, node: &Node) {
        let Some(name) = node.metadata.name.as_deref().filter(|n| !n.is_empty()) else {
            return;
        };
        // Acquire the new images before releasing the old ones, so an
        // unchanged image keeps its id.
        let image_names: BTreeSet<String> = node
            .status
            .iter()
            .flat_map(|s| s.images.iter().flatten())
            .flat_map(|image| image.names.iter().flatten())
            .map(|name| normalized_image_name(name))
            .collect();
        let mut images: Vec<u32> = image_names
            .iter()
            .map(|name| self.images.acquire(name))
            .collect();
        images.sort_unstable();
        let no_labels = BTreeMap::new();
        let label_map = node.metadata.labels.as_ref().unwrap_or(&no_labels);
        let mut labels: Vec<(u32, u32)> = label_map
            .iter()
            .map(|(key, value)| (self.labels.acquire(key), self.labels.acquire(value)))
            .collect();
        labels.sort_unstable();
        let zone = zone_key(label_map).map(|key| {
            let next = self.zones.len() as u32;
            *self.zones.entry(key).or_insert(next)
        });
        match self.index.get(name) {
            Some(&i) => {
                let usage = std::mem::take(&mut self.nodes[i].usage);
                let old = std::mem::replace(
                    &mut self.nodes[i],
                    NodeEntry::new(node, name, labels, images, zone, usage),
                );
                self.release(&old);
            }
            None => {
                let usage = self.detached.remove(name).unwrap_or_default();
                self.index.insert(name.to_owned(), self.nodes.len());
                self.nodes
                    .push(NodeEntry::new(node, name, labels, images, zone, usage));
            }
        }
    }

    /// Removes the node called `name`; what its pods use is kept aside
    /// until they are removed or the node comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let entry = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i)
            && let Some(position) = self.index.get_mut(&moved.name)
        {
            *position = i;
        }
        self.release(&entry);
        if entry.usage.pods > 0 {
            self.detached.insert(entry.name, entry.usage);
        }
    }

    /// Accounts `pod` to the node in its `spec.nodeName`. Idempotent: the
    /// pod is keyed by uid (namespace/name without one), and adding it again
    /// replaces what was accounted (moving it if its node changed). A pod
    /// without a node, or whose phase is Succeeded or Failed, is removed
    /// instead, so the caller can pass every watch event here.
    pub fn add_pod(&mut self, pod: &Pod) {
        let node = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.node_name.as_deref())
            .filter(|node| !node.is_empty());
        match node {
            Some(node) if !terminated(pod) => self.account(pod, node),
            _ => self.remove_pod(pod),
        }
    }

    /// Stops accounting `pod` (matched by uid, or namespace/name).
    pub fn remove_pod(&mut self, pod: &Pod) {
        if let Some(key) = pod_key(pod) {
            self.forget(&key);
        }
    }

    /// Accounts `pod` to `node` before its binding is observed: the same as
    /// [`add_pod`](Self::add_pod) with `spec.nodeName` set to `node`, so the
    /// observed binding later replaces it.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        if terminated(pod) {
            self.remove_pod(pod);
        } else {
            self.account(pod, node);
        }
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The number of pods accounted (on known nodes or not).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub(super) fn nodes(&self) -> &[NodeEntry] {
        &self.nodes
    }

    #[cfg(test)]
    pub(super) fn node(&self, name: &str) -> Option<&NodeEntry> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// What pods use on a node the snapshot does not know.
    #[cfg(test)]
    pub(super) fn detached(&self, name: &str) -> Option<&Usage> {
        self.detached.get(name)
    }

    pub(super) fn owner_id(&self, uid: &str) -> Option<u32> {
        self.owners.get(uid)
    }

    pub(super) fn image_id(&self, name: &str) -> Option<u32> {
        self.images.get(name)
    }

    pub(super) fn zone_count(&self) -> usize {
        self.zones.len()
    }

    /// The id of a label key or value some node has.
    pub(super) fn label_id(&self, text: &str) -> Option<u32> {
        self.labels.get(text)
    }

    /// The label value with this id read as an integer (for Gt and Lt).
    pub(super) fn label_integer(&self, id: u32) -> Option<i64> {
        self.labels.entries[id as usize].integer
    }

    /// Drops the references a removed or replaced node entry held.
    fn release(&mut self, entry: &NodeEntry) {
        for &id in &entry.images {
            self.images.release(id);
        }
        for &(key, value) in &entry.labels {
            self.labels.release(key);
            self.labels.release(value);
        }
    }

    fn account(&mut self, pod: &Pod, node: &str) {
        let Some(key) = pod_key(pod) else {
            return;
        };
        self.forget(&key);
        let (requests, host_ports) = match &pod.spec {
            Some(spec) => (pod_requests(spec, spec.overhead.as_ref()), host_ports(spec)),
            None => Default::default(),
        };
        let record = PodRecord {
            node: node.to_owned(),
            requests,
            host_ports,
            owner: controller_uid(pod).map(|uid| self.owners.acquire(uid)),
        };
        let usage = match self.index.get(node) {
            Some(&i) => &mut self.nodes[i].usage,
            None => self.detached.entry(node.to_owned()).or_default(),
        };
        usage.add(&record);
        self.pods.insert(key, record);
    }

    fn forget(&mut self, key: &str) {
        let Some(record) = self.pods.remove(key) else {
            return;
        };
        if let Some(&i) = self.index.get(&record.node) {
            self.nodes[i].usage.remove(&record);
        } else if let Some(usage) = self.detached.get_mut(&record.node) {
            usage.remove(&record);
            if usage.pods == 0 {
                self.detached.remove(&record.node);
            }
        }
        if let Some(owner) = record.owner {
            self.owners.release(owner);
        }
    }
}

impl NodeEntry {
    fn new(
        node: &Node,
        name: &str,
        labels: Vec<(u32, u32)>,
        images: Vec<u32>,
        zone: Option<u32>,
        usage: Usage,
    ) -> Self {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let allocatable = status.and_then(|s| s.allocatable.as_ref());
        let allocatable_pods = allocatable
            .and_then(|a| a.get("pods"))
            .and_then(|q| skiff_sdk::quantity::ParsedQuantity::parse(&q.0).ok())
            .map_or(0, |q| q.value());
        Self {
            name: name.to_owned(),
            labels,
            unschedulable: spec.and_then(|s| s.unschedulable) == Some(true),
            own_pod_addresses: node
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(skiff_sdk::annotations::POD_ADDRESS_RANGE)),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .filter_map(NodeTaint::new)
                .collect(),
            inverse_capacity: [0.0; 2],
            allocatable: Resources::from_list(allocatable, false),
            allocatable_pods,
            image_mask: images.iter().fold(0, |mask, &id| mask | mask_bit(id)),
            images,
            zone,
            usage,
        }
        .with_inverse_capacity()
    }

    fn with_inverse_capacity(mut self) -> Self {
        let inverse = |capacity: i64| {
            if capacity > 0 {
                1.0 / capacity as f64
            } else {
                0.0
            }
        };
        self.inverse_capacity = [
            inverse(self.allocatable.milli_cpu),
            inverse(self.allocatable.memory),
        ];
        self
    }
}

impl NodeEntry {
    /// The value id of the label with key id `key`.
    pub fn label(&self, key: u32) -> Option<u32> {
        self.labels
            .binary_search_by_key(&key, |&(k, _)| k)
            .ok()
            .map(|i| self.labels[i].1)
    }

    /// Whether the node has the image with this id.
    pub fn has_image(&self, id: u32) -> bool {
        self.image_mask & mask_bit(id) != 0 && self.images.binary_search(&id).is_ok()
    }
}

/// An id's bit in a 128-bit membership mask.
fn mask_bit(id: u32) -> u128 {
    1 << (id % 128)
}

impl Usage {
    fn add(&mut self, record: &PodRecord) {
        self.requested.add(&record.requests);
        self.pods += 1;
        self.host_ports.extend(record.host_ports.iter().cloned());
        if let Some(owner) = record.owner {
            match self.owners.binary_search_by_key(&owner, |&(id, _)| id) {
                Ok(i) => self.owners[i].1 += 1,
                Err(i) => self.owners.insert(i, (owner, 1)),
            }
            self.owner_mask |= mask_bit(owner);
        }
    }

    fn remove(&mut self, record: &PodRecord) {
        self.requested.subtract(&record.requests);
        self.pods -= 1;
        for port in &record.host_ports {
            if let Some(i) = self.host_ports.iter().position(|used| used == port) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(owner) = record.owner
            && let Ok(i) = self.owners.binary_search_by_key(&owner, |&(id, _)| id)
        {
            self.owners[i].1 -= 1;
            if self.owners[i].1 == 0 {
                self.owners.remove(i);
                self.owner_mask = self
                    .owners
                    .iter()
                    .fold(0, |mask, &(id, _)| mask | mask_bit(id));
            }
        }
    }

    /// Pods of the owner with this id on the node.
    pub fn owner_pods(&self, owner: u32) -> u32 {
        if self.owner_mask & mask_bit(owner) == 0 {
            return 0;
        }
        self.owners
            .binary_search_by_key(&owner, |&(id, _)| id)
            .map_or(0, |i| self.owners[i].1)
    }
}

/// Strings mapped to small reusable ids, with a reference count each.
#[derive(Clone, Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    /// By id; a free id has no references and an empty name.
    entries: Vec<Interned>,
    free: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
struct Interned {
    name: String,
    references: u32,
    /// The name read as an integer, as Kubernetes reads label values for
    /// Gt and Lt.
    integer: Option<i64>,
}

impl Interner {
    fn acquire(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            self.entries[id as usize].references += 1;
            return id;
        }
        let entry = Interned {
            name: name.to_owned(),
            references: 1,
            integer: name.parse().ok(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.ids.insert(name.to_owned(), id);
        id
    }

    fn release(&mut self, id: u32) {
        let entry = &mut self.entries[id as usize];
        entry.references -= 1;
        if entry.references == 0 {
            let name = std::mem::take(&mut entry.name);
            self.ids.remove(&name);
            self.free.push(id);
        }
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }
}

/// kube's `GetZoneKey`: region and zone, or `None` when the node has neither.
fn zone_key(labels: &BTreeMap<String, String>) -> Option<String> {
    let first = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|key| labels.get(*key))
            .map_or("", String::as_str)
    };
    let (zone, region) = (first(ZONE_LABELS), first(REGION_LABELS));
    if zone.is_empty() && region.is_empty() {
        return None;
    }
    Some(format!("{region}:\0:{zone}"))
}

/// The key a pod is accounted under: its uid, or namespace/name.
fn pod_key(pod: &Pod) -> Option<String> {
    let meta = &pod.metadata;
    if let Some(uid) = meta.uid.as_deref().filter(|uid| !uid.is_empty()) {
        return Some(uid.to_owned());
    }
    let name = meta.name.as_deref().filter(|name| !name.is_empty())?;
    Some(format!(
        "{}/{name}",
        meta.namespace.as_deref().unwrap_or_default()
    ))
}

/// Whether the pod has finished (its resources are free again).
fn terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}
