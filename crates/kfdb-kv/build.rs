//! Sets `kfdb_fdb_live` when the `fdb` feature is on and `KFDB_FDB_CLUSTER_FILE` names a cluster,
//! so the FoundationDB variants of the conformance suite run there and are reported as ignored
//! (never as passed) everywhere else.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kfdb_fdb_live)");
    println!("cargo::rerun-if-env-changed=KFDB_FDB_CLUSTER_FILE");
    let feature = std::env::var_os("CARGO_FEATURE_FDB").is_some();
    let cluster = std::env::var_os("KFDB_FDB_CLUSTER_FILE").is_some_and(|v| !v.is_empty());
    if feature && cluster {
        println!("cargo::rustc-cfg=kfdb_fdb_live");
    }
}
