//! The three patch formats on a realistic Deployment: any body must apply or
//! be refused with a 4xx, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tugboat_api::patch::{PatchType, apply_patch};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let patch_type = match selector % 3 {
        0 => PatchType::Json,
        1 => PatchType::Merge,
        _ => PatchType::StrategicMerge,
    };
    let original = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}
    });
    if let Err(e) = apply_patch(patch_type, &original, body) {
        assert!((400..500).contains(&e.code), "{e}");
    }
});
