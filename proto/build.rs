//! Compiles the gRPC contract with `protox` (pure Rust; no `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=tidelog/v1/tidelog.proto");
    println!("cargo:rerun-if-changed=tidelog/internal/v1/cluster.proto");
    let fds = protox::compile(
        [
            "tidelog/v1/tidelog.proto",
            "tidelog/internal/v1/cluster.proto",
        ],
        ["."],
    )?;
    tonic_prost_build::configure()
        // Record data stays `Bytes` end to end: no copies of batch payloads.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
