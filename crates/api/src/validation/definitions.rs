//! CustomResourceDefinitions (`ValidateCustomResourceDefinition`, the
//! parts that keep a definition servable): its name is its plural and
//! group, its group a domain (a dotless one could be a core plural, whose
//! objects its store keys would share), its plural a DNS-1035 label (a
//! segment of those keys and of its URLs), and it names its kind and scope.

use serde_json::Value;

use super::{names, str_of};
use crate::FieldError;

const SCOPES: [&str; 2] = ["Cluster", "Namespaced"];

pub(super) fn validate_definition(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    let names = &spec["names"];
    let (group, plural) = (str_of(spec, "group"), str_of(names, "plural"));
    let name = crate::meta::name(obj);
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            r#"must be spec.names.plural+"."+spec.group"#,
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group"));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(FieldError::required("spec.names.plural"));
    } else {
        let problems = names::is_dns1035_label(plural);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                "spec.names.plural",
                plural,
                &problems.join(","),
            ));
        }
    }
    if str_of(names, "kind").is_empty() {
        errs.push(FieldError::required("spec.names.kind"));
    }
    let scope = str_of(spec, "scope");
    if !SCOPES.contains(&scope) {
        errs.push(FieldError::not_supported("spec.scope", scope, &SCOPES));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn summaries(obj: Value) -> Vec<String> {
        validate_definition(&obj)
            .iter()
            .map(FieldError::summary)
            .collect()
    }

    #[test]
    fn a_definition_is_named_by_its_plural_and_group() {
        let definition = |name: &str, scope: &str| {
            json!({
                "metadata": {"name": name},
                "spec": {"group": "example.com", "scope": scope,
                         "names": {"plural": "widgets", "kind": "Widget"}},
            })
        };
        assert!(summaries(definition("widgets.example.com", "Namespaced")).is_empty());
        let mut path = definition("a/b.example.com", "Cluster");
        path["spec"]["names"]["plural"] = json!("a/b");
        assert_eq!(
            summaries(path),
            [concat!(
                r#"spec.names.plural: Invalid value: "a/b": a DNS-1035 label must consist of lower case alphanumeric characters or '-', "#,
                "start with an alphabetic character, and end with an alphanumeric character ",
                "(e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            )]
        );
        let mut dotless = definition("widgets.example", "Cluster");
        dotless["spec"]["group"] = json!("example");
        assert_eq!(
            summaries(dotless),
            [r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#]
        );
        assert_eq!(
            summaries(definition("widget.example.com", "Global")),
            [
                r#"metadata.name: Invalid value: "widget.example.com": must be spec.names.plural+"."+spec.group"#,
                r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
            ]
        );
    }
}
