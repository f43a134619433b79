//! The filters, in kube-scheduler's plugin order: NodeUnschedulable, node
//! readiness, TaintToleration, NodeAffinity (with the node selector),
//! NodePorts, NodeResourcesFit. A node failing one is not checked further.

use super::Decision;
use super::requirements::{HostPort, NodeTaint, Requirements, TaintEffect, scalar_value};
use super::snapshot::NodeEntry;

/// Why a node cannot take the pod: the first filter it failed.
#[derive(Clone, Copy, Debug)]
pub(super) enum Rejection<'a> {
    /// `spec.unschedulable` and the pod does not tolerate it.
    Unschedulable,
    /// Not Ready and the pod does not tolerate it.
    NotReady,
    /// The node's first NoSchedule/NoExecute taint the pod does not tolerate.
    Taint(&'a NodeTaint),
    /// Node selector or required node affinity not matched.
    NodeAffinity,
    /// A requested host port is taken.
    HostPorts,
    /// At least one resource is short; [`insufficient`] lists which.
    Resources,
}

/// A resource the node lacks for the pod.
#[derive(Clone, Copy, Debug)]
pub(super) enum Insufficient {
    Pods,
    Cpu,
    Memory,
    EphemeralStorage,
    /// The pod's scalar request at this index in its sorted list.
    Scalar(usize),
}

/// Runs the filters on one node.
pub(super) fn check<'a>(decision: &Decision<'_>, node: &'a NodeEntry) -> Result<(), Rejection<'a>> {
    let req = decision.req;
    if node.unschedulable && !req.tolerates_unschedulable {
        return Err(Rejection::Unschedulable);
    }
    if !node.ready && !req.tolerates_not_ready {
        return Err(Rejection::NotReady);
    }
    if let Some(taint) = untolerated_taint(req, node) {
        return Err(Rejection::Taint(taint));
    }
    if !decision.affinity.matches(node, decision.snapshot) {
        return Err(Rejection::NodeAffinity);
    }
    if !req.host_ports.is_empty() && host_ports_taken(req, node) {
        return Err(Rejection::HostPorts);
    }
    let mut fits = true;
    insufficient(req, node, |_| fits = false);
    if !fits {
        return Err(Rejection::Resources);
    }
    Ok(())
}

/// kube's `FindMatchingUntoleratedTaint` for NoSchedule and NoExecute.
fn untolerated_taint<'a>(req: &Requirements, node: &'a NodeEntry) -> Option<&'a NodeTaint> {
    node.taints
        .iter()
        .find(|taint| taint.effect != TaintEffect::PreferNoSchedule && !req.tolerates(taint))
}

fn host_ports_taken(req: &Requirements, node: &NodeEntry) -> bool {
    // On a node whose pods have addresses of their own, container ports
    // are not the node's.
    let counts = |port: &&HostPort| !(port.on_node_address && node.own_pod_addresses);
    req.host_ports.iter().filter(counts).any(|wanted| {
        node.usage
            .host_ports
            .iter()
            .filter(counts)
            .any(|used| wanted.conflicts_with(used))
    })
}

/// kube's `fitsRequest`: reports every resource the node lacks for the
/// pod. The pod count is always checked; a resource only when requested.
pub(super) fn insufficient(
    req: &Requirements,
    node: &NodeEntry,
    mut report: impl FnMut(Insufficient),
) {
    let used = &node.usage.requested;
    let allocatable = &node.allocatable;
    let wanted = &req.requests;
    if node.usage.pods + 1 > node.allocatable_pods {
        report(Insufficient::Pods);
    }
    let short = |wanted: i64, allocatable: i64, used: i64| {
        wanted > 0 && wanted > allocatable.saturating_sub(used)
    };
    if short(wanted.milli_cpu, allocatable.milli_cpu, used.milli_cpu) {
        report(Insufficient::Cpu);
    }
    if short(wanted.memory, allocatable.memory, used.memory) {
        report(Insufficient::Memory);
    }
    if short(
        wanted.ephemeral_storage,
        allocatable.ephemeral_storage,
        used.ephemeral_storage,
    ) {
        report(Insufficient::EphemeralStorage);
    }
    for (i, (name, value)) in wanted.scalar.iter().enumerate() {
        let (allocatable, used) = (
            scalar_value(&allocatable.scalar, name),
            scalar_value(&used.scalar, name),
        );
        if short(*value, allocatable, used) {
            report(Insufficient::Scalar(i));
        }
    }
}
