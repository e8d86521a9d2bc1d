//! The Swagger 2.0 document in gnostic's protobuf encoding
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), the only
//! form kubectl 1.27 and 1.28 accept from `/openapi/v2`.
//!
//! The messages mirror `openapi.v2` from gnostic's OpenAPIv2.proto, keeping
//! only the fields our document uses; the field numbers are the proto's.

use prost::{Message, Oneof};
use serde_json::{Map, Value};

#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
    #[prost(message, repeated, tag = "12")]
    security: Vec<SecurityRequirement>,
    #[prost(message, optional, tag = "13")]
    security_definitions: Option<SecurityDefinitions>,
}

#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(message, optional, tag = "2")]
    get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    parameters: Vec<ParametersItem>,
}

#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, repeated, tag = "1")]
    tags: Vec<String>,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(string, repeated, tag = "6")]
    produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    responses: Option<Responses>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(oneof = "ParameterKind", tags = "1, 2")]
    oneof: Option<ParameterKind>,
}

#[derive(Clone, PartialEq, Oneof)]
enum ParameterKind {
    #[prost(message, boxed, tag = "1")]
    Body(Box<BodyParameter>),
    #[prost(message, tag = "2")]
    NonBody(NonBodyParameter),
}

#[derive(Clone, PartialEq, Message)]
struct BodyParameter {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(bool, tag = "4")]
    required: bool,
    #[prost(message, optional, tag = "5")]
    schema: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(oneof = "NonBodyKind", tags = "3, 4")]
    oneof: Option<NonBodyKind>,
}

#[derive(Clone, PartialEq, Oneof)]
enum NonBodyKind {
    #[prost(message, tag = "3")]
    Query(QueryParameter),
    #[prost(message, tag = "4")]
    Path(PathParameter),
}

/// `QueryParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
struct QueryParameter {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(bool, tag = "20")]
    unique_items: bool,
}

/// `PathParameterSubSchema`: the same fields, numbered differently.
#[derive(Clone, PartialEq, Message)]
struct PathParameter {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "5")]
    r#type: String,
    #[prost(bool, tag = "19")]
    unique_items: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Responses {
    #[prost(message, repeated, tag = "1")]
    response_code: Vec<NamedResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedResponseValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    response: Option<Response>,
}

#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(message, optional, tag = "2")]
    schema: Option<SchemaItem>,
}

#[derive(Clone, PartialEq, Message)]
struct SchemaItem {
    #[prost(message, optional, tag = "1")]
    schema: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Definitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Schema {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "3")]
    title: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(message, optional, tag = "5")]
    default: Option<Any>,
    #[prost(double, optional, tag = "7")]
    maximum: Option<f64>,
    #[prost(double, optional, tag = "9")]
    minimum: Option<f64>,
    #[prost(int64, optional, tag = "11")]
    max_length: Option<i64>,
    #[prost(int64, optional, tag = "12")]
    min_length: Option<i64>,
    #[prost(string, tag = "13")]
    pattern: String,
    #[prost(int64, optional, tag = "14")]
    max_items: Option<i64>,
    #[prost(int64, optional, tag = "15")]
    min_items: Option<i64>,
    #[prost(bool, tag = "16")]
    unique_items: bool,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, optional, tag = "21")]
    additional_properties: Option<AdditionalPropertiesItem>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    properties: Option<Properties>,
    #[prost(bool, tag = "27")]
    read_only: bool,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

#[derive(Clone, PartialEq, Message)]
struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    oneof: Option<AdditionalProperties>,
}

