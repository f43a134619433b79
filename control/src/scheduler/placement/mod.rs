//! Placement: the pure decision of which node a pending pod goes to.
//!
//! [`place`] takes the pod's [`Requirements`] (computed once per pod) and a
//! [`Snapshot`] of the cluster (kept up to date by the scheduler loop from
//! watch events) and returns the chosen node or, when no node fits,
//! [`Unschedulable`] with Kubernetes' reasons. It follows kube-scheduler's
//! default profile for what skiff supports:
//!
//! - Filters, in plugin order (a node failing one is not checked further):
//!   NodeUnschedulable, node readiness, TaintToleration (NoSchedule and
//!   NoExecute), NodeAffinity (node selector and required affinity),
//!   NodePorts, NodeResourcesFit (which reports every short resource).
//!   NodePorts adds skiff's interim rule: until pod networking exists,
//!   every pod (Wasm or container) listens on its node's network, so each
//!   of its `containerPort`s is a host port, for the pod placed and in what
//!   the snapshot accounts to nodes, except on nodes that give pods
//!   addresses of their own (`skiff.dev/pod-address-range`).
//!   kube-scheduler has no readiness filter (the node lifecycle controller
//!   taints such nodes `node.kubernetes.io/not-ready:NoSchedule`); here a
//!   node whose Ready condition is not "True" is filtered out unless the pod
//!   tolerates that taint, whether or not the node carries it yet.
//! - Nodes are visited round-robin from a start the caller keeps
//!   ([`Placement::next_start`]), and the search stops once enough feasible
//!   nodes are found (kube's adaptive `percentageOfNodesToScore`).
//! - The feasible nodes are scored; see `scores` for the scores and their
//!   weights (kube's defaults). The highest total wins; among equals, the
//!   first visited.
//!
//! Not modelled: inter-pod affinity, topology spread constraints written on
//! the pod, volumes, preemption, DRA.
//!
//! **Architecture invariant:** no IO, no async, no clock and no randomness:
//! the same inputs give the same node, so the tests are tables.

mod affinity;
mod filters;
mod requirements;
mod scores;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use requirements::Requirements;
pub use snapshot::Snapshot;

use affinity::ResolvedAffinity;
use filters::{Insufficient, Rejection};
use requirements::NodeTaint;
use scores::{Candidate, ScoreInputs};

/// kube-scheduler's `minFeasibleNodesToFind`: below this many nodes every
/// node is evaluated.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// kube-scheduler's `minFeasibleNodesPercentageToFind`.
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// How many feasible nodes a search looks for before it stops, as
/// kube-scheduler's `percentageOfNodesToScore`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NodesToScore {
    /// kube-scheduler's default: all nodes below 100; otherwise
    /// max(100, n × max(5, 50 − n/125) / 100).
    #[default]
    Adaptive,
    /// This percentage of the nodes (clamped to 1–100), at least 100;
    /// `Percentage(100)` evaluates every node.
    Percentage(u8),
}

impl NodesToScore {
    /// kube-scheduler's `numFeasibleNodesToFind` for `nodes` nodes.
    pub fn feasible_nodes_to_find(self, nodes: usize) -> usize {
        if nodes < MIN_FEASIBLE_NODES_TO_FIND {
            return nodes;
        }
        let percentage = match self {
            Self::Adaptive => 50usize
                .saturating_sub(nodes / 125)
                .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND),
            Self::Percentage(percentage) => usize::from(percentage.clamp(1, 100)),
        };
        (nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
    }
}

/// Where a pod goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The chosen node's name.
    pub node: String,
    /// Where the next search should start, so that successive pods spread
    /// over the node list: the node after the last one visited.
    pub next_start: usize,
    /// Nodes the filters were run on.
    pub nodes_visited: usize,
    /// Of those, the nodes that passed and were scored.
    pub feasible_nodes: usize,
}

