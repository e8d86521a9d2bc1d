//! What a resource request addresses: the kind, namespace, name and
//! subresource taken from its path, and its query parameters.

use serde::Deserialize;
use tugboat_api::registry::Registry;
use tugboat_api::{ApiError, ApiResult, Kind};

/// The target of a request under `/api/v1/...` or `/apis/{group}/{version}/...`.
#[derive(Debug)]
pub struct Target {
    pub kind: &'static Kind,
    /// Empty for cluster-scoped kinds and for lists across all namespaces.
    pub namespace: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a path under a group-version names.
pub enum Route {
    /// `/api/v1` or `/apis/{group}/{version}`: the resource list.
    ResourceList {
        group: String,
        version: String,
    },
    Resource(Target),
}

/// Parses `segments` after `/api` (`["v1", ...]`) or after `/apis`
/// (`["apps", "v1", ...]`) against the kinds `kinds` serves now.
pub fn route(kinds: &Registry, legacy: bool, segments: &[&str]) -> ApiResult<Route> {
    let (group, version, rest) = if legacy {
        match segments {
            [version, rest @ ..] => ("", *version, rest),
            [] => return Err(not_found(segments)),
        }
    } else {
        match segments {
            [group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(not_found(segments)),
        }
    };
    if !kinds.group_versions().contains(&(group, version)) {
        return Err(not_found(segments));
    }
    let lookup = |plural: &str| kinds.by_plural(group, version, plural);
    let (kind, namespace, name, sub) = match rest {
        [] => {
            return Ok(Route::ResourceList {
                group: group.to_owned(),
                version: version.to_owned(),
            });
        }
        // `namespaces/{ns}/{plural}/...` names a namespaced resource, but
        // `namespaces/{name}/status` is the Namespace's own subresource.
        ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_some_and(|k| k.namespaced) => {
            let kind = lookup(plural).expect("checked above");
            match tail {
                [] => (kind, *ns, None, None),
                [name] => (kind, *ns, Some(*name), None),
                [name, sub] => (kind, *ns, Some(*name), Some(*sub)),
                _ => return Err(not_found(segments)),
            }
        }
        [plural, tail @ ..] => {
            let kind = lookup(plural).ok_or_else(|| not_found(segments))?;
            match tail {
                [] => (kind, "", None, None),
                [name] if !kind.namespaced => (kind, "", Some(*name), None),
                [name, sub] if !kind.namespaced => (kind, "", Some(*name), Some(*sub)),
                _ => return Err(not_found(segments)),
            }
        }
    };
    if let Some(sub) = sub
        && !(sub == "status" && kind.has_status
            || sub == "scale" && kind.has_scale
            || sub == "finalize" && kind.kind == "Namespace"
            || sub == "binding" && kind.kind == "Pod")
    {
        return Err(not_found(segments));
    }
    Ok(Route::Resource(Target {
        kind,
        namespace: namespace.to_owned(),
        name: name.map(str::to_owned),
        subresource: sub.map(str::to_owned),
    }))
}

fn not_found(segments: &[&str]) -> ApiError {
    ApiError::no_route(&segments.join("/"))
}

/// The query parameters of resource requests, as Kubernetes names them.
/// Numbers are kept as strings and parsed where used, so that a bad value
/// gets a 400 that names the parameter.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: Option<String>,
    pub allow_watch_bookmarks: Option<String>,
    pub send_initial_events: Option<String>,
    pub timeout_seconds: Option<String>,
    pub dry_run: Option<String>,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub force: Option<String>,
    pub grace_period_seconds: Option<String>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<String>,
    pub include_object: Option<String>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> ApiResult<Params> {
        serde_urlencoded::from_str(query.unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
    }

    pub fn is_watch(&self) -> bool {
        flag(&self.watch)
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run.as_deref().is_some_and(|v| v == "All")
    }

    pub fn force(&self) -> bool {
        flag(&self.force)
    }

    pub fn allow_bookmarks(&self) -> bool {
        flag(&self.allow_watch_bookmarks)
    }

    pub fn send_initial_events(&self) -> bool {
        flag(&self.send_initial_events)
    }

    pub fn limit(&self) -> ApiResult<usize> {
        number(&self.limit, "limit").map(|n| n.unwrap_or(0).max(0) as usize)
    }

    pub fn timeout_seconds(&self) -> ApiResult<Option<i64>> {
        number(&self.timeout_seconds, "timeoutSeconds")
    }

    pub fn grace_period_seconds(&self) -> ApiResult<Option<i64>> {
        number(&self.grace_period_seconds, "gracePeriodSeconds")
    }

    /// The resourceVersion parameter as a revision; `None` when unset, "" or "0".
    pub fn revision(&self) -> ApiResult<Option<i64>> {
        match self.resource_version.as_deref() {
            None | Some("") | Some("0") => Ok(None),
            Some(rv) => parse_resource_version(rv).map(Some),
        }
    }
}

pub fn parse_resource_version(rv: &str) -> ApiResult<i64> {
    rv.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

fn flag(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1" | ""))
}

fn number(v: &Option<String>, name: &str) -> ApiResult<Option<i64>> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid value {s:?} for {name}")))
        })
        .transpose()
}