#[derive(Clone, PartialEq, Oneof)]
enum AdditionalProperties {
    #[prost(message, boxed, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

#[derive(Clone, PartialEq, Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Properties {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

/// An arbitrary value, carried as YAML text (JSON is YAML).
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct SecurityRequirement {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedStringArray>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedStringArray {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<StringArray>,
}

#[derive(Clone, PartialEq, Message)]
struct StringArray {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct SecurityDefinitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSecurityDefinitionsItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedSecurityDefinitionsItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<SecurityDefinitionsItem>,
}

#[derive(Clone, PartialEq, Message)]
struct SecurityDefinitionsItem {
    #[prost(message, optional, tag = "2")]
    api_key_security: Option<ApiKeySecurity>,
}

#[derive(Clone, PartialEq, Message)]
struct ApiKeySecurity {
    #[prost(string, tag = "1")]
    r#type: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(string, tag = "4")]
    description: String,
}

/// Encodes the JSON Swagger document (as `v2_document` builds it).
pub fn encode(doc: &Value) -> Vec<u8> {
    let document = Document {
        swagger: text(doc, "swagger"),
        info: Some(Info {
            title: text(&doc["info"], "title"),
            version: text(&doc["info"], "version"),
        }),
        paths: Some(Paths {
            path: entries(doc, "paths")
                .map(|(name, item)| NamedPathItem {
                    name: name.clone(),
                    value: Some(path_item(item)),
                })
                .collect(),
        }),
        definitions: Some(Definitions {
            additional_properties: named_schemas(doc, "definitions"),
        }),
        security: doc["security"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|requirement| SecurityRequirement {
                additional_properties: entries(requirement, "")
                    .map(|(name, scopes)| NamedStringArray {
                        name: name.clone(),
                        value: Some(StringArray {
                            value: strings(scopes),
                        }),
                    })
                    .collect(),
            })
            .collect(),
        security_definitions: Some(SecurityDefinitions {
            additional_properties: entries(doc, "securityDefinitions")
                .map(|(name, def)| NamedSecurityDefinitionsItem {
                    name: name.clone(),
                    value: Some(SecurityDefinitionsItem {
                        api_key_security: Some(ApiKeySecurity {
                            r#type: text(def, "type"),
                            name: text(def, "name"),
                            r#in: text(def, "in"),
                            description: text(def, "description"),
                        }),
                    }),
                })
                .collect(),
        }),
    };
    document.encode_to_vec()
}

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The members of the object at `field` (`""`: `v` itself), in order.
fn entries<'a>(v: &'a Value, field: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    let object = if field.is_empty() {
        Some(v)
    } else {
        v.get(field)
    };
    object.and_then(Value::as_object).into_iter().flatten()
}

fn named_schemas(v: &Value, field: &str) -> Vec<NamedSchema> {
    entries(v, field)
        .map(|(name, schema)| NamedSchema {
            name: name.clone(),
            value: Some(self::schema(schema)),
        })
        .collect()
}

fn any(v: &Value) -> Any {
    Any {
        yaml: v.to_string(),
    }
}

fn vendor_extensions(v: &Map<String, Value>) -> Vec<NamedAny> {
    v.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn path_item(item: &Value) -> PathItem {
    let op = |method: &str| item.get(method).map(operation);
    PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        patch: op("patch"),
        parameters: parameters(item),
    }
}

fn operation(op: &Value) -> Operation {
    Operation {
        tags: strings(&op["tags"]),
        description: text(op, "description"),
        operation_id: text(op, "operationId"),
        produces: strings(&op["produces"]),
        consumes: strings(&op["consumes"]),
        parameters: parameters(op),
        responses: Some(Responses {
            response_code: entries(op, "responses")
                .map(|(code, response)| NamedResponseValue {
                    name: code.clone(),
                    value: Some(ResponseValue {
                        response: Some(Response {
                            description: text(response, "description"),
                            schema: response.get("schema").map(|s| SchemaItem {
                                schema: Some(schema(s)),
                            }),
                        }),
                    }),
                })
                .collect(),
        }),
        vendor_extension: op.as_object().map(vendor_extensions).unwrap_or_default(),
    }
}

fn parameters(v: &Value) -> Vec<ParametersItem> {
    v["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let kind = match p["in"].as_str() {
                Some("body") => ParameterKind::Body(Box::new(BodyParameter {
                    description: text(p, "description"),
                    name: text(p, "name"),
                    r#in: text(p, "in"),
                    required: p["required"] == true,
                    schema: p.get("schema").map(schema),
                })),
                Some("path") => ParameterKind::NonBody(NonBodyParameter {
                    oneof: Some(NonBodyKind::Path(PathParameter {
                        required: p["required"] == true,
                        r#in: text(p, "in"),
                        description: text(p, "description"),
                        name: text(p, "name"),
                        r#type: text(p, "type"),
                        unique_items: p["uniqueItems"] == true,
                    })),
                }),
                _ => ParameterKind::NonBody(NonBodyParameter {
                    oneof: Some(NonBodyKind::Query(QueryParameter {
                        required: p["required"] == true,
                        r#in: text(p, "in"),
                        description: text(p, "description"),
                        name: text(p, "name"),
                        r#type: text(p, "type"),
                        unique_items: p["uniqueItems"] == true,
                    })),
                }),
            };
            ParametersItem {
                parameter: Some(Parameter { oneof: Some(kind) }),
            }
        })
        .collect()
}

