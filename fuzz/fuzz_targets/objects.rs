//! What every create goes through after decoding: YAML or JSON bodies, the
//! kind's schema, defaults and validation. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tugboat_api::registry::KINDS;
use tugboat_api::{defaults, validation};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let Ok(value) = serde_saphyr::from_str::<Value>(text) else {
        return;
    };
    let kind = &KINDS[selector as usize % KINDS.len()];
    if let Ok(mut obj) = (kind.normalize)(value) {
        defaults::apply_defaults(kind, &mut obj);
        let _ = validation::validate(kind, &obj, None);
        let _ = validation::validate(kind, &obj, Some(&obj));
    }
});
