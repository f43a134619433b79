//! Node selectors and node affinity: parsed from the pod once
//! ([`NodeSelectorTerm`], in [`Requirements`](super::Requirements)), then
//! resolved against the snapshot's label ids once per decision
//! ([`ResolvedAffinity`]), so that matching a node compares integers.

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm as ApiNodeSelectorTerm,
};

use super::requirements::Requirements;
use super::snapshot::{NodeEntry, Snapshot};

/// A node selector term: label requirements and field requirements, all of
/// which must hold.
#[derive(Clone, Debug)]
pub(super) struct NodeSelectorTerm {
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

#[derive(Clone, Debug)]
struct LabelRequirement {
    key: String,
    operator: LabelOperator<String>,
}

/// A label requirement's operator, over label values `V` (strings as
/// written, ids once resolved).
#[derive(Clone, Debug)]
enum LabelOperator<V> {
    In(Vec<V>),
    NotIn(Vec<V>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// A `matchFields` requirement: In (equal) or NotIn (not equal) one value.
#[derive(Clone, Debug)]
struct FieldRequirement {
    key: String,
    equal: bool,
    value: String,
}

impl NodeSelectorTerm {
    /// The term, or `None` when it is empty or invalid (Kubernetes' lazy
    /// node selector skips such terms: they match no node).
    pub fn new(term: &ApiNodeSelectorTerm) -> Option<Self> {
        let labels = term
            .match_expressions
            .iter()
            .flatten()
            .map(LabelRequirement::new)
            .collect::<Option<Vec<_>>>()?;
        let fields = term
            .match_fields
            .iter()
            .flatten()
            .map(FieldRequirement::new)
            .collect::<Option<Vec<_>>>()?;
        if labels.is_empty() && fields.is_empty() {
            return None;
        }
        Some(Self { labels, fields })
    }

    fn resolve(&self, snapshot: &Snapshot) -> ResolvedTerm<'_> {
        let ids = |values: &[String]| -> Vec<u32> {
            values
                .iter()
                .filter_map(|value| snapshot.label_id(value))
                .collect()
        };
        let labels = self
            .labels
            .iter()
            .map(|requirement| ResolvedLabel {
                key: snapshot.label_id(&requirement.key),
                operator: match &requirement.operator {
                    LabelOperator::In(values) => LabelOperator::In(ids(values)),
                    LabelOperator::NotIn(values) => LabelOperator::NotIn(ids(values)),
                    LabelOperator::Exists => LabelOperator::Exists,
                    LabelOperator::DoesNotExist => LabelOperator::DoesNotExist,
                    LabelOperator::Gt(bound) => LabelOperator::Gt(*bound),
                    LabelOperator::Lt(bound) => LabelOperator::Lt(*bound),
                },
            })
            .collect();
        ResolvedTerm {
            labels,
            fields: &self.fields,
        }
    }
}

impl LabelRequirement {
    /// With Kubernetes' `labels.NewRequirement` checks on the values.
    fn new(requirement: &NodeSelectorRequirement) -> Option<Self> {
        let values = requirement.values.as_deref().unwrap_or_default();
        let single_integer = || match values {
            [value] => value.parse::<i64>().ok(),
            _ => None,
        };
        let operator = match requirement.operator.as_str() {
            "In" if !values.is_empty() => LabelOperator::In(values.to_vec()),
            "NotIn" if !values.is_empty() => LabelOperator::NotIn(values.to_vec()),
            "Exists" if values.is_empty() => LabelOperator::Exists,
            "DoesNotExist" if values.is_empty() => LabelOperator::DoesNotExist,
            "Gt" => LabelOperator::Gt(single_integer()?),
            "Lt" => LabelOperator::Lt(single_integer()?),
            _ => return None,
        };
        Some(Self {
            key: requirement.key.clone(),
            operator,
        })
    }
}

impl FieldRequirement {
    /// As Kubernetes' field selector requirements: In or NotIn, one value.
    fn new(requirement: &NodeSelectorRequirement) -> Option<Self> {
        let equal = match requirement.operator.as_str() {
            "In" => true,
            "NotIn" => false,
            _ => return None,
        };
        match requirement.values.as_deref() {
            Some([value]) => Some(Self {
                key: requirement.key.clone(),
                equal,
                value: value.clone(),
            }),
            _ => None,
        }
    }