fn schema(v: &Value) -> Schema {
    let Some(map) = v.as_object() else {
        return Schema::default();
    };
    let int = |field: &str| map.get(field).and_then(Value::as_i64);
    let float = |field: &str| map.get(field).and_then(Value::as_f64);
    let types = match map.get("type") {
        Some(Value::String(t)) => Some(TypeItem {
            value: vec![t.clone()],
        }),
        Some(list @ Value::Array(_)) => Some(TypeItem {
            value: strings(list),
        }),
        _ => None,
    };
    let items = match map.get("items") {
        Some(Value::Array(list)) => Some(ItemsItem {
            schema: list.iter().map(schema).collect(),
        }),
        Some(one) => Some(ItemsItem {
            schema: vec![schema(one)],
        }),
        None => None,
    };
    let additional = map
        .get("additionalProperties")
        .map(|a| AdditionalPropertiesItem {
            oneof: Some(match a {
                Value::Bool(b) => AdditionalProperties::Boolean(*b),
                other => AdditionalProperties::Schema(Box::new(schema(other))),
            }),
        });
    Schema {
        r#ref: text(v, "$ref"),
        format: text(v, "format"),
        title: text(v, "title"),
        description: text(v, "description"),
        default: map.get("default").map(any),
        maximum: float("maximum"),
        minimum: float("minimum"),
        max_length: int("maxLength"),
        min_length: int("minLength"),
        pattern: text(v, "pattern"),
        max_items: int("maxItems"),
        min_items: int("minItems"),
        unique_items: map.get("uniqueItems") == Some(&Value::Bool(true)),
        required: strings(&v["required"]),
        r#enum: v["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .map(any)
            .collect(),
        additional_properties: additional,
        r#type: types,
        items,
        all_of: v["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(schema)
            .collect(),
        properties: map.get("properties").map(|_| Properties {
            additional_properties: named_schemas(v, "properties"),
        }),
        read_only: map.get("readOnly") == Some(&Value::Bool(true)),
        vendor_extension: vendor_extensions(map),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_document_carries_paths_parameters_and_gvk_extensions() {
        let bytes = crate::openapi::v2_protobuf();
        let doc = Document::decode(bytes).expect("decodes as openapi.v2.Document");
        assert_eq!(doc.swagger, "2.0");
        let pod_item = doc
            .paths
            .unwrap()
            .path
            .into_iter()
            .find(|p| p.name == "/api/v1/namespaces/{namespace}/pods/{name}")
            .and_then(|p| p.value)
            .expect("pod path");
        let patch = pod_item.patch.expect("patch operation");
        let gvk = patch
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .and_then(|e| e.value.as_ref())
            .expect("gvk extension");
        let gvk: Value = serde_json::from_str(&gvk.yaml).unwrap();
        assert_eq!(gvk["kind"], "Pod");
        let query_names: Vec<String> = patch
            .parameters
            .iter()
            .filter_map(|p| match p.parameter.as_ref()?.oneof.as_ref()? {
                ParameterKind::NonBody(NonBodyParameter {
                    oneof: Some(NonBodyKind::Query(q)),
                }) => Some(q.name.clone()),
                _ => None,
            })
            .collect();
        assert!(query_names.contains(&"fieldValidation".to_owned()));

        let pod = doc
            .definitions
            .unwrap()
            .additional_properties
            .into_iter()
            .find(|s| s.name == "io.k8s.api.core.v1.Pod")
            .and_then(|s| s.value)
            .expect("Pod schema");
        assert_eq!(pod.r#type.unwrap().value, ["object"]);
        let spec = pod
            .properties
            .unwrap()
            .additional_properties
            .into_iter()
            .find(|p| p.name == "spec")
            .and_then(|p| p.value)
            .unwrap();
        assert_eq!(spec.r#ref, "#/definitions/io.k8s.api.core.v1.PodSpec");
    }
}