/// No node can take the pod: every node was visited and failed a filter.
/// Displays as kube-scheduler's FitError message, e.g.
/// `0/5 nodes are available: 2 Insufficient cpu, 3 node(s) didn't match Pod's node affinity/selector.`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unschedulable {
    /// The number of nodes in the snapshot.
    pub nodes: usize,
    /// Reason → number of nodes that gave it. A node short of several
    /// resources counts once under each.
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            // kube-scheduler's ErrNoNodesAvailable.
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.nodes)?;
        // Go's sort.Strings over "count reason".
        let mut histogram: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        histogram.sort_unstable();
        if !histogram.is_empty() {
            write!(f, " {}.", histogram.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Unschedulable {}

/// Chooses a node for the pod, visiting nodes from `start` (taken modulo
/// the node count) with kube-scheduler's adaptive sampling. The pod is
/// taken as pending: its `spec.nodeName` is not read.
pub fn place(
    req: &Requirements,
    snapshot: &Snapshot,
    start: usize,
) -> Result<Placement, Unschedulable> {
    place_with(req, snapshot, start, NodesToScore::Adaptive)
}

/// [`place`] with an explicit number of nodes to score.
pub fn place_with(
    req: &Requirements,
    snapshot: &Snapshot,
    start: usize,
    nodes_to_score: NodesToScore,
) -> Result<Placement, Unschedulable> {
    let nodes = snapshot.nodes();
    let count = nodes.len();
    if count == 0 {
        return Err(Unschedulable::default());
    }
    let to_find = nodes_to_score.feasible_nodes_to_find(count);
    let start = start % count;
    let decision = Decision {
        req,
        snapshot,
        affinity: ResolvedAffinity::new(req, snapshot),
        scoring: ScoreInputs::new(req, snapshot),
    };
    let mut candidates: Vec<Candidate> = Vec::with_capacity(to_find);
    let mut tally = Tally::new(req);
    let mut visited = 0;
    for index in (start..count).chain(0..start) {
        visited += 1;
        let node = &nodes[index];
        match filters::check(&decision, node) {
            Ok(()) => {
                candidates.push(Candidate::new(&decision, index, node));
                if candidates.len() >= to_find {
                    break;
                }
            }
            Err(rejection) => tally.count(req, node, rejection),
        }
    }
    if candidates.is_empty() {
        return Err(tally.into_unschedulable(req, count));
    }
    let chosen = if candidates.len() == 1 {
        candidates[0].node
    } else {
        scores::best(&candidates, snapshot)
    };
    Ok(Placement {
        node: nodes[chosen].name.clone(),
        next_start: (start + visited) % count,
        nodes_visited: visited,
        feasible_nodes: candidates.len(),
    })
}

/// One decision's inputs: the pod's requirements, the snapshot, and what
/// of the requirements is resolved against the snapshot's ids up front.
struct Decision<'a> {
    req: &'a Requirements,
    snapshot: &'a Snapshot,
    affinity: ResolvedAffinity<'a>,
    scoring: ScoreInputs,
}

const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
const REASON_NOT_READY: &str = "node(s) were not ready";
const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
const REASON_HOST_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
const REASON_TOO_MANY_PODS: &str = "Too many pods";

/// Rejections counted while searching, turned into reason strings only if
/// no node fits (so a rejected node costs no allocation).
struct Tally<'a> {
    unschedulable: usize,
    not_ready: usize,
    node_affinity: usize,
    host_ports: usize,
    pods: usize,
    cpu: usize,
    memory: usize,
    ephemeral_storage: usize,
    /// By index of the pod's scalar requests.
    scalar: Vec<usize>,
    /// Distinct untolerated taints (by key and value) and their counts.
    taints: Vec<(&'a NodeTaint, usize)>,
}

impl<'a> Tally<'a> {
    fn new(req: &Requirements) -> Self {
        Self {
            unschedulable: 0,
            not_ready: 0,
            node_affinity: 0,
            host_ports: 0,
            pods: 0,
            cpu: 0,
            memory: 0,
            ephemeral_storage: 0,
            scalar: vec![0; req.requests.scalar.len()],
            taints: Vec::new(),
        }
    }

    fn count(
        &mut self,
        req: &Requirements,
        node: &'a snapshot::NodeEntry,
        rejection: Rejection<'a>,
    ) {
        match rejection {
            Rejection::Unschedulable => self.unschedulable += 1,
            Rejection::NotReady => self.not_ready += 1,
            Rejection::NodeAffinity => self.node_affinity += 1,
            Rejection::HostPorts => self.host_ports += 1,
            Rejection::Taint(taint) => {
                let same = |(seen, _): &&mut (&NodeTaint, usize)| {
                    seen.key == taint.key && seen.value == taint.value
                };
                match self.taints.iter_mut().find(same) {
                    Some((_, count)) => *count += 1,
                    None => self.taints.push((taint, 1)),
                }
            }
            Rejection::Resources => filters::insufficient(req, node, |resource| match resource {
                Insufficient::Pods => self.pods += 1,
                Insufficient::Cpu => self.cpu += 1,
                Insufficient::Memory => self.memory += 1,
                Insufficient::EphemeralStorage => self.ephemeral_storage += 1,
                Insufficient::Scalar(i) => self.scalar[i] += 1,
            }),
        }
    }

    fn into_unschedulable(self, req: &Requirements, nodes: usize) -> Unschedulable {
        let mut reasons = BTreeMap::new();
        let mut add = |reason: String, count: usize| {
            if count > 0 {
                *reasons.entry(reason).or_insert(0) += count;
            }
        };
        add(REASON_UNSCHEDULABLE.to_owned(), self.unschedulable);
        add(REASON_NOT_READY.to_owned(), self.not_ready);
        add(REASON_NODE_AFFINITY.to_owned(), self.node_affinity);
        add(REASON_HOST_PORTS.to_owned(), self.host_ports);
        add(REASON_TOO_MANY_PODS.to_owned(), self.pods);
        add("Insufficient cpu".to_owned(), self.cpu);
        add("Insufficient memory".to_owned(), self.memory);
        add(
            "Insufficient ephemeral-storage".to_owned(),
            self.ephemeral_storage,
        );
        for ((name, _), count) in req.requests.scalar.iter().zip(self.scalar) {
            add(format!("Insufficient {name}"), count);
        }
        for (taint, count) in self.taints {
            // kube-scheduler 1.30's wording.
            add(
                format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    taint.key, taint.value
                ),
                count,
            );
        }
        Unschedulable { nodes, reasons }
    }
}
