//! Values as Go's `%#v` prints them inside Kubernetes' field errors
//! (`Invalid value: map[string]string{"app":"web"}: ...`), so that messages
//! about maps, lists and selectors read as on a real cluster.

use serde_json::Value;

/// A Go string with Go's quoting (close enough to Rust's for the ASCII text
/// of names and labels).
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// A scalar as Go's `%v` prints it: strings quoted, numbers and booleans
/// bare, an unset pointer as `null`.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::String(s) => quoted(s),
        other => other.to_string(),
    }
}

/// An `intstr.IntOrString`, which Go prints as a struct:
/// `intstr.IntOrString{Type:0, IntVal:1, StrVal:""}` for a number,
/// `Type:1` with the text for a string.
pub fn int_or_string(v: &Value) -> String {
    let (kind, int, text) = match v {
        Value::String(s) => (1, 0, s.as_str()),
        other => (0, other.as_i64().unwrap_or(0), ""),
    };
    format!(
        "intstr.IntOrString{{Type:{kind}, IntVal:{int}, StrVal:{}}}",
        quoted(text)
    )
}

/// `map[string]string{"a":"b", "c":"d"}`, keys sorted as Go prints maps;
/// `map[string]string(nil)` for an absent map.
pub fn string_map(v: Option<&Value>) -> String {
    let Some(map) = v.and_then(Value::as_object) else {
        return "map[string]string(nil)".to_owned();
    };
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let inner = entries
        .into_iter()
        .map(|(k, v)| format!("{}:{}", quoted(k), quoted(v.as_str().unwrap_or_default())))
        .collect::<Vec<_>>()
        .join(", ");
    format!("map[string]string{{{inner}}}")
}

/// `[]string{"a", "b"}`; `[]string(nil)` for an absent list.
pub fn string_slice(v: Option<&Value>) -> String {
    let Some(items) = v.and_then(Value::as_array) else {
        return "[]string(nil)".to_owned();
    };
    let inner = items
        .iter()
        .map(|s| quoted(s.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ");
    format!("[]string{{{inner}}}")
}

/// A `metav1.LabelSelector`, as in the well-known
/// `spec.selector: Invalid value: v1.LabelSelector{...}: field is immutable`.
pub fn label_selector(v: Option<&Value>) -> String {
    let Some(selector) = v.filter(|s| s.is_object()) else {
        return "null".to_owned();
    };
    let expressions = match selector.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_owned(),
        Some(exprs) => {
            let inner = exprs
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        quoted(e.get("key").and_then(Value::as_str).unwrap_or_default()),
                        quoted(
                            e.get("operator")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                        ),
                        string_slice(e.get("values"))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("[]v1.LabelSelectorRequirement{{{inner}}}")
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{expressions}}}",
        string_map(selector.get("matchLabels"))
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(
            string_map(Some(&json!({"tier": "web", "app": "nginx"}))),
            r#"map[string]string{"app":"nginx", "tier":"web"}"#
        );
        assert_eq!(string_map(None), "map[string]string(nil)");
        assert_eq!(
            string_slice(Some(&json!(["a", "b"]))),
            r#"[]string{"a", "b"}"#
        );
        assert_eq!(
            label_selector(Some(&json!({"matchLabels": {"app": "nginx2"}}))),
            r#"v1.LabelSelector{MatchLabels:map[string]string{"app":"nginx2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"#
        );
        assert_eq!(
            label_selector(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "Exists"}]})
            )),
            r#"v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"a", Operator:"Exists", Values:[]string(nil)}}}"#
        );
    }
}
