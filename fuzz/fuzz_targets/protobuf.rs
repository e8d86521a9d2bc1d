//! Kubernetes protobuf request bodies: any bytes decode or are refused with
//! 400, never panic or recurse without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = tugboat_api::protobuf::decode(data) {
        assert_eq!(e.code, 400, "{e}");
    }
});
