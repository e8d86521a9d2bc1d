//! Label and field selectors, as `?labelSelector=` / `?fieldSelector=` and
//! `metav1.LabelSelector` objects express them.
//!
//! The label selector grammar and its error messages follow apimachinery's
//! `labels.Parse`; the field selector follows `fields.ParseSelector` plus the
//! per-kind lists of selectable fields the API server registers.

use std::fmt;

use serde_json::{Map, Value};

use crate::validation::names::{is_qualified_name, is_valid_label_value};
use crate::{ApiError, ApiResult, Kind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// The name Kubernetes' `selection.Operator` has, used in error messages.
    fn name(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// The binary operators in the order `labels.Parse` lists them when it finds none.
const BINARY_OPERATORS: [Operator; 7] = [
    Operator::In,
    Operator::NotIn,
    Operator::Equals,
    Operator::DoubleEquals,
    Operator::NotEquals,
    Operator::GreaterThan,
    Operator::LessThan,
];

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Operator,
    /// Sorted and without duplicates.
    values: Vec<String>,
}

impl Requirement {
    /// Checks the requirement as `labels.NewRequirement` does; the error is
    /// the aggregate of all problems.
    fn new(key: &str, op: Operator, mut values: Vec<String>) -> Result<Requirement, String> {
        let mut errs = Vec::new();
        for msg in is_qualified_name(key) {
            errs.push(format!("key: Invalid value: {key:?}: {msg}"));
        }
        let count_problem = match op {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(why) = count_problem {
            errs.push(format!(
                "values: Invalid value: {}: {why}",
                go_string_slice(&values)
            ));
        }
        for (i, v) in values.iter().enumerate() {
            if matches!(op, Operator::GreaterThan | Operator::LessThan) && v.parse::<i64>().is_err()
            {
                errs.push(format!(
                    "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                ));
            }
            for msg in is_valid_label_value(v) {
                errs.push(format!("values[{i}][{key}]: Invalid value: {v:?}: {msg}"));
            }
        }
        match errs.len() {
            0 => {
                values.sort();
                values.dedup();
                Ok(Requirement {
                    key: key.to_owned(),
                    op,
                    values,
                })
            }
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(Ok(have)), [want]) =
                    (value.map(str::parse::<i64>), self.values.as_slice())
                else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// `[]string{"a", "b"}`: how Go prints a string slice in a field error.
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_owned();
    }
    let inner = values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("[]string{{{inner}}}")
}

impl fmt::Display for Requirement {
    /// The canonical form, as `Requirement.String()` writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.op {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::In => write!(f, "{} in ({values})", self.key),
            Operator::NotIn => write!(f, "{} notin ({values})", self.key),
            Operator::Equals => write!(f, "{}={values}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={values}", self.key),
            Operator::NotEquals => write!(f, "{}!={values}", self.key),
            Operator::GreaterThan => write!(f, "{}>{values}", self.key),
            Operator::LessThan => write!(f, "{}<{values}", self.key),
        }
    }
}

/// A set of label requirements, all of which must hold.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Sorted by key.
    requirements: Vec<Requirement>,
    /// A null `metav1.LabelSelector`: matches no object at all.
    nothing: bool,
}

impl LabelSelector {
    /// `a=b,c!=d,e in (x,y),f notin (z),g,!h` as kubectl -l sends; errors worded like apimachinery's labels.Parse.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let tokens = lex(s);
        let mut requirements = Parser { tokens, pos: 0 }.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// A metav1.LabelSelector object (matchLabels + matchExpressions In/NotIn/Exists/DoesNotExist).
    /// `null` matches nothing; `{}` matches everything.
    pub fn from_object(selector: &Value) -> Result<LabelSelector, String> {
        if selector.is_null() {
            return Ok(LabelSelector {
                requirements: Vec::new(),
                nothing: true,
            });
        }
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (key, value) in labels {
                let value = value.as_str().unwrap_or_default().to_owned();
                requirements.push(Requirement::new(key, Operator::Equals, vec![value])?);
            }
        }
        let expressions = selector.get("matchExpressions").and_then(Value::as_array);
        for expr in expressions.into_iter().flatten() {
            let operator = expr
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let op = match operator {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
            let values = expr
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            requirements.push(Requirement::new(key, op, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form (`app=web,tier in (a,b)`), as a Scale's
    /// `status.selector` carries it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(Requirement::to_string)
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    End,
    Identifier(String),
    ClosedPar,
    Comma,
    Not,
    DoubleEquals,
    Equals,
    GreaterThan,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

impl Token {
    fn from_literal(s: &str) -> Option<Token> {
        Some(match s {
            ")" => Token::ClosedPar,
            "," => Token::Comma,
            "!" => Token::Not,
            "==" => Token::DoubleEquals,
            "=" => Token::Equals,
            ">" => Token::GreaterThan,
            "in" => Token::In,
            "<" => Token::LessThan,
            "!=" => Token::NotEquals,
            "notin" => Token::NotIn,
            "(" => Token::OpenPar,
            _ => return None,
        })
    }

    /// The text the token came from, as error messages quote it.
    fn literal(&self) -> String {
        match self {
            Token::End => String::new(),
            Token::Identifier(s) => s.clone(),
            Token::ClosedPar => ")".into(),
            Token::Comma => ",".into(),
            Token::Not => "!".into(),
            Token::DoubleEquals => "==".into(),
            Token::Equals => "=".into(),
            Token::GreaterThan => ">".into(),
            Token::In => "in".into(),
            Token::LessThan => "<".into(),
            Token::NotEquals => "!=".into(),
            Token::NotIn => "notin".into(),
            Token::OpenPar => "(".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits a selector into tokens, ending with `Token::End`.
fn lex(s: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(is_space);
        let Some(first) = rest.chars().next() else {
            tokens.push(Token::End);
            return tokens;
        };
        if is_special(first) {
            // `==` and `!=` are the only operators longer than one symbol.
            let len = match rest.get(..2) {
                Some("==" | "!=") => 2,
                _ => 1,
            };
            tokens.push(Token::from_literal(&rest[..len]).expect("every symbol is a token"));
            rest = &rest[len..];
        } else {
            let end = rest
                .find(|c| is_special(c) || is_space(c))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            tokens.push(
                Token::from_literal(word).unwrap_or_else(|| Token::Identifier(word.to_owned())),
            );
            rest = &rest[end..];
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    /// The next token without consuming it. Where values are expected, the
    /// words `in` and `notin` are plain identifiers (`x in (in)`).
    fn peek(&self, values: bool) -> Token {
        as_value(
            self.tokens[self.pos.min(self.tokens.len() - 1)].clone(),
            values,
        )
    }

    fn next(&mut self, values: bool) -> Token {
        let t = self.peek(values);
        self.pos += 1;
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek(true) {
                Token::Identifier(_) | Token::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.next(true) {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let t = self.peek(true);
                            if !matches!(t, Token::Identifier(_) | Token::Not) {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.literal()
                                ));
                            }
                        }
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            ));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut token = self.next(true);
        let negated = token == Token::Not;
        if negated {
            token = self.next(true);
        }
        let Token::Identifier(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        let key_errors = is_qualified_name(&key);
        if !key_errors.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {key:?}: {}",
                key_errors.join("; ")
            ));
        }
        // `!key` is complete in itself: whatever follows is the next item.
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek(true), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, Vec::new());
        }
        let op = match self.next(false) {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            t => {
                let ops: Vec<&str> = BINARY_OPERATORS.iter().map(|o| o.name()).collect();
                return Err(format!(
                    "found '{}', expected: {}",
                    t.literal(),
                    ops.join(", ")
                ));
            }
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        Requirement::new(&key, op, values)
    }

    /// `(a,b,c)`; empty entries stand for the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let open = self.next(true);
        if open != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", open.literal()));
        }
        match self.peek(true) {
            Token::ClosedPar => {
                self.next(true);
                Ok(vec![String::new()])
            }
            Token::Identifier(_) | Token::Comma => {
                let values = self.identifiers()?;
                self.next(true);
                Ok(values)
            }
            t => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                t.literal()
            )),
        }
    }

    /// The comma-separated values inside `( )`, stopping just before the `)`.
    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut values = Vec::new();
        loop {
            match self.next(true) {
                Token::Identifier(v) => {
                    values.push(v);
                    match self.peek(true) {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    // `(,a`, `a,,b` and `a,)` each hold an empty value.
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.peek(true) {
                        Token::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => values.push(String::new()),
                        _ => {}
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ));
                }
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; nothing means the empty value.
    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(true), Token::End | Token::Comma) {
            return Ok(String::new());
        }
        match self.next(true) {
            Token::Identifier(v) => Ok(v),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

fn as_value(token: Token, values: bool) -> Token {
    match token {
        Token::In | Token::NotIn if values => Token::Identifier(token.literal()),
        t => t,
    }
}

/// `metadata.name=x,spec.nodeName!=` as `?fieldSelector=` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldTerm {
    field: SelectableField,
    equal: bool,
    value: String,
}

/// Where a selectable field's value comes from in the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SelectableField {
    /// The JSON pointer of the field.
    pointer: &'static str,
    /// The value when the field is absent: Go's zero value for its type.
    zero: &'static str,
}

const fn string_field(pointer: &'static str) -> SelectableField {
    SelectableField { pointer, zero: "" }
}

/// A field Kubernetes accepts in selectors but never fills in, so it always
/// reads as "" (a pointer that resolves to nothing).
const NEVER_SET: SelectableField = string_field("/-");

/// The field `label` names in a field selector on `kind`, or the error
/// Kubernetes' field label conversion gives for it.
fn selectable_field(kind: &Kind, label: &str) -> Result<SelectableField, String> {
    let not_supported = || format!("field label not supported: {label}");
    let field = match (kind.group, kind.kind, label) {
        (_, _, "metadata.name") => string_field("/metadata/name"),
        ("", "Node", "metadata.namespace") => return Err(not_supported()),
        ("", "Namespace", "metadata.namespace") => return Err(not_supported()),
        (_, _, "metadata.namespace") => string_field("/metadata/namespace"),
        ("", "Pod", "spec.nodeName" | "spec.host") => string_field("/spec/nodeName"),
        ("", "Pod", "spec.restartPolicy") => string_field("/spec/restartPolicy"),
        ("", "Pod", "spec.schedulerName") => string_field("/spec/schedulerName"),
        ("", "Pod", "spec.serviceAccountName") => string_field("/spec/serviceAccountName"),
        ("", "Pod", "spec.hostNetwork") => SelectableField {
            pointer: "/spec/hostNetwork",
            zero: "false",
        },
        ("", "Pod", "status.phase") => string_field("/status/phase"),
        ("", "Pod", "status.podIP") => string_field("/status/podIPs/0/ip"),
        ("", "Pod", "status.podIPs") => NEVER_SET,
        ("", "Pod", "status.nominatedNodeName") => string_field("/status/nominatedNodeName"),
        ("", "Node", "spec.unschedulable") => SelectableField {
            pointer: "/spec/unschedulable",
            zero: "false",
        },
        ("", "ReplicationController", "status.replicas")
        | ("apps", "ReplicaSet", "status.replicas") => SelectableField {
            pointer: "/status/replicas",
            zero: "0",
        },
        ("batch", "Job", "status.successful") => SelectableField {
            pointer: "/status/succeeded",
            zero: "0",
        },
        ("", "Event", "involvedObject.kind") => string_field("/involvedObject/kind"),
        ("", "Event", "involvedObject.namespace") => string_field("/involvedObject/namespace"),
        ("", "Event", "involvedObject.name") => string_field("/involvedObject/name"),
        ("", "Event", "involvedObject.uid") => string_field("/involvedObject/uid"),
        ("", "Event", "involvedObject.apiVersion") => string_field("/involvedObject/apiVersion"),
        ("", "Event", "involvedObject.resourceVersion") => {
            string_field("/involvedObject/resourceVersion")
        }
        ("", "Event", "involvedObject.fieldPath") => string_field("/involvedObject/fieldPath"),
        ("", "Event", "reason") => string_field("/reason"),
        ("", "Event", "reportingComponent") => string_field("/reportingComponent"),
        ("", "Event", "source") => string_field("/source/component"),
        ("", "Event", "type") => string_field("/type"),
        ("", "Namespace", "status.phase") => string_field("/status/phase"),
        ("", "Secret", "type") => string_field("/type"),
        ("", "Service", "spec.clusterIP") => string_field("/spec/clusterIP"),
        ("", "Service", "spec.type") => string_field("/spec/type"),
        // Kinds that register their own list of fields refuse the rest so.
        (
            "",
            "Pod" | "Node" | "ReplicationController" | "Event" | "Namespace" | "Secret" | "Service",
            _,
        )
        | ("apps", "ReplicaSet", _)
        | ("batch", "Job", _) => return Err(not_supported()),
        // Every other kind only knows the metadata fields.
        _ => {
            return Err(format!(
                "{label:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            ));
        }
    };
    Ok(field)
}

impl SelectableField {
    fn value_in(&self, obj: &Value) -> String {
        match obj.pointer(self.pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => self.zero.to_owned(),
        }
    }
}

impl FieldSelector {
    /// `metadata.name=x,metadata.namespace!=y`; supported fields per kind as Kubernetes: every kind metadata.name and
    /// metadata.namespace; pods also spec.nodeName, spec.restartPolicy, spec.schedulerName, spec.serviceAccountName,
    /// spec.hostNetwork, status.phase, status.podIP, status.nominatedNodeName; events involvedObject.*, reason, type,
    /// source, reportingComponent; secrets type; services spec.clusterIP, spec.type; nodes spec.unschedulable;
    /// namespaces status.phase; replicasets/rc status.replicas; jobs status.successful.
    /// Unknown field -> 400 `field label not supported: foo` (kinds with their own list) or
    /// `"foo" is not a known field selector: only "metadata.name", "metadata.namespace"`.
    pub fn parse(kind: &Kind, s: &str) -> ApiResult<FieldSelector> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((label, equal, raw)) = split_term(part) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape(raw).map_err(ApiError::bad_request)?;
            let field = selectable_field(kind, label).map_err(ApiError::bad_request)?;
            terms.push(FieldTerm {
                field,
                equal,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (t.field.value_in(obj) == t.value) == t.equal)
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Splits at commas not escaped with a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `field op value` at the first operator; `op` is `!=`, `==` or `=`
/// (true for the equalities).
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        [("!=", false), ("==", true), ("=", true)]
            .into_iter()
            .find(|(op, _)| rest.starts_with(op))
            .map(|(op, equal)| (&term[..i], equal, &rest[op.len()..]))
    })
}

/// Undoes `\\`, `\,` and `\=`; other escapes and bare `,` or `=` are errors.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            // Go prints the rune as its code point.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            _ => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::by_kind;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn kind(api_version: &str, name: &str) -> &'static Kind {
        by_kind(api_version, name).unwrap()
    }

    #[test]
    fn parses_every_label_operator_kubectl_sends() {
        let s = LabelSelector::parse(
            "app=web,tier!=db,env in (prod, staging),track notin (canary),team,!legacy",
        )
        .unwrap();
        let pod = labels(
            json!({"app": "web", "tier": "front", "env": "prod", "track": "stable", "team": "a"}),
        );
        assert!(s.matches(Some(&pod)));

        let mut wrong_env = pod.clone();
        wrong_env.insert("env".into(), "dev".into());
        assert!(!s.matches(Some(&wrong_env)));
        let mut legacy = pod.clone();
        legacy.insert("legacy".into(), "".into());
        assert!(!s.matches(Some(&legacy)));
        let mut no_team = pod.clone();
        no_team.remove("team");
        assert!(!s.matches(Some(&no_team)));
        assert!(!s.matches(None));
    }

    #[test]
    fn not_equal_and_notin_match_missing_labels() {
        let s = LabelSelector::parse("tier!=db,track notin (canary)").unwrap();
        assert!(s.matches(None));
        assert!(s.matches(Some(&labels(json!({"other": "x"})))));
        assert!(!s.matches(Some(&labels(json!({"tier": "db"})))));
    }

    #[test]
    fn double_equals_gt_lt_and_in_as_a_value() {
        let s = LabelSelector::parse("a==1,gen>3,size<10").unwrap();
        assert!(s.matches(Some(&labels(json!({"a": "1", "gen": "4", "size": "9"})))));
        assert!(!s.matches(Some(&labels(json!({"a": "1", "gen": "3", "size": "9"})))));
        assert!(!s.matches(Some(&labels(json!({"a": "1", "gen": "x", "size": "9"})))));
        let in_value = LabelSelector::parse("x in (in,notin)").unwrap();
        assert!(in_value.matches(Some(&labels(json!({"x": "notin"})))));
    }

    #[test]
    fn empty_selector_and_empty_values() {
        let all = LabelSelector::parse("").unwrap();
        assert!(all.is_empty());
        assert!(all.matches(None));
        let empty_value = LabelSelector::parse("a=").unwrap();
        assert!(empty_value.matches(Some(&labels(json!({"a": ""})))));
        assert!(!empty_value.matches(None));
        let with_empty = LabelSelector::parse("a in (x,)").unwrap();
        assert!(with_empty.matches(Some(&labels(json!({"a": ""})))));
    }

    #[test]
    fn canonical_string_is_sorted_like_kubernetes() {
        let s = LabelSelector::parse("tier in (b,a),app=web,!old").unwrap();
        assert_eq!(s.to_string(), "app=web,!old,tier in (a,b)");
    }

    #[test]
    fn parse_errors_read_as_labels_parse() {
        let err = |s: &str| LabelSelector::parse(s).unwrap_err();
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(
            err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert!(
            err("Bad Key!=x").starts_with("unable to parse requirement: found 'Key', expected")
        );
        assert_eq!(
            err("a/b/c=x"),
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        );
        assert!(err("a=b&c").starts_with("unable to parse requirement: values[0][a]: Invalid value: \"b&c\": a valid label must be"));
    }

    #[test]
    fn object_selector_match_labels_and_expressions() {
        let s = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "team", "operator": "Exists"},
                {"key": "tier", "operator": "NotIn", "values": ["db"]}
            ]
        }))
        .unwrap();
        assert!(s.matches(Some(&labels(
            json!({"app": "web", "env": "prod", "team": "x"})
        ))));
        assert!(!s.matches(Some(&labels(
            json!({"app": "web", "env": "dev", "team": "x"})
        ))));
        assert!(!s.matches(Some(&labels(json!({"app": "web", "env": "prod"})))));
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env in (prod,staging),team,tier notin (db)"
        );
    }

    #[test]
    fn null_object_selector_matches_nothing_and_empty_matches_all() {
        let none = LabelSelector::from_object(&Value::Null).unwrap();
        assert!(!none.is_empty());
        assert!(!none.matches(Some(&labels(json!({"a": "b"})))));
        let all = LabelSelector::from_object(&json!({})).unwrap();
        assert!(all.is_empty());
        assert!(all.matches(None));
    }

    #[test]
    fn object_selector_errors() {
        assert_eq!(
            LabelSelector::from_object(
                &json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]})
            )
            .unwrap_err(),
            "\"Equals\" is not a valid label selector operator"
        );
        assert_eq!(
            LabelSelector::from_object(
                &json!({"matchExpressions": [{"key": "a", "operator": "In"}]})
            )
            .unwrap_err(),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            LabelSelector::from_object(
                &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
            )
            .unwrap_err(),
            "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
        );
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]}
        })
    }

    #[test]
    fn pod_field_selectors() {
        let pods = kind("v1", "Pod");
        let sel = |s: &str| FieldSelector::parse(pods, s).unwrap();
        assert!(sel("spec.nodeName=node-a,status.phase!=Pending").matches(&pod()));
        assert!(!sel("spec.nodeName=node-b").matches(&pod()));
        assert!(sel("metadata.name==web-1,metadata.namespace=default").matches(&pod()));
        assert!(sel("status.podIP=10.0.0.5").matches(&pod()));
        assert!(sel("spec.hostNetwork=false").matches(&pod()));
        assert!(sel("spec.host=node-a").matches(&pod()));
        assert!(sel("").is_empty());
        // The scheduler's query for unscheduled pods: an unset field is "".
        let unscheduled = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(sel("spec.nodeName=").matches(&unscheduled));
        assert!(!sel("spec.nodeName=").matches(&pod()));
    }

    #[test]
    fn unknown_fields_are_bad_requests_with_kubernetes_wording() {
        let err =
            FieldSelector::parse(kind("v1", "Pod"), "status.qosClass=BestEffort").unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "field label not supported: status.qosClass");
        let err = FieldSelector::parse(kind("v1", "Node"), "metadata.namespace=x").unwrap_err();
        assert_eq!(err.message, "field label not supported: metadata.namespace");
        let err =
            FieldSelector::parse(kind("apps/v1", "Deployment"), "spec.replicas=1").unwrap_err();
        assert_eq!(
            err.message,
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert!(FieldSelector::parse(kind("apps/v1", "Deployment"), "metadata.name=x").is_ok());
    }

    #[test]
    fn field_selector_syntax_errors_and_escapes() {
        let cms = kind("v1", "ConfigMap");
        assert_eq!(
            FieldSelector::parse(cms, "metadata.name")
                .unwrap_err()
                .message,
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse(cms, "metadata.name=a\\b")
                .unwrap_err()
                .message,
            "invalid field selector: invalid escape sequence: \\b"
        );
        assert_eq!(
            FieldSelector::parse(cms, "metadata.name=a=b")
                .unwrap_err()
                .message,
            "invalid field selector: unescaped character in value: 61"
        );
        let escaped = FieldSelector::parse(cms, "metadata.name=a\\,b").unwrap();
        assert!(escaped.matches(&json!({"metadata": {"name": "a,b"}})));
    }

    #[test]
    fn other_kinds_selectable_fields() {
        let event = json!({"involvedObject": {"kind": "Pod", "name": "web-1"}, "reason": "Scheduled",
                           "type": "Normal", "source": {"component": "default-scheduler"}});
        let events = kind("v1", "Event");
        assert!(
            FieldSelector::parse(events, "involvedObject.kind=Pod,involvedObject.name=web-1,type=Normal,source=default-scheduler")
                .unwrap()
                .matches(&event)
        );
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert!(
            FieldSelector::parse(kind("v1", "Node"), "spec.unschedulable=false")
                .unwrap()
                .matches(&node)
        );
        let secret = json!({"type": "kubernetes.io/tls"});
        assert!(
            FieldSelector::parse(kind("v1", "Secret"), "type=kubernetes.io/tls")
                .unwrap()
                .matches(&secret)
        );
        let rs = json!({"status": {"replicas": 3}});
        assert!(
            FieldSelector::parse(kind("apps/v1", "ReplicaSet"), "status.replicas=3")
                .unwrap()
                .matches(&rs)
        );
        let job = json!({"status": {}});
        assert!(
            FieldSelector::parse(kind("batch/v1", "Job"), "status.successful=0")
                .unwrap()
                .matches(&job)
        );
    }
}
