//! Serving CustomResourceDefinitions: the API server's own controller (the
//! apiextensions server's naming and finalizing controllers in one) turns
//! each definition in the store into the kinds it serves (`Objects::kinds`),
//! then accepts its names (`status.acceptedNames`, conditions
//! `NamesAccepted` and `Established`, what `kubectl wait --for
//! condition=established` waits on), unless another definition of its
//! group holds its kind or a short name (`NamesAccepted` False, not
//! served, until that one goes). A deleted definition stops being
//! served and its objects are deleted before its
//! `customresourcecleanup.apiextensions.k8s.io` finalizer is released.
//!
//! It follows the definitions through the watch cache, so a definition
//! written by any client (or another server on the same store) is served.
//! The definitions already stored are served before the server answers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tugboat_api::custom::{self, CLEANUP_FINALIZER};
use tugboat_api::{ApiResult, Kind, meta, registry};
use tugboat_store::{EventKind, KeyRange, Op, RangeOptions, Revision, Txn};

use crate::objects::{Objects, decode, revision_of, store_error};
use crate::rest::now;

/// How many objects of a deleted definition go in one store transaction.
const DELETE_BATCH: usize = 100;

fn definition_kind() -> &'static Kind {
    registry::by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .expect("CustomResourceDefinitions are served")
}

/// Serves the stored definitions, then follows their changes in the background.
pub async fn start(objects: Arc<Objects>) -> ApiResult<()> {
    let after = sync_all(&objects).await?;
    tokio::spawn(follow(objects, after));
    Ok(())
}

/// Serves every stored definition and no other; returns the revision read at.
async fn sync_all(objects: &Objects) -> ApiResult<Revision> {
    let found = objects
        .store
        .range(
            KeyRange::Prefix(definition_kind().key_prefix()),
            RangeOptions::default(),
        )
        .await
        .map_err(store_error)?;
    let mut definitions = found
        .kvs
        .iter()
        .map(decode)
        .collect::<ApiResult<Vec<_>>>()?;
    // Those whose names were accepted keep them against later claimants.
    definitions.sort_by_key(|d| d["status"]["acceptedNames"].is_null());
    let mut names = Vec::new();
    for definition in definitions {
        let name = meta::name(&definition).to_owned();
        // One definition that cannot be synced keeps neither the server
        // from starting nor the others from being served.
        if let Err(e) = sync(objects, definition).await {
            tracing::warn!("custom resource definition {name}: {e}");
        }
        names.push(name);
    }
    for gone in objects.kinds.definitions() {
        if !names.contains(&gone) {
            objects.kinds.set_custom(&gone, Vec::new());
        }
    }
    Ok(found.revision)
}

