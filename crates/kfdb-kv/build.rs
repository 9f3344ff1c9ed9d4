//! Sets `kfdb_fdb_live` when the `fdb` feature is on and `KFDB_FDB_CLUSTER_FILE` names a cluster,
//! so the FoundationDB variants of the conformance suite run there and are reported as ignored
//! (never as passed) everywhere else. `KFDB_FDB_LIB_DIR` adds a directory to search for
//! `libfdb_c` when linking (a FoundationDB client library built locally, not installed).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kfdb_fdb_live)");
    println!("cargo::rerun-if-env-changed=KFDB_FDB_CLUSTER_FILE");
    println!("cargo::rerun-if-env-changed=KFDB_FDB_LIB_DIR");
    if let Some(dir) = std::env::var_os("KFDB_FDB_LIB_DIR").filter(|d| !d.is_empty())
        && std::env::var_os("CARGO_FEATURE_FDB").is_some()
    {
        println!("cargo::rustc-link-search=native={}", dir.to_string_lossy());
    }
    let feature = std::env::var_os("CARGO_FEATURE_FDB").is_some();
    let cluster = std::env::var_os("KFDB_FDB_CLUSTER_FILE").is_some_and(|v| !v.is_empty());
    if feature && cluster {
        println!("cargo::rustc-cfg=kfdb_fdb_live");
    }
}
