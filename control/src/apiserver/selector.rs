//! Label and field selectors, parsed and matched as Kubernetes does
//! (`k8s.io/apimachinery/pkg/labels` and `.../fields`), and the fields each
//! resource can be selected by. Pure: strings and maps in, booleans out.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;
use serde_json::Value;

use crate::apiserver::validation::field::{FieldPath, Json, go_quote, invalid};
use crate::apiserver::validation::rules;

/// How a requirement compares a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    /// `key=value`.
    Equals,
    /// `key==value`.
    DoubleEquals,
    /// `key!=value`: absent or different.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`: absent or none of them.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>3`: present and an integer above.
    GreaterThan,
    /// `key<3`: present and an integer below.
    LessThan,
}

/// One term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and without duplicates.
    values: Vec<String>,
}

impl Requirement {
    /// Kubernetes' `NewRequirement`: checks the key, the values and their
    /// number for the operator; all problems in one message.
    fn new(key: &str, operator: Operator, mut values: Vec<String>) -> Result<Self, String> {
        values.sort();
        values.dedup();
        let mut errors = Vec::new();
        let key_errors = rules::qualified_name(key);
        if !key_errors.is_empty() {
            errors.push(invalid(
                &FieldPath::new("key"),
                &key,
                &key_errors.join("; "),
            ));
        }
        let values_path = FieldPath::new("values");
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                errors.push(invalid(
                    &values_path,
                    &Json(&values),
                    "for 'in', 'notin' operators, values set can't be empty",
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errors.push(invalid(
                    &values_path,
                    &Json(&values),
                    "exact-match compatibility requires one single value",
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                errors.push(invalid(
                    &values_path,
                    &Json(&values),
                    "values set must be empty for exists and does not exist",
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errors.push(invalid(
                        &values_path,
                        &Json(&values),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, value) in values.iter().enumerate() {
                    if value.parse::<i64>().is_err() {
                        errors.push(invalid(
                            &values_path.index(i),
                            value,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, value) in values.iter().enumerate() {
            let value_errors = rules::label_value(value);
            if !value_errors.is_empty() {
                errors.push(invalid(
                    &values_path.index(i).key(key),
                    value,
                    &value_errors.join("; "),
                ));
            }
        }
        let messages: Vec<String> = errors
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        match messages.len() {
            0 => Ok(Self {
                key: key.to_owned(),
                operator,
                values,
            }),
            1 => Err(messages.into_iter().next().unwrap_or_default()),
            _ => Err(format!("[{}]", messages.join(", "))),
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let label = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                label.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => label.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(label), [bound]) = (label, self.values.as_slice()) else {
                    return false;
                };
                let (Ok(label), Ok(bound)) = (label.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    label > bound
                } else {
                    label < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let values = self.values.join(",");
        match self.operator {
            Operator::Exists | Operator::DoesNotExist => Ok(()),
            Operator::Equals => write!(f, "={values}"),
            Operator::DoubleEquals => write!(f, "=={values}"),
            Operator::NotEquals => write!(f, "!={values}"),
            Operator::GreaterThan => write!(f, ">{values}"),
            Operator::LessThan => write!(f, "<{values}"),
            Operator::In => write!(f, " in ({values})"),
            Operator::NotIn => write!(f, " notin ({values})"),
        }
    }
}

/// A label selector: a conjunction of requirements (`app=web,tier in
/// (a,b),!canary`). The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Sorted by key.
    requirements: Vec<Requirement>,
    /// Kubernetes' `labels.Nothing()`: what an absent selector selects.
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches nothing (an absent `spec.selector`).
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the `labelSelector` query syntax: `a=b`, `a==b`, `a!=b`,
    /// `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, separated by
    /// commas, whitespace ignored. Keys and values follow the label rules;
    /// errors read like Kubernetes'.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser {
            tokens: lex(text),
            position: 0,
        };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels` and
    /// `matchExpressions`) as Kubernetes' `LabelSelectorAsSelector` does; an
    /// empty one matches everything.
    pub fn from_k8s(selector: &MetaLabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                key,
                Operator::Equals,
                vec![value.clone()],
            )?);
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(format!(
                        "{} is not a valid label selector operator",
                        go_quote(other)
                    ));
                }
            };
            requirements.push(Requirement::new(
                &expression.key,
                operator,
                expression.values.clone().unwrap_or_default(),
            )?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// The equality selector of a label map (a Service's `spec.selector`,
    /// Kubernetes' `SelectorFromSet`); an empty map matches everything.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<Self, String> {
        let requirements = labels
            .iter()
            .map(|(key, value)| Requirement::new(key, Operator::Equals, vec![value.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Whether `labels` satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirements (and so matches
    /// everything), as Kubernetes' `Selector.Empty()`.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical text, as Kubernetes' `Selector.String()`
    /// (`app=web,tier in (a,b)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        f.write_str(&terms.join(","))
    }
}

/// Tokens of the label selector syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Identifier,
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    Bang,
    OpenParen,
    CloseParen,
    Comma,
    End,
}

/// Whether `in` and `notin` are keywords (after a key) or plain words (as
/// values).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(text: &str) -> Vec<(Token, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            i += 1;
            continue;
        }
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (token, width) = match (c, next) {
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('!', _) => (Token::Bang, 1),
                ('=', _) => (Token::Equals, 1),
                ('>', _) => (Token::GreaterThan, 1),
                ('<', _) => (Token::LessThan, 1),
                ('(', _) => (Token::OpenParen, 1),
                (')', _) => (Token::CloseParen, 1),
                _ => (Token::Comma, 1),
            };
            tokens.push((token, chars[i..i + width].iter().collect()));
            i += width;
            continue;
        }
        let start = i;
        while i < chars.len()
            && !is_special(chars[i])
            && !matches!(chars[i], ' ' | '\t' | '\r' | '\n')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let token = match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        tokens.push((token, word));
    }
    tokens.push((Token::End, String::new()));
    tokens
}

/// Kubernetes' recursive-descent selector parser, with its messages.
struct Parser {
    tokens: Vec<(Token, String)>,
    position: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn lookahead(&self, context: Context) -> (Token, String) {
        let (token, literal) = self.tokens[self.position.min(self.tokens.len() - 1)].clone();
        match token {
            Token::In | Token::NotIn if context == Context::Values => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.lookahead(context);
        if self.position < self.tokens.len() - 1 {
            self.position += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::Bang => {
                    requirements.push(self.parse_requirement()?);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (next, literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::Bang {
                                return Err(format!(
                                    "found '{literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = inferred {
            return Requirement::new(&key, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, operator, values)
    }

    /// The key, and `Exists` / `DoesNotExist` when no operator follows.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let (mut token, mut literal) = self.consume(Context::Values);
        let mut operator = None;
        if token == Token::Bang {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let key_errors = rules::qualified_name(&literal);
        if !key_errors.is_empty() {
            let cause = invalid(&FieldPath::new("key"), &literal, &key_errors.join("; "));
            return Err(format!("{}: {}", cause.field, cause.message));
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::End | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => return Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `(a,b,c)`; empty entries are the empty value.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenParen {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (token, _) = self.consume(Context::Values);
                if token != Token::CloseParen {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::CloseParen => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values = Vec::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.push(literal);
                    let (next, literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::CloseParen => return Ok(values),
                        _ => return Err(format!("found '{literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::CloseParen {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if matches!(token, Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(vec![literal])
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    /// `!=` rather than `=` / `==`.
    negated: bool,
}

/// A field selector: a conjunction of `field=value`, `field==value` and
/// `field!=value` terms. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// Sorted as Kubernetes sorts them.
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax. Values may escape `\`, `,`
    /// and `=` with a backslash; whitespace around names and values is
    /// ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = split_terms(text);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.iter().filter(|p| !p.trim().is_empty()) {
            let Some((field, operator, value)) = split_term(part) else {
                return Err(format!("can't understand '{part}'"));
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(format!(
                    "can't understand '{part}': the field name is empty"
                ));
            }
            terms.push(FieldTerm {
                field: field.to_owned(),
                value: unescape(value.trim())?,
                negated: operator == "!=",
            });
        }
        Ok(Self { terms })
    }

    /// The field names the selector uses, so the server can reject those a
    /// resource does not support.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.field.as_str())
    }

    /// Whether an object satisfies every term; `get` returns a field's
    /// value, and a missing field compares as the empty string.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|term| {
            let actual = get(&term.field).unwrap_or_default();
            (actual == term.value) != term.negated
        })
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value a field must equal, if a term requires one
    /// (`spec.nodeName=n1`), for index lookups.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical text, values escaped (`metadata.name=a\,b`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                let value = t
                    .value
                    .replace('\\', "\\\\")
                    .replace(',', "\\,")
                    .replace('=', "\\=");
                format!("{}{}{value}", t.field, if t.negated { "!=" } else { "=" })
            })
            .collect();
        f.write_str(&terms.join(","))
    }
}

/// Splits on commas not escaped by a backslash (the backslash is kept).
fn split_terms(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
            current.push(c);
        } else if c == '\\' {
            escaped = true;
            current.push(c);
        } else if c == ',' {
            terms.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    terms.push(current);
    terms
}

/// `(field, operator, raw value)` at the first operator of the term.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for operator in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(operator) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn unescape(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid escape sequence: \\{c}"));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(format!("unescaped character in value: {c}")),
            c => out.push(c),
        }
    }
    if escaped {
        return Err("invalid escape sequence: \\".to_owned());
    }
    Ok(out)
}

/// Resources whose objects have no namespace, and so no
/// `metadata.namespace` field to select by.
fn is_cluster_scoped(resource: &str) -> bool {
    matches!(resource, "nodes" | "namespaces" | "runtimeclasses")
}

/// A scalar at `path` as selector text (strings as is, numbers and booleans
/// printed); `None` when absent or null.
fn text_at(object: &Value, path: &[&str]) -> Option<String> {
    let value = path.iter().try_fold(object, |v, key| v.get(key))?;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A scalar at `path`, or the value Kubernetes' defaulting gives it (stored
/// objects always carry it there).
fn text_or(object: &Value, path: &[&str], default: &str) -> Option<String> {
    Some(text_at(object, path).unwrap_or_else(|| default.to_owned()))
}

/// The value of a field selector field of an object of `resource` (a
/// plural such as `pods`), as Kubernetes' `*ToSelectableFields` computes it
/// (defaulted fields read as their default when absent). The outer `None`
/// means the resource does not support the field; the inner one that the
/// object does not set it.
pub fn object_field(resource: &str, object: &Value, field: &str) -> Option<Option<String>> {
    match field {
        "metadata.name" => return Some(text_at(object, &["metadata", "name"])),
        "metadata.namespace" if !is_cluster_scoped(resource) => {
            return Some(text_at(object, &["metadata", "namespace"]));
        }
        _ => {}
    }
    let value = match (resource, field) {
        ("pods", "spec.nodeName") => text_at(object, &["spec", "nodeName"]),
        ("pods", "spec.restartPolicy") => text_or(object, &["spec", "restartPolicy"], "Always"),
        ("pods", "spec.schedulerName") => {
            text_or(object, &["spec", "schedulerName"], "default-scheduler")
        }
        ("pods", "spec.serviceAccountName") => text_at(object, &["spec", "serviceAccountName"]),
        ("pods", "spec.hostNetwork") => text_or(object, &["spec", "hostNetwork"], "false"),
        ("pods", "status.phase") => text_or(object, &["status", "phase"], "Pending"),
        ("pods", "status.podIP") => object
            .pointer("/status/podIPs/0/ip")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| text_at(object, &["status", "podIP"])),
        ("pods", "status.nominatedNodeName") => text_at(object, &["status", "nominatedNodeName"]),
        ("nodes", "spec.unschedulable") => text_or(object, &["spec", "unschedulable"], "false"),
        ("namespaces", "status.phase") => text_or(object, &["status", "phase"], "Active"),
        // Kubernetes keeps this alias for compatibility.
        ("namespaces", "name") => text_at(object, &["metadata", "name"]),
        ("secrets", "type") => text_or(object, &["type"], "Opaque"),
        ("services", "spec.clusterIP") => text_at(object, &["spec", "clusterIP"]),
        ("services", "spec.type") => text_or(object, &["spec", "type"], "ClusterIP"),
        ("replicasets", "status.replicas") => text_or(object, &["status", "replicas"], "0"),
        ("events", "involvedObject.kind") => text_at(object, &["involvedObject", "kind"]),
        ("events", "involvedObject.namespace") => text_at(object, &["involvedObject", "namespace"]),
        ("events", "involvedObject.name") => text_at(object, &["involvedObject", "name"]),
        ("events", "involvedObject.uid") => text_at(object, &["involvedObject", "uid"]),
        ("events", "involvedObject.apiVersion") => {
            text_at(object, &["involvedObject", "apiVersion"])
        }
        ("events", "involvedObject.resourceVersion") => {
            text_at(object, &["involvedObject", "resourceVersion"])
        }
        ("events", "involvedObject.fieldPath") => text_at(object, &["involvedObject", "fieldPath"]),
        ("events", "reason") => text_at(object, &["reason"]),
        ("events", "type") => text_at(object, &["type"]),
        ("events", "reportingComponent") => text_at(object, &["reportingComponent"]),
        ("events", "source") => text_at(object, &["source", "component"])
            .filter(|s| !s.is_empty())
            .or_else(|| text_at(object, &["reportingComponent"])),
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `selector` parses to the canonical `expected` text and matches
    /// exactly the label sets marked true.
    fn check(selector: &str, expected: Result<&str, &str>, cases: &[(&[(&str, &str)], bool)]) {
        let parsed = LabelSelector::parse(selector);
        match (&parsed, expected) {
            (Ok(parsed), Ok(text)) => assert_eq!(parsed.to_string(), text, "{selector:?}"),
            (Err(error), Err(message)) => assert_eq!(error, message, "{selector:?}"),
            (got, want) => panic!("{selector:?}: got {got:?}, want {want:?}"),
        }
        for (set, expected) in cases {
            assert_eq!(
                parsed.as_ref().unwrap().matches(&labels(set)),
                *expected,
                "{selector:?} on {set:?}"
            );
        }
    }

    #[test]
    fn label_selectors_parse_and_match_like_kubernetes() {
        let web: &[(&str, &str)] = &[("app", "web"), ("tier", "front")];
        let db: &[(&str, &str)] = &[("app", "db")];
        let none: &[(&str, &str)] = &[];
        check("", Ok(""), &[(web, true), (none, true)]);
        check("   ", Ok(""), &[(web, true)]);
        check(
            "app=web",
            Ok("app=web"),
            &[(web, true), (db, false), (none, false)],
        );
        check("app==web", Ok("app==web"), &[(web, true), (db, false)]);
        check(
            "app!=web",
            Ok("app!=web"),
            &[(web, false), (db, true), (none, true)],
        );
        check(
            "app in (web, db)",
            Ok("app in (db,web)"),
            &[(web, true), (db, true), (none, false)],
        );
        check(
            "app notin (web)",
            Ok("app notin (web)"),
            &[(web, false), (db, true), (none, true)],
        );
        check("tier", Ok("tier"), &[(web, true), (db, false)]);
        check("!tier", Ok("!tier"), &[(web, false), (db, true)]);
        check(
            " app = web , tier ",
            Ok("app=web,tier"),
            &[(web, true), (db, false)],
        );
        check("tier,app=web", Ok("app=web,tier"), &[(web, true)]);
        check("app=", Ok("app="), &[(&[("app", "")], true), (web, false)]);
        check(
            "app in ()",
            Ok("app in ()"),
            &[(&[("app", "")], true), (web, false)],
        );
        check(
            "app in (,web)",
            Ok("app in (,web)"),
            &[(&[("app", "")], true), (web, true)],
        );
        check("app=in", Ok("app=in"), &[(&[("app", "in")], true)]);
        check(
            "replicas>2",
            Ok("replicas>2"),
            &[
                (&[("replicas", "3")], true),
                (&[("replicas", "2")], false),
                (&[("replicas", "x")], false),
                (none, false),
            ],
        );
        check(
            "replicas<2",
            Ok("replicas<2"),
            &[(&[("replicas", "1")], true), (&[("replicas", "2")], false)],
        );
        check(
            "example.com/tier=a",
            Ok("example.com/tier=a"),
            &[(&[("example.com/tier", "a")], true)],
        );

        check(
            "app=web=x",
            Err("found '=', expected: ',' or 'end of string'"),
            &[],
        );
        check(
            "app web",
            Err("found 'web', expected: in, notin, =, ==, !=, gt, lt"),
            &[],
        );
        check(
            ",app",
            Err("found ',', expected: !, identifier, or 'end of string'"),
            &[],
        );
        check("app,", Err("found '', expected: identifier after ','"), &[]);
        check("app in web", Err("found 'web' expected: '('"), &[]);
        check("app in (web", Err("found '', expected: ',' or ')'"), &[]);
        check("!", Err("found '', expected: identifier"), &[]);
        check(
            "app>x",
            Err(
                "values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            &[],
        );
        check(
            "-app=web",
            Err(
                "key: Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ),
            &[],
        );
        check(
            "app=-web",
            Err(
                "values[0][app]: Invalid value: \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ),
            &[],
        );
    }

    #[test]
    fn label_selectors_from_the_api_type() {
        let selector =
            |value: Value| LabelSelector::from_k8s(&serde_json::from_value(value).unwrap());
        let web = labels(&[("app", "web"), ("tier", "front")]);

        let everything = selector(json!({})).unwrap();
        assert!(everything.is_empty() && everything.matches(&web));

        let both = selector(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert_eq!(both.to_string(), "app=web,!canary,tier in (back,front)");
        assert!(both.matches(&web));
        assert!(!both.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("canary", "1")
        ])));
        assert!(!both.is_empty());

        assert_eq!(
            selector(json!({"matchExpressions": [{"key": "a", "operator": "Like"}]})),
            Err("\"Like\" is not a valid label selector operator".to_owned())
        );
        assert_eq!(
            selector(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
            Err(
                "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                    .to_owned()
            )
        );
        assert!(
            selector(
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
            )
            .is_err()
        );

        let nothing = LabelSelector::nothing();
        assert!(!nothing.matches(&web) && !nothing.is_empty());
        let from_map = LabelSelector::from_labels(&labels(&[("app", "web")])).unwrap();
        assert!(from_map.matches(&web) && !from_map.matches(&labels(&[("app", "db")])));
    }

    /// `selector` parses (or fails with `expected`) and matches `object`
    /// as marked.
    fn check_fields(
        selector: &str,
        expected: Result<&str, &str>,
        cases: &[(&[(&str, &str)], bool)],
    ) {
        let parsed = FieldSelector::parse(selector);
        match (&parsed, expected) {
            (Ok(parsed), Ok(text)) => assert_eq!(parsed.to_string(), text, "{selector:?}"),
            (Err(error), Err(message)) => assert_eq!(error, message, "{selector:?}"),
            (got, want) => panic!("{selector:?}: got {got:?}, want {want:?}"),
        }
        for (fields, expected) in cases {
            let fields = labels(fields);
            assert_eq!(
                parsed.as_ref().unwrap().matches(|f| fields.get(f).cloned()),
                *expected,
                "{selector:?} on {fields:?}"
            );
        }
    }

    #[test]
    fn field_selectors_parse_and_match_like_kubernetes() {
        let running: &[(&str, &str)] = &[("status.phase", "Running"), ("spec.nodeName", "n1")];
        let pending: &[(&str, &str)] = &[("status.phase", "Pending")];
        check_fields("", Ok(""), &[(running, true)]);
        check_fields(
            "status.phase=Running",
            Ok("status.phase=Running"),
            &[(running, true), (pending, false)],
        );
        check_fields(
            "status.phase==Running",
            Ok("status.phase=Running"),
            &[(running, true)],
        );
        check_fields(
            "status.phase!=Running",
            Ok("status.phase!=Running"),
            &[(running, false), (pending, true)],
        );
        check_fields(
            "spec.nodeName=",
            Ok("spec.nodeName="),
            &[(running, false), (pending, true)],
        );
        check_fields(
            "spec.nodeName!=",
            Ok("spec.nodeName!="),
            &[(running, true), (pending, false)],
        );
        check_fields(
            "status.phase=Running,spec.nodeName=n1",
            Ok("spec.nodeName=n1,status.phase=Running"),
            &[(running, true), (pending, false)],
        );
        check_fields(
            " status.phase = Running ",
            Ok("status.phase=Running"),
            &[(running, true)],
        );
        check_fields(
            "metadata.name=a\\,b\\=c",
            Ok("metadata.name=a\\,b\\=c"),
            &[(&[("metadata.name", "a,b=c")], true)],
        );
        check_fields("status.phase", Err("can't understand 'status.phase'"), &[]);
        check_fields(
            "=x",
            Err("can't understand '=x': the field name is empty"),
            &[],
        );
        check_fields(
            "metadata.name=a\\b",
            Err("invalid escape sequence: \\b"),
            &[],
        );
        check_fields(
            "metadata.name=a=b",
            Err("unescaped character in value: ="),
            &[],
        );
        check_fields("metadata.name=a\\", Err("invalid escape sequence: \\"), &[]);

        let selector = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
        assert_eq!(
            selector.fields().collect::<Vec<_>>(),
            ["spec.nodeName", "status.phase"]
        );
        assert_eq!(selector.exact_value("spec.nodeName"), Some("n1"));
        assert_eq!(selector.exact_value("status.phase"), None);
        assert!(!selector.is_empty() && FieldSelector::parse(",").unwrap().is_empty());
    }

    /// `kubectl describe` finds an object's events with this selector
    /// (kubectl 1.32 sends no kind for typed objects; others do).
    #[test]
    fn describe_finds_events_by_involved_object() {
        let event = json!({
            "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal", "source": {"component": "default-scheduler"}
        });
        let other = json!({
            "metadata": {"name": "web.2", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u0"}
        });
        let matches = |selector: &str, event: &Value| {
            FieldSelector::parse(selector)
                .unwrap()
                .matches(|field| object_field("events", event, field).flatten())
        };
        let describe =
            "involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u1";
        assert!(matches(describe, &event));
        assert!(!matches(describe, &other));
        let with_kind = "involvedObject.kind=Pod,involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u1";
        assert!(matches(with_kind, &event));
        assert!(matches("source=default-scheduler,type!=Warning", &event));
        assert!(!matches("involvedObject.kind=Deployment", &event));
    }

    #[test]
    fn object_fields_per_resource() {
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.7"}]}
        });
        let event = json!({
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {
                "kind": "Pod", "name": "web-0", "namespace": "default", "uid": "u1",
                "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{app}"
            },
            "reason": "Started", "type": "Normal", "reportingComponent": "kubelet"
        });
        let cases: &[(&str, &Value, &str, Option<Option<&str>>)] = &[
            ("pods", &pod, "metadata.name", Some(Some("web-0"))),
            ("pods", &pod, "metadata.namespace", Some(Some("default"))),
            ("pods", &pod, "spec.nodeName", Some(Some("n1"))),
            ("pods", &pod, "spec.restartPolicy", Some(Some("Always"))),
            (
                "pods",
                &pod,
                "spec.schedulerName",
                Some(Some("default-scheduler")),
            ),
            ("pods", &json!({}), "status.phase", Some(Some("Pending"))),
            ("pods", &pod, "spec.serviceAccountName", Some(None)),
            ("pods", &pod, "spec.hostNetwork", Some(Some("false"))),
            ("pods", &pod, "status.phase", Some(Some("Running"))),
            ("pods", &pod, "status.podIP", Some(Some("10.0.0.7"))),
            ("pods", &pod, "spec.containers", None),
            ("pods", &json!({}), "spec.nodeName", Some(None)),
            (
                "nodes",
                &json!({"spec": {"unschedulable": true}}),
                "spec.unschedulable",
                Some(Some("true")),
            ),
            (
                "nodes",
                &json!({}),
                "spec.unschedulable",
                Some(Some("false")),
            ),
            ("nodes", &json!({}), "metadata.namespace", None),
            (
                "namespaces",
                &json!({"metadata": {"name": "a"}, "status": {"phase": "Active"}}),
                "status.phase",
                Some(Some("Active")),
            ),
            (
                "namespaces",
                &json!({"metadata": {"name": "a"}}),
                "name",
                Some(Some("a")),
            ),
            (
                "secrets",
                &json!({"type": "Opaque"}),
                "type",
                Some(Some("Opaque")),
            ),
            ("secrets", &json!({}), "type", Some(Some("Opaque"))),
            ("configmaps", &json!({}), "type", None),
            (
                "services",
                &json!({"spec": {"clusterIP": "10.0.0.1"}}),
                "spec.clusterIP",
                Some(Some("10.0.0.1")),
            ),
            ("services", &json!({}), "spec.type", Some(Some("ClusterIP"))),
            (
                "replicasets",
                &json!({"status": {"replicas": 3}}),
                "status.replicas",
                Some(Some("3")),
            ),
            ("events", &event, "involvedObject.kind", Some(Some("Pod"))),
            ("events", &event, "involvedObject.name", Some(Some("web-0"))),
            (
                "events",
                &event,
                "involvedObject.namespace",
                Some(Some("default")),
            ),
            ("events", &event, "involvedObject.uid", Some(Some("u1"))),
            (
                "events",
                &event,
                "involvedObject.apiVersion",
                Some(Some("v1")),
            ),
            (
                "events",
                &event,
                "involvedObject.resourceVersion",
                Some(Some("42")),
            ),
            (
                "events",
                &event,
                "involvedObject.fieldPath",
                Some(Some("spec.containers{app}")),
            ),
            (
                "events",
                &event,
                "reportingComponent",
                Some(Some("kubelet")),
            ),
            ("events", &json!({}), "reason", Some(None)),
            ("events", &event, "count", None),
            ("events", &event, "involvedObject.labels", None),
            ("events", &event, "reason", Some(Some("Started"))),
            ("events", &event, "type", Some(Some("Normal"))),
            ("events", &event, "source", Some(Some("kubelet"))),
            (
                "events",
                &json!({"source": {"component": "scheduler"}}),
                "source",
                Some(Some("scheduler")),
            ),
            (
                "deployments",
                &json!({"metadata": {"name": "d"}}),
                "metadata.name",
                Some(Some("d")),
            ),
            ("deployments", &json!({}), "spec.replicas", None),
        ];
        for (resource, object, field, expected) in cases {
            let got = object_field(resource, object, field);
            assert_eq!(
                got.as_ref().map(|v| v.as_deref()),
                *expected,
                "{resource} {field}"
            );
        }
    }
}
