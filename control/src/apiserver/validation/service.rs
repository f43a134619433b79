//! Services: type, ports (numbers, names, protocols, target ports, node
//! ports), cluster IPs and families, traffic policies, session affinity,
//! and which cluster IPs an update may change.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::field::{self, FieldPath, Json, Rendered, go_quote};
use super::meta::{
    FIELD_IMMUTABLE, NameRule, validate_labels, validate_object_meta, validate_object_meta_update,
};
use super::pod::port_num_or_name;
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PORT_PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const MAX_CLIENT_IP_AFFINITY_SECONDS: i32 = 86400;

/// The fields of a spec after Kubernetes' defaulting and its syncing of
/// `clusterIP` with `clusterIPs`.
struct Effective<'a> {
    spec: &'a ServiceSpec,
    service_type: &'a str,
    cluster_ip: String,
    cluster_ips: Vec<String>,
}

impl<'a> Effective<'a> {
    fn of(spec: &'a ServiceSpec) -> Self {
        let service_type = spec
            .type_
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("ClusterIP");
        let mut cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
        let mut cluster_ips = spec.cluster_ips.clone().unwrap_or_default();
        if cluster_ips.is_empty() && !cluster_ip.is_empty() {
            cluster_ips.push(cluster_ip.clone());
        }
        if cluster_ip.is_empty()
            && let Some(first) = cluster_ips.first()
        {
            cluster_ip.clone_from(first);
        }
        Self {
            spec,
            service_type,
            cluster_ip,
            cluster_ips,
        }
    }

    fn is_headless(&self) -> bool {
        self.cluster_ip == "None"
    }

    fn ports(&self) -> &'a [ServicePort] {
        self.spec.ports.as_deref().unwrap_or_default()
    }

    fn externally_accessible(&self) -> bool {
        matches!(self.service_type, "LoadBalancer" | "NodePort")
            || self
                .spec
                .external_ips
                .as_ref()
                .is_some_and(|ips| !ips.is_empty())
    }

    fn needs_health_check(&self) -> bool {
        self.service_type == "LoadBalancer"
            && self.spec.external_traffic_policy.as_deref() == Some("Local")
    }
}

fn protocol(port: &ServicePort) -> &str {
    port.protocol
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("TCP")
}

impl Validate for Service {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1035Label);
        let default_spec = ServiceSpec::default();
        causes.extend(validate_service_spec(&Effective::of(
            self.spec.as_ref().unwrap_or(&default_spec),
        )));
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        let default_spec = ServiceSpec::default();
        let new_spec = self.spec.as_ref().unwrap_or(&default_spec);
        let old_spec = old.spec.as_ref().unwrap_or(&default_spec);
        causes.extend(validate_cluster_ips_update(
            &Effective::of(new_spec),
            &Effective::of(old_spec),
        ));
        causes.extend(self.validate_create());
        dedup(causes)
    }
}

