//! The string formats of Kubernetes' `apimachinery` validation (DNS names,
//! label keys and values, config keys, port names, IPs), each returning the
//! list of failure messages Kubernetes returns, word for word.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_ERR: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const ENV_VAR_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_ERR: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";
const PERCENT_FMT: &str = "[0-9]+%";
const PERCENT_ERR: &str =
    "a valid percent string must be a numeric string followed by an ending '%'";

/// Longest DNS-1123 label (and DNS-1035 label).
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest name part of a label key, and longest label value.
pub const LABEL_MAX: usize = 63;

/// Kubernetes' `RegexError`: the rule, examples and the regex.
pub fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{message} (regex used for validation is '{format}')");
    }
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{format}')",
        examples.join(" or ")
    )
}

/// `must be no more than N characters` (the DNS and config-key rules).
pub fn max_len_chars(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `must be no more than N bytes` (the label rules).
pub fn max_len_bytes(max: usize) -> String {
    format!("must be no more than {max} bytes")
}

/// `must be between LO and HI, inclusive`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

fn is_label_shaped(value: &str) -> bool {
    let bytes = value.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

fn is_subdomain_shaped(value: &str) -> bool {
    value.split('.').all(is_label_shaped)
}

fn is_dns1035_shaped(value: &str) -> bool {
    let bytes = value.as_bytes();
    is_label_shaped(value) && bytes.first().is_some_and(u8::is_ascii_lowercase)
}

fn is_qualified_name_part(value: &str) -> bool {
    let bytes = value.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| edge(b) || matches!(b, b'-' | b'_' | b'.'))
}

/// An RFC 1123 label (`my-name`), at most 63 characters.
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errors.push(max_len_chars(DNS1123_LABEL_MAX));
    }
    if !is_label_shaped(value) {
        if is_subdomain_shaped(value) {
            errors.push("must not contain dots".to_owned());
        } else {
            errors.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errors
}

/// An RFC 1123 subdomain (`example.com`), at most 253 characters.
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(max_len_chars(DNS1123_SUBDOMAIN_MAX));
    }
    if !is_subdomain_shaped(value) {
        errors.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errors
}

/// An RFC 1035 label (`my-name`, starting with a letter), at most 63
/// characters.
pub fn dns1035_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errors.push(max_len_chars(DNS1123_LABEL_MAX));
    }
    if !is_dns1035_shaped(value) {
        errors.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errors
}

/// The subdomain rule as the label-key rule applies it to prefixes
/// (lengths in bytes).
fn label_prefix(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(max_len_bytes(DNS1123_SUBDOMAIN_MAX));
    }
    if !is_subdomain_shaped(value) {
        errors.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errors
}

