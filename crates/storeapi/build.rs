//! Generates the StoreAPI and Info protobuf types and gRPC glue (needs `protoc`, from the
//! Debian package protobuf-compiler; scripts/install-deps.sh installs it).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // Chunk bytes and labels are slices of what was read or received, never copied.
    tonic_prost_build::configure()
        .bytes(".thanos.Chunk")
        .bytes(".thanos.Label")
        .compile_protos(
            &["proto/rpc.proto", "proto/info.proto", "proto/apis.proto"],
            &["proto"],
        )?;
    Ok(())
}