fn validate_service_spec(service: &Effective<'_>) -> Vec<Cause> {
    let path = FieldPath::new("spec");
    let spec = service.spec;
    let ports = service.ports();
    let mut causes = Vec::new();
    if ports.is_empty() && !service.is_headless() && service.service_type != "ExternalName" {
        causes.push(field::required(&path.child("ports"), ""));
    }
    match service.service_type {
        "LoadBalancer" | "NodePort" if service.is_headless() => causes.push(field::invalid(
            &path.child("clusterIPs").index(0),
            &"None",
            &format!(
                "may not be set to 'None' for {} services",
                service.service_type
            ),
        )),
        "ExternalName" => {
            if !service.cluster_ips.is_empty() {
                causes.push(field::forbidden(
                    &path.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
                causes.push(field::forbidden(
                    &path.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if spec.ip_family_policy.is_some() {
                causes.push(field::forbidden(
                    &path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let external_name = spec.external_name.as_deref().unwrap_or_default();
            let cname = external_name.strip_suffix('.').unwrap_or(external_name);
            if cname.is_empty() {
                causes.push(field::required(&path.child("externalName"), ""));
            } else {
                causes.extend(field::invalid_each(
                    &path.child("externalName"),
                    cname,
                    rules::dns1123_subdomain(cname),
                ));
            }
        }
        _ => {}
    }

    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        causes.extend(validate_service_port(
            port,
            ports.len() > 1,
            &mut names,
            &path.child("ports").index(i),
        ));
    }
    if spec.selector.is_some() {
        causes.extend(validate_labels(
            spec.selector.as_ref(),
            &path.child("selector"),
        ));
    }
    causes.extend(validate_session_affinity(spec, &path));
    causes.extend(validate_cluster_ips(service, &path));
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let ip_path = path.child("externalIPs").index(i);
        match rules::parse_ip(ip) {
            None => causes.push(field::invalid(&ip_path, ip, rules::INVALID_IP)),
            Some(parsed) => causes.extend(validate_non_special_ip(ip, parsed, &ip_path)),
        }
    }
    if !SERVICE_TYPES.contains(&service.service_type) {
        causes.push(field::not_supported(
            &path.child("type"),
            &service.service_type,
            &SERVICE_TYPES,
        ));
    }
    if service.service_type == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port.is_some_and(|p| p != 0) {
                causes.push(field::forbidden(
                    &path.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let Some(node_port) = port.node_port.filter(|p| *p != 0) else {
            continue;
        };
        if !node_ports.insert((protocol(port), node_port)) {
            causes.push(field::duplicate(
                &path.child("ports").index(i).child("nodePort"),
                &node_port,
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !seen.insert((protocol(port), port.port)) {
            let key = format!(
                "{{\"Name\":\"\",\"Protocol\":{},\"AppProtocol\":null,\"Port\":{},\"TargetPort\":0,\"NodePort\":0}}",
                go_quote(protocol(port)),
                port.port
            );
            causes.push(field::duplicate(
                &path.child("ports").index(i),
                &Rendered(key),
            ));
        }
    }
    let ranges = spec
        .load_balancer_source_ranges
        .as_deref()
        .unwrap_or_default();
    if !ranges.is_empty() {
        let ranges_path = path.child("LoadBalancerSourceRanges");
        if service.service_type != "LoadBalancer" {
            causes.push(field::forbidden(
                &ranges_path,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, range) in ranges.iter().enumerate() {
            if rules::parse_cidr(range.trim()).is_none() {
                causes.push(field::invalid(
                    &ranges_path.index(i),
                    &range.trim(),
                    rules::INVALID_CIDR,
                ));
            }
        }
    }
    if spec.allocate_load_balancer_node_ports.is_some() && service.service_type != "LoadBalancer" {
        causes.push(field::forbidden(
            &path.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if let Some(policy) = spec
        .external_traffic_policy
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if !service.externally_accessible() {
            causes.push(field::invalid(
                &path.child("externalTrafficPolicy"),
                &policy,
                "may only be set for externally-accessible services",
            ));
        } else if !matches!(policy, "Cluster" | "Local") {
            causes.push(field::not_supported(
                &path.child("externalTrafficPolicy"),
                &policy,
                &["Cluster", "Local"],
            ));
        }
    }
    let health_check_port = spec.health_check_node_port.unwrap_or_default();
    if !service.needs_health_check() && health_check_port != 0 {
        causes.push(field::invalid(
            &path.child("healthCheckNodePort"),
            &health_check_port,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    } else if health_check_port != 0 {
        for message in rules::port_number(i64::from(health_check_port)) {
            causes.push(field::invalid(
                &path.child("healthCheckNodePort"),
                &health_check_port,
                &message,
            ));
        }
    }
    if let Some(policy) = spec.internal_traffic_policy.as_deref()
        && !matches!(policy, "Cluster" | "Local")
    {
        causes.push(field::not_supported(
            &path.child("internalTrafficPolicy"),
            &policy,
            &["Cluster", "Local"],
        ));
    }
    if let Some(distribution) = spec.traffic_distribution.as_deref()
        && !matches!(
            distribution,
            "PreferClose" | "PreferSameZone" | "PreferSameNode"
        )
    {
        causes.push(field::not_supported(
            &path.child("trafficDistribution"),
            &distribution,
            &["PreferClose", "PreferSameZone", "PreferSameNode"],
        ));
    }
    causes
}

fn validate_service_port(
    port: &ServicePort,
    require_name: bool,
    names: &mut BTreeSet<String>,
    path: &FieldPath,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = port.name.as_deref().unwrap_or_default();
    if require_name && name.is_empty() {
        causes.push(field::required(&path.child("name"), ""));
    } else if !name.is_empty() {
        causes.extend(field::invalid_each(
            &path.child("name"),
            name,
            rules::dns1123_label(name),
        ));
        if !names.insert(name.to_owned()) {
            causes.push(field::duplicate(&path.child("name"), &name));
        }
    }
    for message in rules::port_number(i64::from(port.port)) {
        causes.push(field::invalid(&path.child("port"), &port.port, &message));
    }
    if !PORT_PROTOCOLS.contains(&protocol(port)) {
        causes.push(field::not_supported(
            &path.child("protocol"),
            &protocol(port),
            &PORT_PROTOCOLS,
        ));
    }
    // An absent (or zero) target port is defaulted to the port.
    let target = match &port.target_port {
        None | Some(IntOrString::Int(0)) => IntOrString::Int(port.port),
        Some(IntOrString::String(name)) if name.is_empty() => IntOrString::Int(port.port),
        Some(target) => target.clone(),
    };
    causes.extend(port_num_or_name(&target, &path.child("targetPort")));
    if let Some(app_protocol) = &port.app_protocol {
        causes.extend(field::invalid_each(
            &path.child("appProtocol"),
            app_protocol,
            rules::qualified_name(app_protocol),
        ));
    }
    causes
}

fn validate_session_affinity(spec: &ServiceSpec, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    let affinity = spec
        .session_affinity
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("None");
    match affinity {
        "ClientIP" => {
            if let Some(timeout) = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                && !(1..=MAX_CLIENT_IP_AFFINITY_SECONDS).contains(&timeout)
            {
                causes.push(field::invalid(
                    &path
                        .child("sessionAffinityConfig")
                        .child("clientIP")
                        .child("timeoutSeconds"),
                    &timeout,
                    &format!(
                        "must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"
                    ),
                ));
            }
        }
        "None" => {
            if spec.session_affinity_config.is_some() {
                causes.push(field::forbidden(
                    &path.child("sessionAffinityConfig"),
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => causes.push(field::not_supported(
            &path.child("sessionAffinity"),
            &other,
            &["ClientIP", "None"],
        )),
    }
    causes
}

fn validate_cluster_ips(service: &Effective<'_>, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if service.service_type == "ExternalName" {
        return causes;
    }
    let spec = service.spec;
    let ips = &service.cluster_ips;
    let ips_path = path.child("clusterIPs");
    if let (Some(ip), Some(first)) = (
        spec.cluster_ip.as_deref().filter(|i| !i.is_empty()),
        ips.first(),
    ) && ip != first
    {
        causes.push(field::invalid(
            &ips_path,
            &Json(ips),
            "first value must match `clusterIP`",
        ));
    }
    let families = spec.ip_families.as_deref().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, family) in families.iter().enumerate() {
        if !matches!(family.as_str(), "IPv4" | "IPv6") {
            causes.push(field::not_supported(
                &path.child("ipFamilies").index(i),
                family,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(family) {
            causes.push(field::duplicate(&path.child("ipFamilies").index(i), family));
        }
    }
    if let Some(policy) = &spec.ip_family_policy
        && !matches!(
            policy.as_str(),
            "PreferDualStack" | "RequireDualStack" | "SingleStack"
        )
    {
        causes.push(field::not_supported(
            &path.child("ipFamilyPolicy"),
            policy,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    let mut has_invalid = false;
    let mut parsed: Vec<IpAddr> = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                has_invalid = true;
                causes.push(field::invalid(
                    &ips_path,
                    &Json(ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        match rules::parse_ip(ip) {
            Some(address) => parsed.push(address),
            None => {
                has_invalid = true;
                causes.push(field::invalid(&ips_path.index(i), ip, rules::INVALID_IP));
            }
        }
    }
    if ips.len() > 2 {
        causes.push(field::invalid(
            &ips_path,
            &Json(ips),
            "may only hold up to 2 values",
        ));
    }
    if has_invalid {
        return causes;
    }
    if let [a, b, ..] = parsed.as_slice()
        && !rules::is_dual_stack(*a, *b)
    {
        causes.push(field::invalid(
            &ips_path,
            &Json(ips),
            "may specify no more than one IP for each IP family",
        ));
    }
    if !service.is_headless() {
        for (i, (address, family)) in parsed.iter().zip(families).enumerate() {
            let expected = match family.as_str() {
                "IPv4" if address.is_ipv6() => "IPv4",
                "IPv6" if address.is_ipv4() => "IPv6",
                _ => continue,
            };
            causes.push(field::invalid(
                &ips_path.index(i),
                &ips[i],
                &format!("expected an {expected} value as indicated by `ipFamilies[{i}]`"),
            ));
        }
    }
    causes
}

/// Kubernetes' `ValidateNonSpecialIP`: no unspecified, loopback or
/// link-local addresses where traffic is to be sent.
pub(super) fn validate_non_special_ip(text: &str, ip: IpAddr, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    if ip.is_unspecified() {
        causes.push(field::invalid(
            path,
            &text,
            &format!("may not be unspecified ({text})"),
        ));
    }
    if ip.is_loopback() {
        causes.push(field::invalid(
            path,
            &text,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local_unicast = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local_unicast {
        causes.push(field::invalid(
            path,
            &text,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let link_local_multicast = match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    };
    if link_local_multicast {
        causes.push(field::invalid(
            path,
            &text,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    causes
}

/// Cluster IPs may be added (dual-stack upgrade) or the secondary removed,
/// never changed; an update that leaves them out keeps the allocated ones,
/// as the server copies them before validating.
fn validate_cluster_ips_update(new: &Effective<'_>, old: &Effective<'_>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if new.service_type == "ExternalName"
        || old.service_type == "ExternalName"
        || (new.is_headless() && old.is_headless())
    {
        return causes;
    }
    let path = FieldPath::new("spec").child("clusterIPs");
    let old_ips = &old.cluster_ips;
    let new_ips = if new.cluster_ips.is_empty() {
        old_ips
    } else {
        &new.cluster_ips
    };
    if new_ips.len() == old_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                causes.push(field::invalid(
                    &path.index(i),
                    &Json(new_ips),
                    "may not change once set",
                ));
            }
        }
    } else if new_ips.len() < old_ips.len() {
        if new_ips.first() != old_ips.first() {
            causes.push(field::invalid(
                &path.index(0),
                &Json(new_ips),
                "may not change once set",
            ));
        }
        if new_ips.len() == 1 && new.spec.ip_family_policy.as_deref() != Some("SingleStack") {
            causes.push(field::invalid(
                &path.index(0),
                &Json(new_ips),
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips.first() != old_ips.first() {
        causes.push(field::invalid(
            &path.index(0),
            &Json(new_ips),
            "may not change once set",
        ));
    }
    let (new_port, old_port) = (
        new.spec.health_check_node_port.unwrap_or_default(),
        old.spec.health_check_node_port.unwrap_or_default(),
    );
    if new.needs_health_check() && old.needs_health_check() && new_port != 0 && new_port != old_port
    {
        causes.push(field::forbidden(
            &FieldPath::new("spec").child("healthCheckNodePort"),
            FIELD_IMMUTABLE,
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn service(spec: Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    /// A service with `spec` is rejected for exactly `expected`.
    fn check(spec: Value, expected: &[(CauseType, &str)]) {
        let causes = service(spec.clone()).validate_create();
        assert_eq!(summary(&causes), expected, "{spec}\n{causes:#?}");
    }

    #[test]
    fn services() {
        check(
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
            &[],
        );
        check(
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                                                 {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}],
                   "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local", "sessionAffinity": "ClientIP"}),
            &[],
        );
        check(
            json!({"type": "ExternalName", "externalName": "db.example.com."}),
            &[],
        );
        check(json!({"clusterIP": "None"}), &[]);
        check(
            json!({"clusterIPs": ["10.0.0.1", "fd00::1"], "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80}]}),
            &[],
        );

        check(json!({}), &[(Required, "spec.ports")]);
        check(
            json!({"type": "Magic", "ports": [{"port": 80}]}),
            &[(NotSupported, "spec.type")],
        );
        check(
            json!({"type": "ExternalName"}),
            &[(Required, "spec.externalName")],
        );
        check(
            json!({"type": "ExternalName", "externalName": "Not Valid", "clusterIP": "10.0.0.1"}),
            &[
                (Forbidden, "spec.clusterIPs"),
                (Invalid, "spec.externalName"),
            ],
        );
        check(
            json!({"ports": [{"port": 0}, {"port": 70000, "name": "b"}]}),
            &[
                (Required, "spec.ports[0].name"),
                (Invalid, "spec.ports[0].port"),
                (Invalid, "spec.ports[0].targetPort"),
                (Invalid, "spec.ports[1].port"),
                (Invalid, "spec.ports[1].targetPort"),
            ],
        );
        check(
            json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}, {"name": "B", "port": 82}]}),
            &[
                (Duplicate, "spec.ports[1].name"),
                (Invalid, "spec.ports[2].name"),
            ],
        );
        check(
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
            &[(Duplicate, "spec.ports[1]")],
        );
        check(
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "protocol": "UDP"}]}),
            &[],
        );
        check(
            json!({"ports": [{"port": 80, "protocol": "ICMP"}]}),
            &[(NotSupported, "spec.ports[0].protocol")],
        );
        check(json!({"ports": [{"port": 80, "targetPort": 0}]}), &[]);
        check(
            json!({"ports": [{"port": 80, "targetPort": 70000}]}),
            &[(Invalid, "spec.ports[0].targetPort")],
        );
        check(
            json!({"ports": [{"port": 80, "targetPort": "HTTP"}]}),
            &[
                (Invalid, "spec.ports[0].targetPort"),
                (Invalid, "spec.ports[0].targetPort"),
            ],
        );
        check(
            json!({"ports": [{"port": 80, "nodePort": 30000}]}),
            &[(Forbidden, "spec.ports[0].nodePort")],
        );
        check(
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30000}, {"name": "b", "port": 81, "nodePort": 30000}]}),
            &[(Duplicate, "spec.ports[1].nodePort")],
        );
        check(
            json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}),
            &[(Invalid, "spec.clusterIPs[0]")],
        );
        check(
            json!({"clusterIP": "10.0.0.300", "ports": [{"port": 80}]}),
            &[(Invalid, "spec.clusterIPs[0]")],
        );
        check(
            json!({"clusterIPs": ["10.0.0.1", "10.0.0.2"], "ports": [{"port": 80}]}),
            &[(Invalid, "spec.clusterIPs")],
        );
        check(
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"], "ports": [{"port": 80}]}),
            &[(Invalid, "spec.clusterIPs")],
        );
        check(
            json!({"clusterIP": "10.0.0.1", "ipFamilies": ["IPv6"], "ports": [{"port": 80}]}),
            &[(Invalid, "spec.clusterIPs[0]")],
        );
        check(
            json!({"sessionAffinity": "Sticky", "ports": [{"port": 80}]}),
            &[(NotSupported, "spec.sessionAffinity")],
        );
        check(
            json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
            &[(Invalid, "spec.externalTrafficPolicy")],
        );
        check(
            json!({"externalIPs": ["127.0.0.1"], "ports": [{"port": 80}]}),
            &[(Invalid, "spec.externalIPs[0]")],
        );
        check(
            json!({"loadBalancerSourceRanges": ["10.0.0.0/8"], "ports": [{"port": 80}]}),
            &[(Forbidden, "spec.LoadBalancerSourceRanges")],
        );
        check(
            json!({"selector": {"app": "-x"}, "ports": [{"port": 80}]}),
            &[(Invalid, "spec.selector")],
        );

        let causes = service(json!({"type": "Magic", "ports": [{"port": 80}]})).validate_create();
        assert_eq!(
            causes[0].message,
            "Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
        );
        let named: Service = serde_json::from_value(json!({"metadata": {"name": "1web", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}})).unwrap();
        assert_eq!(
            summary(&named.validate_create()),
            [(Invalid, "metadata.name")]
        );
    }

    #[test]
    fn service_updates() {
        let check = |old: Value, new: Value, expected: &[(CauseType, &str)]| {
            let causes = service(new.clone()).validate_update(&service(old));
            assert_eq!(summary(&causes), expected, "{new}\n{causes:#?}");
        };
        let allocated =
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80}]});
        check(allocated.clone(), allocated.clone(), &[]);
        check(json!({"ports": [{"port": 80}]}), allocated.clone(), &[]);
        check(allocated.clone(), json!({"ports": [{"port": 81}]}), &[]);
        check(
            allocated.clone(),
            json!({"clusterIP": "10.0.0.2", "ports": [{"port": 80}]}),
            &[(Invalid, "spec.clusterIPs[0]")],
        );
        check(
            allocated.clone(),
            json!({"clusterIPs": ["10.0.0.1", "fd00::1"], "ports": [{"port": 80}]}),
            &[],
        );
        check(
            json!({"clusterIPs": ["10.0.0.1", "fd00::1"], "ports": [{"port": 80}]}),
            json!({"clusterIPs": ["10.0.0.1"], "ports": [{"port": 80}]}),
            &[(Invalid, "spec.clusterIPs[0]")],
        );
        check(
            json!({"clusterIPs": ["10.0.0.1", "fd00::1"], "ports": [{"port": 80}]}),
            json!({"clusterIPs": ["10.0.0.1"], "ipFamilyPolicy": "SingleStack", "ports": [{"port": 80}]}),
            &[],
        );
        check(
            allocated.clone(),
            json!({"type": "ExternalName", "externalName": "x.example.com"}),
            &[],
        );
    }
}
