//! The scores of a feasible node, each 0–100 after normalization over the
//! feasible nodes, summed with kube-scheduler's default plugin weights:
//!
//! | score | weight | kube-scheduler plugin |
//! |---|---:|---|
//! | least allocated (cpu, memory; 1 each) | 1 | NodeResourcesFit, LeastAllocated |
//! | balanced allocation (cpu, memory) | 1 | NodeResourcesBalancedAllocation |
//! | preferred node affinity | 2 | NodeAffinity |
//! | spreading the owner's pods | 2 | PodTopologySpread's default constraints (scored as SelectorSpread) |
//! | artifact locality | 1 | ImageLocality (counted, not sized) |
//! | PreferNoSchedule taints tolerated | 3 | TaintToleration |

use super::Decision;
use super::requirements::{Requirements, TaintEffect};
use super::snapshot::{NodeEntry, Snapshot};

const WEIGHT_LEAST_ALLOCATED: i64 = 1;
const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
const WEIGHT_NODE_AFFINITY: i64 = 2;
const WEIGHT_SPREAD: i64 = 2;
const WEIGHT_IMAGE_LOCALITY: i64 = 1;
const WEIGHT_TAINT_TOLERATION: i64 = 3;

const MAX_NODE_SCORE: i64 = 100;
/// SelectorSpread's share of the zone score in the spread score.
const ZONE_WEIGHTING: f64 = 2.0 / 3.0;

/// What scoring needs from the pod, resolved against the snapshot once per
/// decision.
pub(super) struct ScoreInputs {
    /// The owner's id, if any pod of that owner is accounted.
    owner: Option<u32>,
    /// Ids of the pod's images that some node has (one per container).
    images: Vec<u32>,
    /// The number of the pod's container images.
    image_count: i64,
    /// Whether balanced allocation applies (kube skips it for pods that
    /// request neither cpu nor memory, so they don't pile onto one node).
    balanced: bool,
}

impl ScoreInputs {
    pub fn new(req: &Requirements, snapshot: &Snapshot) -> Self {
        Self {
            owner: req.owner.as_deref().and_then(|uid| snapshot.owner_id(uid)),
            images: req
                .images
                .iter()
                .filter_map(|image| snapshot.image_id(image))
                .collect(),
            image_count: req.images.len() as i64,
            balanced: req.requests.milli_cpu != 0 || req.requests.memory != 0,
        }
    }
}

/// A feasible node's raw scores.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    /// Position in the snapshot's nodes.
    pub node: usize,
    least_allocated: i64,
    balanced_allocation: i64,
    /// Sum of the weights of the preferred terms the node matches.
    preferred_weight: i64,
    /// PreferNoSchedule taints the pod does not tolerate.
    intolerable_taints: i64,
    /// Pods of the same owner on the node.
    owner_pods: i64,
    image_locality: i64,
}

impl Candidate {
    /// The raw scores of `nodes[node]`, a node that passed the filters.
    pub fn new(decision: &Decision<'_>, node: usize, entry: &NodeEntry) -> Self {
        let (req, inputs) = (decision.req, &decision.scoring);
        Self {
            node,
            least_allocated: least_allocated(req, entry),
            balanced_allocation: if inputs.balanced {
                balanced_allocation(req, entry)
            } else {
                0
            },
            preferred_weight: decision.affinity.preferred_weight(entry, decision.snapshot),
            intolerable_taints: entry
                .taints
                .iter()
                .filter(|taint| {
                    taint.effect == TaintEffect::PreferNoSchedule && !req.tolerates(taint)
                })
                .count() as i64,
            owner_pods: inputs
                .owner
                .map_or(0, |owner| i64::from(entry.usage.owner_pods(owner))),
            image_locality: image_locality(inputs, entry),
        }
    }
}

/// The position (in the snapshot's nodes) of the best candidate: highest
/// weighted sum, the earliest visited among equals.
pub(super) fn best(candidates: &[Candidate], snapshot: &Snapshot) -> usize {
    let max = |score: fn(&Candidate) -> i64| candidates.iter().map(score).max().unwrap_or(0);
    let max_preferred = max(|c| c.preferred_weight);
    let max_intolerable = max(|c| c.intolerable_taints);
    let max_owner_pods = max(|c| c.owner_pods);
    let nodes = snapshot.nodes();

    // SelectorSpread's zone counts: the owner's pods per zone over the
    // candidates (only needed when some candidate has such pods).
    let mut zone_pods = Vec::new();
    let mut have_zones = false;
    if max_owner_pods > 0 {
        zone_pods = vec![0i64; snapshot.zone_count()];
        for candidate in candidates {
            if let Some(zone) = nodes[candidate.node].zone {
                zone_pods[zone as usize] += candidate.owner_pods;
                have_zones = true;
            }
        }
    }
    let max_zone_pods = zone_pods.iter().copied().max().unwrap_or(0);

    let mut best = (i64::MIN, 0);
    for candidate in candidates {
        let spread = if max_owner_pods == 0 {
            MAX_NODE_SCORE
        } else {
            let mut score = fraction_left(max_owner_pods, candidate.owner_pods);
            if have_zones && let Some(zone) = nodes[candidate.node].zone {
                let zone_score = fraction_left(max_zone_pods, zone_pods[zone as usize]);
                score = score * (1.0 - ZONE_WEIGHTING) + ZONE_WEIGHTING * zone_score;
            }
            score as i64
        };
        let total = WEIGHT_LEAST_ALLOCATED * candidate.least_allocated
            + WEIGHT_BALANCED_ALLOCATION * candidate.balanced_allocation
            + WEIGHT_NODE_AFFINITY * normalize(candidate.preferred_weight, max_preferred)
            + WEIGHT_SPREAD * spread
            + WEIGHT_IMAGE_LOCALITY * candidate.image_locality
            + WEIGHT_TAINT_TOLERATION
                * normalize_reverse(candidate.intolerable_taints, max_intolerable);
        if total > best.0 {
            best = (total, candidate.node);
        }
    }
    best.1
}

