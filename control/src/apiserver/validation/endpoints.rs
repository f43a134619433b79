//! Endpoints and EndpointSlices: addresses of the right kind, ports with
//! names and protocols, and the slice's fixed address type.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, Endpoints};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::field::{self, FieldPath};
use super::meta::{
    FIELD_IMMUTABLE, NameRule, validate_labels, validate_object_meta, validate_object_meta_update,
};
use super::service::validate_non_special_ip;
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

const PORT_PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;
const MAX_TOPOLOGY_LABELS: usize = 16;

impl Validate for Endpoints {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1123Subdomain);
        for (i, subset) in self.subsets.iter().flatten().enumerate() {
            let path = FieldPath::new("subsets").index(i);
            let addresses = subset.addresses.as_deref().unwrap_or_default();
            let not_ready = subset.not_ready_addresses.as_deref().unwrap_or_default();
            if addresses.is_empty() && not_ready.is_empty() {
                causes.push(field::required(
                    &path,
                    "must specify `addresses` or `notReadyAddresses`",
                ));
            }
            for (j, address) in addresses.iter().enumerate() {
                causes.extend(validate_endpoint_address(
                    address,
                    &path.child("addresses").index(j),
                ));
            }
            for (j, address) in not_ready.iter().enumerate() {
                causes.extend(validate_endpoint_address(
                    address,
                    &path.child("notReadyAddresses").index(j),
                ));
            }
            let ports = subset.ports.as_deref().unwrap_or_default();
            for (j, port) in ports.iter().enumerate() {
                causes.extend(validate_endpoint_port(
                    port,
                    ports.len() > 1,
                    &path.child("ports").index(j),
                ));
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(self.validate_create());
        dedup(causes)
    }
}

fn validate_endpoint_address(address: &EndpointAddress, path: &FieldPath) -> Vec<Cause> {
    let mut causes = Vec::new();
    match rules::parse_ip(&address.ip) {
        None => causes.push(field::invalid(
            &path.child("ip"),
            &address.ip,
            rules::INVALID_IP,
        )),
        Some(ip) => causes.extend(validate_non_special_ip(&address.ip, ip, &path.child("ip"))),
    }
    if let Some(hostname) = address.hostname.as_deref().filter(|h| !h.is_empty()) {
        causes.extend(field::invalid_each(
            &path.child("hostname"),
            hostname,
            rules::dns1123_label(hostname),
        ));
    }
    if let Some(node) = &address.node_name {
        causes.extend(field::invalid_each(
            &path.child("nodeName"),
            node,
            rules::dns1123_subdomain(node),
        ));
    }
    causes
}

fn validate_endpoint_port(port: &EndpointPort, require_name: bool, path: &FieldPath) -> Vec<Cause> {
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
    }
    for message in rules::port_number(i64::from(port.port)) {
        causes.push(field::invalid(&path.child("port"), &port.port, &message));
    }
    let protocol = port
        .protocol
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("TCP");
    if !PORT_PROTOCOLS.contains(&protocol) {
        causes.push(field::not_supported(
            &path.child("protocol"),
            &protocol,
            &PORT_PROTOCOLS,
        ));
    }
    if let Some(app_protocol) = &port.app_protocol {
        causes.extend(field::invalid_each(
            &path.child("appProtocol"),
            app_protocol,
            rules::qualified_name(app_protocol),
        ));
    }
    causes
}