    /// Nodes have one field, `metadata.name`; others read as empty.
    fn matches(&self, node_name: &str) -> bool {
        let field = if self.key == "metadata.name" {
            node_name
        } else {
            ""
        };
        (field == self.value) == self.equal
    }
}

/// A term with label keys and values as snapshot label ids. A key or value
/// no node has resolves to nothing, which no node label equals.
#[derive(Debug)]
struct ResolvedTerm<'a> {
    labels: Vec<ResolvedLabel>,
    fields: &'a [FieldRequirement],
}

#[derive(Debug)]
struct ResolvedLabel {
    key: Option<u32>,
    operator: LabelOperator<u32>,
}

impl ResolvedTerm<'_> {
    fn matches(&self, node: &NodeEntry, snapshot: &Snapshot) -> bool {
        self.labels.iter().all(|requirement| {
            let value = requirement.key.and_then(|key| node.label(key));
            let integer = || value.and_then(|value| snapshot.label_integer(value));
            match &requirement.operator {
                LabelOperator::In(values) => value.is_some_and(|v| values.contains(&v)),
                LabelOperator::NotIn(values) => value.is_none_or(|v| !values.contains(&v)),
                LabelOperator::Exists => value.is_some(),
                LabelOperator::DoesNotExist => value.is_none(),
                LabelOperator::Gt(bound) => integer().is_some_and(|v| v > *bound),
                LabelOperator::Lt(bound) => integer().is_some_and(|v| v < *bound),
            }
        }) && self.fields.iter().all(|field| field.matches(&node.name))
    }
}

/// The pod's node selector, required and preferred node affinity,
/// resolved against a snapshot for one decision.
#[derive(Debug)]
pub(super) struct ResolvedAffinity<'a> {
    /// (key, value) label ids; `None` when a pair names a key or value no
    /// node has, so no node matches.
    node_selector: Option<Vec<(u32, u32)>>,
    /// `None` without required affinity; the terms (ORed) otherwise.
    required: Option<Vec<ResolvedTerm<'a>>>,
    preferred: Vec<(i64, ResolvedTerm<'a>)>,
}

impl<'a> ResolvedAffinity<'a> {
    pub fn new(req: &'a Requirements, snapshot: &Snapshot) -> Self {
        let node_selector = req
            .node_selector
            .iter()
            .map(|(key, value)| Some((snapshot.label_id(key)?, snapshot.label_id(value)?)))
            .collect();
        Self {
            node_selector,
            required: req
                .required_terms
                .as_ref()
                .map(|terms| terms.iter().map(|term| term.resolve(snapshot)).collect()),
            preferred: req
                .preferred_terms
                .iter()
                .map(|(weight, term)| (*weight, term.resolve(snapshot)))
                .collect(),
        }
    }

    /// The NodeAffinity filter: every node selector pair is a label of the
    /// node, and one of the required terms (if any) matches.
    pub fn matches(&self, node: &NodeEntry, snapshot: &Snapshot) -> bool {
        let Some(node_selector) = &self.node_selector else {
            return false;
        };
        node_selector
            .iter()
            .all(|&(key, value)| node.label(key) == Some(value))
            && self
                .required
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|term| term.matches(node, snapshot)))
    }

    /// The NodeAffinity score before normalization: the sum of the weights
    /// of the preferred terms the node matches.
    pub fn preferred_weight(&self, node: &NodeEntry, snapshot: &Snapshot) -> i64 {
        self.preferred
            .iter()
            .filter(|(_, term)| term.matches(node, snapshot))
            .map(|(weight, _)| weight)
            .sum()
    }
}