/// kube's `DefaultNormalizeScore`: scaled so the highest is 100.
fn normalize(score: i64, max: i64) -> i64 {
    if max == 0 {
        score
    } else {
        percent_floor(score, max)
    }
}

/// kube's `DefaultNormalizeScore` reversed: the lowest raw score gets 100.
fn normalize_reverse(score: i64, max: i64) -> i64 {
    if max == 0 {
        MAX_NODE_SCORE
    } else {
        MAX_NODE_SCORE - percent_floor(score, max)
    }
}

/// `MAX_NODE_SCORE × part / whole` rounded down, as kube's integer
/// arithmetic computes it, for `0 ≤ part ≤ whole`. Computed in floating
/// point because an integer division costs several times a float one on
/// this hot path; the result is the same while `100 × whole` is exact in
/// an f64 and `1 / whole` exceeds the quotient's rounding error (whole
/// below about 9 × 10^13: memory below 80 TiB).
fn percent_floor(part: i64, whole: i64) -> i64 {
    (part as f64 * MAX_NODE_SCORE as f64 / whole as f64) as i64
}

/// SelectorSpread's `MaxNodeScore × (max − count) / max` (as a float, as kube
/// computes it); 100 when `max` is 0.
fn fraction_left(max: i64, count: i64) -> f64 {
    if max == 0 {
        MAX_NODE_SCORE as f64
    } else {
        MAX_NODE_SCORE as f64 * ((max - count) as f64 / max as f64)
    }
}

/// LeastAllocated over cpu and memory (weight 1 each), with the node's and
/// the pod's non-zero requests (100m / 200Mi for containers that request
/// nothing), skipping a resource the node has none of.
fn least_allocated(req: &Requirements, node: &NodeEntry) -> i64 {
    let (allocatable, used, wanted) = (&node.allocatable, &node.usage.requested, &req.requests);
    let resources = [
        (
            allocatable.milli_cpu,
            node.inverse_capacity[0],
            used.non_zero_milli_cpu + wanted.non_zero_milli_cpu,
        ),
        (
            allocatable.memory,
            node.inverse_capacity[1],
            used.non_zero_memory + wanted.non_zero_memory,
        ),
    ];
    let (mut score, mut weight) = (0, 0);
    for (capacity, inverse, requested) in resources {
        if capacity == 0 {
            continue;
        }
        if requested <= capacity {
            score += percent_floor_by_inverse(capacity - requested, inverse);
        }
        weight += 1;
    }
    // The weights are 1 each: a constant divisor.
    match weight {
        2 => score / 2,
        _ => score,
    }
}

/// `floor(100 × part / whole)` given `1 / whole`: the product is within a
/// few ulps (≤ 5·10⁻¹⁴ at 100) of the exact quotient, and an exact
/// quotient short of an integer falls short by at least `1 / whole`, so
/// adding 10⁻¹³ before truncating gives the integer result for every
/// `whole` below 10¹³ (memory below 9 TiB; beyond, a score may be 1 off).
fn percent_floor_by_inverse(part: i64, inverse: f64) -> i64 {
    (part as f64 * inverse * MAX_NODE_SCORE as f64 + 1e-13) as i64
}

/// BalancedAllocation over cpu and memory with the actual requests:
/// `(1 − |cpu fraction − memory fraction| / 2) × 100`, fractions capped at 1.
fn balanced_allocation(req: &Requirements, node: &NodeEntry) -> i64 {
    let (allocatable, used, wanted) = (&node.allocatable, &node.usage.requested, &req.requests);
    let fraction = |capacity: i64, inverse: f64, requested: i64| {
        (capacity != 0).then(|| (requested as f64 * inverse).min(1.0))
    };
    let cpu = fraction(
        allocatable.milli_cpu,
        node.inverse_capacity[0],
        used.milli_cpu + wanted.milli_cpu,
    );
    let memory = fraction(
        allocatable.memory,
        node.inverse_capacity[1],
        used.memory + wanted.memory,
    );
    let deviation = match (cpu, memory) {
        (Some(cpu), Some(memory)) => ((cpu - memory) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - deviation) * MAX_NODE_SCORE as f64) as i64
}

/// Artifact locality: 100 × (the pod's container images already on the
/// node) / (its container images). Kubernetes weighs each image by its size
/// and how many nodes have it, with thresholds (23 MB to 1 GB per
/// container) that would score every Wasm artifact of a few MB as 0; a
/// plain count gives a small artifact the same pull as a large image.
fn image_locality(inputs: &ScoreInputs, node: &NodeEntry) -> i64 {
    if inputs.images.is_empty() {
        return 0;
    }
    let present = inputs
        .images
        .iter()
        .filter(|&&id| node.has_image(id))
        .count() as i64;
    MAX_NODE_SCORE * present / inputs.image_count
}