/// A qualified name, i.e. a label key: an optional DNS subdomain prefix and
/// `/`, then a name of at most 63 of `[A-Za-z0-9._-]` starting and ending
/// alphanumeric. Also the rule for annotation keys, finalizers and
/// resource names.
pub fn qualified_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                errors.extend(
                    label_prefix(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    LABEL_KEY_ERR,
                    LABEL_KEY_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > LABEL_MAX {
        errors.push(format!("name part {}", max_len_bytes(LABEL_MAX)));
    }
    if !is_qualified_name_part(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_ERR,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9._-]` starting and
/// ending alphanumeric.
pub fn label_value(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_MAX {
        errors.push(max_len_bytes(LABEL_MAX));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

fn chdir_prefix(value: &str) -> Option<String> {
    match value {
        "." => Some("must not be '.'".to_owned()),
        ".." => Some("must not be '..'".to_owned()),
        v if v.starts_with("..") => Some("must not start with '..'".to_owned()),
        _ => None,
    }
}

/// A key of a ConfigMap or Secret: `[-._a-zA-Z0-9]+`, at most 253
/// characters, not `.`, `..` or starting with `..`.
pub fn config_map_key(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(max_len_chars(DNS1123_SUBDOMAIN_MAX));
    }
    let shaped = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !shaped {
        errors.push(regex_error(
            CONFIG_KEY_ERR,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errors.extend(chdir_prefix(value));
    errors
}

/// An environment variable name: `[-._a-zA-Z][-._a-zA-Z0-9]*`, not `.`,
/// `..` or starting with `..`.
pub fn env_var_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let bytes = value.as_bytes();
    let rest = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    let shaped = bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'))
        && bytes.iter().all(rest);
    if !shaped {
        errors.push(regex_error(
            ENV_VAR_ERR,
            ENV_VAR_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errors.extend(chdir_prefix(value));
    errors
}

/// A port number, 1 to 65535.
pub fn port_number(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// An IANA service name as ports are named: at most 15 of `[-a-z0-9]`,
/// at least one letter, no `--`, no leading or trailing `-`.
pub fn port_name(port: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if port.len() > 15 {
        errors.push(max_len_chars(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errors.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_owned(),
        );
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)".to_owned());
    }
    if port.contains("--") {
        errors.push("must not contain consecutive hyphens".to_owned());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errors.push("must not begin or end with a hyphen".to_owned());
    }
    errors
}

/// A percentage, `[0-9]+%`.
pub fn percent(value: &str) -> Vec<String> {
    match value.strip_suffix('%') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Vec::new()
        }
        _ => vec![regex_error(PERCENT_ERR, PERCENT_FMT, &["1%", "93%"])],
    }
}

/// Parses an IP address as Go's `ParseIPSloppy` does: IPv4 octets may
/// carry leading zeros (read as decimal).
pub fn parse_ip(value: &str) -> Option<IpAddr> {
    if value.contains(':') {
        return value.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let octets: Vec<&str> = value.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (slot, octet) in bytes.iter_mut().zip(&octets) {
        if octet.is_empty() || octet.len() > 3 || !octet.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = octet.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(bytes)))
}

/// Parses a CIDR (`10.0.0.0/8`, `fd00::/64`) as Go's `ParseCIDRSloppy`.
pub fn parse_cidr(value: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = value.split_once('/')?;
    let ip = parse_ip(ip)?;
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// Kubernetes' message for a malformed IP.
pub const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
/// Kubernetes' message for a malformed CIDR.
pub const INVALID_CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// Whether two addresses (or CIDRs) are one of each family, as dual-stack
/// lists must be.
pub fn is_dual_stack(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() != b.is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: fn(&str) -> Vec<String>, value: &str, expected: &[&str]) {
        assert_eq!(rule(value), expected, "{value:?}");
    }

    #[test]
    fn dns_names() {
        let label_regex = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
        let subdomain_regex = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        check(dns1123_label, "web-1", &[]);
        check(dns1123_label, "1abc", &[]);
        check(dns1123_label, "web.1", &["must not contain dots"]);
        check(dns1123_label, "Web", &[label_regex]);
        check(dns1123_label, "-web", &[label_regex]);
        check(dns1123_label, "", &[label_regex]);
        check(
            dns1123_label,
            &"a".repeat(64),
            &["must be no more than 63 characters"],
        );
        check(dns1123_subdomain, "example.com", &[]);
        check(dns1123_subdomain, "Web", &[subdomain_regex]);
        check(dns1123_subdomain, "a..b", &[subdomain_regex]);
        check(dns1123_subdomain, "a.", &[subdomain_regex]);
        check(
            dns1123_subdomain,
            &"a".repeat(254),
            &["must be no more than 253 characters"],
        );
        check(dns1035_label, "web", &[]);
        check(
            dns1035_label,
            "1web",
            &[
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ],
        );
    }

    #[test]
    fn regex_error_matches_kubernetes() {
        assert_eq!(
            regex_error("msg", "re", &["a", "b", "c"]),
            "msg (e.g. 'a',  or 'b',  or 'c', regex used for validation is 're')"
        );
        assert_eq!(
            regex_error("msg", "re", &[]),
            "msg (regex used for validation is 're')"
        );
    }

    #[test]
    fn qualified_names_and_label_values() {
        let name_regex = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        check(qualified_name, "app", &[]);
        check(qualified_name, "app.kubernetes.io/name", &[]);
        check(qualified_name, "My_Key.1", &[]);
        check(qualified_name, "-app", &[name_regex]);
        check(qualified_name, "/app", &["prefix part must be non-empty"]);
        check(
            qualified_name,
            "example.com/",
            &["name part must be non-empty", name_regex],
        );
        check(
            qualified_name,
            "Example.com/app",
            &[
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ],
        );
        check(
            qualified_name,
            &"a".repeat(64),
            &["name part must be no more than 63 bytes"],
        );
        assert_eq!(qualified_name("a/b/c").len(), 1);
        assert!(qualified_name("a/b/c")[0].starts_with("a valid label key must consist of"));
        check(label_value, "", &[]);
        check(label_value, "v1.2_x-y", &[]);
        check(
            label_value,
            "-v",
            &[
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ],
        );
        assert_eq!(
            label_value(&"a".repeat(64)),
            vec!["must be no more than 63 bytes".to_owned()]
        );
    }

    #[test]
    fn keys_env_ports_percent() {
        check(config_map_key, "app.properties", &[]);
        check(config_map_key, "KEY_1-x", &[]);
        assert_eq!(config_map_key("a/b").len(), 1);
        check(config_map_key, "..data", &["must not start with '..'"]);
        check(config_map_key, ".", &["must not be '.'"]);
        check(env_var_name, "MY_ENV.name-1", &[]);
        check(
            env_var_name,
            "1ABC",
            &[
                "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            ],
        );
        check(env_var_name, "..", &["must not be '..'"]);
        assert!(port_number(80).is_empty());
        assert_eq!(
            port_number(0),
            vec!["must be between 1 and 65535, inclusive".to_owned()]
        );
        assert_eq!(port_number(65536).len(), 1);
        check(port_name, "http", &[]);
        check(port_name, "http-2", &[]);
        check(
            port_name,
            "8080",
            &["must contain at least one letter (a-z)"],
        );
        check(
            port_name,
            "HTTP",
            &[
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
            ],
        );
        check(port_name, "a--b", &["must not contain consecutive hyphens"]);
        check(port_name, "-ab", &["must not begin or end with a hyphen"]);
        check(
            port_name,
            "abcdefghijklmnop",
            &["must be no more than 15 characters"],
        );
        check(percent, "25%", &[]);
        assert_eq!(percent("25").len(), 1);
        assert_eq!(percent("%").len(), 1);
    }

    #[test]
    fn ips_and_cidrs() {
        assert_eq!(parse_ip("10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip("010.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            parse_ip("2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("10.0.0"), None);
        assert_eq!(parse_ip("256.0.0.1"), None);
        assert_eq!(parse_ip("host"), None);
        assert_eq!(parse_cidr("10.0.0.0/8").map(|c| c.1), Some(8));
        assert_eq!(parse_cidr("fd00::/64").map(|c| c.1), Some(64));
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert_eq!(parse_cidr("10.0.0.0"), None);
        assert!(is_dual_stack(
            "10.0.0.1".parse().unwrap(),
            "fd00::1".parse().unwrap()
        ));
    }
}
