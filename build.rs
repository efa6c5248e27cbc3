fn main() {
    gst_plugin_version_helper::info();

    // The KServe v2 client of the remote scorer. protoc comes from a crate, not the system.
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    // SAFETY: build scripts are single-threaded; the variable is read by the call below.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/inference.proto"], &["proto"])
        .expect("compile proto/inference.proto");
}
