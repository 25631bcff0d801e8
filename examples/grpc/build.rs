//! Compiles `proto/chain.proto` with the `protoc` that `protoc-bin-vendored`
//! ships, so that building the example needs no `protoc` installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/chain.proto"],
        &["proto"],
    )?;
    Ok(())
}
