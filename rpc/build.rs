//! Generates the gRPC message types from `proto/` with protox (a .proto compiler in Rust, so no
//! protoc is needed) and prost-build, and writes the descriptor set that reflection serves.

use prost::Message;

const PROTOS: &[&str] = &[
    "squall/v1/squall.proto",
    "grpc/health/v1/health.proto",
    "grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
];

fn main() {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"]).expect("the .proto files compile");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("descriptors.bin"), fds.encode_to_vec()).expect("OUT_DIR is writable");
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(fds)
        .expect("prost-build generates the types");
}