async fn follow(objects: Arc<Objects>, mut after: Revision) {
    let prefix = definition_kind().key_prefix();
    loop {
        match objects.cache.watch(&prefix, after).await {
            Ok(mut events) => {
                while let Some(Ok(event)) = events.next().await {
                    after = event.kv.mod_revision;
                    let handled = match event.kind {
                        EventKind::Put => match decode(&event.kv) {
                            Ok(definition) => sync(&objects, definition).await,
                            Err(e) => Err(e),
                        },
                        // The names it held may be another definition's now.
                        EventKind::Delete => {
                            let name = event.kv.key.strip_prefix(&prefix).unwrap_or_default();
                            objects.kinds.set_custom(name, Vec::new());
                            sync_all(&objects).await.map(|_| ())
                        }
                    };
                    if let Err(e) = handled {
                        tracing::warn!("custom resource definitions: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!("custom resource definitions: watch: {e}"),
        }
        // The watch ended (or history was compacted): read everything again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        match sync_all(&objects).await {
            Ok(revision) => after = revision,
            Err(e) => tracing::warn!("custom resource definitions: {e}"),
        }
    }
}

/// Serves a definition (or stops, once it is deleted) and brings its status
/// and finalizer up to date.
async fn sync(objects: &Objects, definition: Value) -> ApiResult<()> {
    let name = meta::name(&definition).to_owned();
    let spec = &definition["spec"];
    let (group, plural) = (
        spec["group"].as_str().unwrap_or_default(),
        spec["names"]["plural"].as_str().unwrap_or_default(),
    );
    // A definition may not take over a built-in resource: its objects are
    // the built-in kind's, which deleting the definition would delete. A
    // dotless group (refused by validation, but stored before it) could be
    // a core plural whose keys its objects' would be.
    if !group.contains('.')
        || registry::KINDS
            .iter()
            .any(|k| k.group == group && k.plural == plural)
    {
        return Ok(());
    }
    if meta::is_being_deleted(&definition) {
        objects.kinds.set_custom(&name, Vec::new());
        if meta::finalizers(&definition).contains(&CLEANUP_FINALIZER) {
            delete_objects(objects, &format!("/registry/{group}/{plural}/")).await?;
            release(objects, definition).await?;
        }
        return Ok(());
    }
    let conflict = conflict(objects, &definition);
    let kinds = match conflict {
        None => custom::kinds_of(&definition),
        Some(_) => Vec::new(),
    };
    objects.kinds.set_custom(&name, kinds);
    accept(objects, definition, conflict).await
}

/// Why a definition's names cannot be accepted: a kind or short name that
/// another definition of its group was given first (the naming
/// controller's `KindConflict` and `ShortNamesConflict`).
fn conflict(objects: &Objects, definition: &Value) -> Option<(&'static str, String)> {
    let name = meta::name(definition);
    let group = definition["spec"]["group"].as_str().unwrap_or_default();
    let others: Vec<&Kind> = objects
        .kinds
        .all()
        .into_iter()
        .filter(|k| k.group == group && k.custom.as_ref().is_some_and(|c| c.crd != name))
        .collect();
    let names = &definition["spec"]["names"];
    let accepted = &definition["status"]["acceptedNames"];
    let kind = names["kind"].as_str().unwrap_or_default();
    if accepted["kind"] != kind && others.iter().any(|k| k.kind == kind) {
        return Some(("KindConflict", format!("{kind:?} is already in use")));
    }
    let short_names = names["shortNames"].as_array().into_iter().flatten();
    for short in short_names.filter_map(Value::as_str) {
        let was_accepted = accepted["shortNames"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s == short));
        let taken = others
            .iter()
            .any(|k| k.short_names.contains(&short) || k.plural == short || k.singular == short);
        if !was_accepted && taken {
            return Some(("ShortNamesConflict", format!("{short:?} is already in use")));
        }
    }
    None
}

/// The status and finalizer a definition has, served or refused for
/// `conflict`; written when they differ.
async fn accept(
    objects: &Objects,
    definition: Value,
    conflict: Option<(&str, String)>,
) -> ApiResult<()> {
    let mut new = definition.clone();
    let now = now();
    let status = &mut new["status"];
    if !status.is_object() {
        *status = json!({});
    }
    match conflict {
        None => {
            status["acceptedNames"] = custom::accepted_names(&definition);
            set_condition(
                status,
                "NamesAccepted",
                true,
                "NoConflicts",
                "no conflicts found",
                &now,
            );
            set_condition(
                status,
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
                &now,
            );
        }
        Some((reason, message)) => {
            set_condition(status, "NamesAccepted", false, reason, &message, &now);
            set_condition(
                status,
                "Established",
                false,
                "NotAccepted",
                "not all names are accepted",
                &now,
            );
        }
    }
    let storage = definition["spec"]["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["storage"] == true))
        .map(|v| v["name"].clone());
    if let Some(storage) = storage {
        let stored = &mut status["storedVersions"];
        match stored.as_array_mut() {
            Some(versions) if !versions.contains(&storage) => versions.push(storage),
            Some(_) => {}
            None => *stored = json!([storage]),
        }
    }
    let mut finalizers: Vec<Value> = meta::finalizers(&definition)
        .into_iter()
        .map(Value::from)
        .collect();
    if !finalizers.contains(&Value::from(CLEANUP_FINALIZER)) {
        finalizers.push(CLEANUP_FINALIZER.into());
        meta::set(&mut new, "finalizers", finalizers.into());
    }
    if new != definition {
        // A lost race is a newer definition, whose own event syncs it again.
        objects
            .replace(definition_kind(), &new, revision_of(&definition))
            .await?;
    }
    Ok(())
}

/// Sets a condition, keeping its transition time if it stood so already.
fn set_condition(
    status: &mut Value,
    kind: &str,
    holds: bool,
    reason: &str,
    message: &str,
    now: &str,
) {
    let holds = if holds { "True" } else { "False" };
    let condition = json!({
        "type": kind,
        "status": holds,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    });
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"].as_array_mut().expect("just made");
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(c) if c["status"] == holds && c["reason"] == reason && c["message"] == message => {}
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// Deletes every object stored under `prefix`, a batch at a time; watchers
/// see each go.
async fn delete_objects(objects: &Objects, prefix: &str) -> ApiResult<()> {
    loop {
        let found = objects
            .store
            .range(
                KeyRange::Prefix(prefix.to_owned()),
                RangeOptions {
                    limit: DELETE_BATCH,
                    ..RangeOptions::default()
                },
            )
            .await
            .map_err(store_error)?;
        if found.kvs.is_empty() {
            return Ok(());
        }
        let txn = Txn {
            compares: Vec::new(),
            success: found
                .kvs
                .iter()
                .map(|kv| Op::Delete {
                    key: kv.key.clone(),
                })
                .collect(),
            failure: Vec::new(),
        };
        objects.store.txn(txn).await.map_err(store_error)?;
    }
}

/// Takes the cleanup finalizer off a deleted definition, which goes once
/// no other finalizer holds it.
async fn release(objects: &Objects, definition: Value) -> ApiResult<()> {
    let kind = definition_kind();
    let rest: Vec<Value> = meta::finalizers(&definition)
        .into_iter()
        .filter(|f| *f != CLEANUP_FINALIZER)
        .map(Value::from)
        .collect();
    let revision = revision_of(&definition);
    if rest.is_empty() {
        objects.remove(kind, &definition, revision).await?;
    } else {
        let mut new = definition;
        meta::set(&mut new, "finalizers", rest.into());
        objects.replace(kind, &new, revision).await?;
    }
    Ok(())
}
