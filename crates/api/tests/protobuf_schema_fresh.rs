//! The generated protobuf schema must be what the generator produces from the
//! current k8s-pb and the current served kinds, so it cannot drift.

#[allow(dead_code)] // `main` is the example's entry point, unused here.
#[path = "../examples/gen_protobuf_schema.rs"]
mod gen_protobuf_schema;

#[test]
fn protobuf_schema_is_fresh() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(gen_protobuf_schema::SCHEMA_FILE);
    let checked_in = std::fs::read_to_string(&path).expect("read the schema file");
    assert!(
        checked_in == gen_protobuf_schema::generate(),
        "{} is stale: run `cargo run -p tugboat-api --example gen_protobuf_schema`",
        path.display()
    );
}