/// Kubernetes' `IsFullyQualifiedDomainName`: a subdomain of at least two
/// labels, optionally ending in a dot.
fn fully_qualified_domain_name(name: &str, path: &FieldPath) -> Vec<Cause> {
    if name.is_empty() {
        return vec![field::required(path, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errors = rules::dns1123_subdomain(name);
    if !errors.is_empty() {
        return vec![field::invalid(path, &name, &errors.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![field::invalid(
            path,
            &name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for label in name.split('.') {
        let errors = rules::dns1123_label(label);
        if !errors.is_empty() {
            return vec![field::invalid(path, &label, &errors.join(","))];
        }
    }
    Vec::new()
}

impl Validate for EndpointSlice {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1123Subdomain);
        let address_type = self.address_type.as_str();
        if address_type.is_empty() {
            causes.push(field::required(&FieldPath::new("addressType"), ""));
        } else if !ADDRESS_TYPES.contains(&address_type) {
            causes.push(field::not_supported(
                &FieldPath::new("addressType"),
                &address_type,
                &ADDRESS_TYPES,
            ));
        }
        let endpoints = self.endpoints.as_deref().unwrap_or_default();
        let endpoints_path = FieldPath::new("endpoints");
        if endpoints.len() > MAX_ENDPOINTS {
            causes.push(field::too_many(
                &endpoints_path,
                endpoints.len(),
                MAX_ENDPOINTS,
            ));
        } else {
            for (i, endpoint) in endpoints.iter().enumerate() {
                let path = endpoints_path.index(i);
                let addresses_path = path.child("addresses");
                if endpoint.addresses.is_empty() {
                    causes.push(field::required(
                        &addresses_path,
                        "must contain at least 1 address",
                    ));
                } else if endpoint.addresses.len() > MAX_ADDRESSES {
                    causes.push(field::too_many(
                        &addresses_path,
                        endpoint.addresses.len(),
                        MAX_ADDRESSES,
                    ));
                }
                for (j, address) in endpoint.addresses.iter().enumerate() {
                    let path = addresses_path.index(j);
                    let ip = rules::parse_ip(address);
                    match address_type {
                        "IPv4" => match ip.filter(|ip| ip.is_ipv4()) {
                            None => causes.push(field::invalid(
                                &path,
                                address,
                                "must be a valid IPv4 address",
                            )),
                            Some(ip) => causes.extend(validate_non_special_ip(address, ip, &path)),
                        },
                        "IPv6" => match ip.filter(|ip| ip.is_ipv6()) {
                            None => causes.push(field::invalid(
                                &path,
                                address,
                                "must be a valid IPv6 address",
                            )),
                            Some(ip) => causes.extend(validate_non_special_ip(address, ip, &path)),
                        },
                        "FQDN" => causes.extend(fully_qualified_domain_name(address, &path)),
                        _ => {}
                    }
                }
                if let Some(node) = &endpoint.node_name {
                    causes.extend(field::invalid_each(
                        &path.child("nodeName"),
                        node,
                        rules::dns1123_subdomain(node),
                    ));
                }
                let topology_path = path.child("deprecatedTopology");
                let topology = endpoint.deprecated_topology.as_ref();
                if let Some(count) = topology
                    .map(|t| t.len())
                    .filter(|n| *n > MAX_TOPOLOGY_LABELS)
                {
                    causes.push(field::too_many(&topology_path, count, MAX_TOPOLOGY_LABELS));
                }
                causes.extend(validate_labels(topology, &topology_path));
                if let Some(hostname) = &endpoint.hostname {
                    causes.extend(field::invalid_each(
                        &path.child("hostname"),
                        hostname,
                        rules::dns1123_label(hostname),
                    ));
                }
            }
        }
        let ports = self.ports.as_deref().unwrap_or_default();
        let ports_path = FieldPath::new("ports");
        if ports.len() > MAX_PORTS {
            causes.push(field::too_many(&ports_path, ports.len(), MAX_PORTS));
            return causes;
        }
        let mut names = BTreeSet::new();
        for (i, port) in ports.iter().enumerate() {
            let path = ports_path.index(i);
            let name = port.name.as_deref().unwrap_or_default();
            if !name.is_empty() {
                causes.extend(field::invalid_each(
                    &path.child("name"),
                    name,
                    rules::dns1123_label(name),
                ));
            }
            if !names.insert(name) {
                causes.push(field::duplicate(&path.child("name"), &name));
            }
            if let Some(number) = port.port {
                for message in rules::port_number(i64::from(number)) {
                    causes.push(field::invalid(&path.child("port"), &number, &message));
                }
            }
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            if !PORT_PROTOCOLS.contains(&protocol) {
                causes.push(field::not_supported(
                    &path.child("protocol"),
                    &protocol,
                    &PORT_PROTOCOLS,
                ));
            }
            if let Some(app_protocol) = &port.app_protocol {
                causes.extend(field::invalid_each(
                    &path.child("appProtocol"),
                    app_protocol,
                    rules::qualified_name(app_protocol),
                ));
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        causes.extend(self.validate_create());
        if self.address_type != old.address_type {
            causes.push(field::invalid(
                &FieldPath::new("addressType"),
                &self.address_type,
                FIELD_IMMUTABLE,
            ));
        }
        dedup(causes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn check_endpoints(subsets: Value, expected: &[(CauseType, &str)]) {
        let endpoints: Endpoints = serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": subsets}),
        )
        .unwrap();
        assert_eq!(summary(&endpoints.validate_create()), expected, "{subsets}");
    }

    #[test]
    fn endpoints() {
        check_endpoints(
            json!([{"addresses": [{"ip": "10.0.0.5", "nodeName": "n1", "hostname": "web-0"}], "ports": [{"port": 8080}]}]),
            &[],
        );
        check_endpoints(
            json!([{"notReadyAddresses": [{"ip": "fd00::5"}], "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2, "protocol": "UDP"}]}]),
            &[],
        );
        check_endpoints(
            json!([{"ports": [{"port": 80}]}]),
            &[(Required, "subsets[0]")],
        );
        check_endpoints(
            json!([{"addresses": [{"ip": "not-an-ip"}]}]),
            &[(Invalid, "subsets[0].addresses[0].ip")],
        );
        check_endpoints(
            json!([{"addresses": [{"ip": "127.0.0.1"}]}]),
            &[(Invalid, "subsets[0].addresses[0].ip")],
        );
        check_endpoints(
            json!([{"addresses": [{"ip": "169.254.1.1"}]}]),
            &[(Invalid, "subsets[0].addresses[0].ip")],
        );
        check_endpoints(
            json!([{"addresses": [{"ip": "10.0.0.1", "hostname": "A"}]}]),
            &[(Invalid, "subsets[0].addresses[0].hostname")],
        );
        check_endpoints(
            json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 0}, {"name": "b", "port": 80, "protocol": "ICMP"}]}]),
            &[
                (Required, "subsets[0].ports[0].name"),
                (Invalid, "subsets[0].ports[0].port"),
                (NotSupported, "subsets[0].ports[1].protocol"),
            ],
        );
    }

    fn slice(value: Value) -> EndpointSlice {
        let mut value = value;
        value["metadata"] = json!({"name": "web-abc", "namespace": "default"});
        serde_json::from_value(value).unwrap()
    }

    fn check_slice(value: Value, expected: &[(CauseType, &str)]) {
        assert_eq!(
            summary(&slice(value.clone()).validate_create()),
            expected,
            "{value}"
        );
    }

    #[test]
    fn endpoint_slices() {
        check_slice(
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.5"], "nodeName": "n1", "conditions": {"ready": true}}],
                   "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
            &[],
        );
        check_slice(
            json!({"addressType": "FQDN", "endpoints": [{"addresses": ["db.example.com"]}]}),
            &[],
        );
        check_slice(
            json!({"addressType": "IPv6", "endpoints": [{"addresses": ["fd00::5"]}]}),
            &[],
        );
        check_slice(json!({"endpoints": []}), &[(Required, "addressType")]);
        check_slice(
            json!({"addressType": "IPX"}),
            &[(NotSupported, "addressType")],
        );
        check_slice(
            json!({"addressType": "IPv4", "endpoints": [{"addresses": []}]}),
            &[(Required, "endpoints[0].addresses")],
        );
        check_slice(
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}]}),
            &[(Invalid, "endpoints[0].addresses[0]")],
        );
        check_slice(
            json!({"addressType": "IPv6", "endpoints": [{"addresses": ["10.0.0.1"]}]}),
            &[(Invalid, "endpoints[0].addresses[0]")],
        );
        check_slice(
            json!({"addressType": "FQDN", "endpoints": [{"addresses": ["localhost"]}]}),
            &[(Invalid, "endpoints[0].addresses[0]")],
        );
        check_slice(
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "N_1"}]}),
            &[(Invalid, "endpoints[0].nodeName")],
        );
        check_slice(
            json!({"addressType": "IPv4", "ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}, {"name": "B", "protocol": "ICMP"}]}),
            &[
                (Duplicate, "ports[1].name"),
                (Invalid, "ports[2].name"),
                (NotSupported, "ports[2].protocol"),
            ],
        );
        let many: Vec<Value> = (0..1001)
            .map(|_| json!({"addresses": ["10.0.0.1"]}))
            .collect();
        check_slice(
            json!({"addressType": "IPv4", "endpoints": many}),
            &[(TooMany, "endpoints")],
        );

        let old = slice(json!({"addressType": "IPv4"}));
        assert_eq!(
            summary(&slice(json!({"addressType": "IPv6"})).validate_update(&old)),
            [(Invalid, "addressType")]
        );
        assert_eq!(summary(&old.validate_update(&old)), []);
    }
}
