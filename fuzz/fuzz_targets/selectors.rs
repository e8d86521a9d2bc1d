//! Label and field selectors as clients send them in `?labelSelector=` and
//! `?fieldSelector=`: any text must parse or be refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tugboat_api::registry::KINDS;
use tugboat_api::selector::{FieldSelector, LabelSelector};

fuzz_target!(|text: &str| {
    if let Ok(selector) = LabelSelector::parse(text) {
        // What we print (a Scale's status.selector) must read back.
        let printed = selector.to_string();
        assert!(LabelSelector::parse(&printed).is_ok(), "{printed:?} from {text:?}");
    }
    for kind in KINDS.iter().take(3) {
        let _ = FieldSelector::parse(kind, text);
    }
});
