//! Reads the index of `mi_option_purge_delay` in mimalloc's `mi_option_e` from the header the
//! `libmimalloc-sys` crate built mimalloc with (it names no Rust constant for that option), so
//! `src/alloc.rs` sets the option by its name rather than by a number copied by hand.

use std::path::Path;

fn main() {
    let dir = std::env::var("DEP_MIMALLOC_INCLUDE_DIR")
        .expect("libmimalloc-sys exports its include directory");
    let header = Path::new(&dir).join("mimalloc.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let text = std::fs::read_to_string(&header)
        .unwrap_or_else(|e| panic!("reading {}: {e}", header.display()));
    let index = option_index(&text, "mi_option_purge_delay")
        .expect("mi_option_purge_delay is in mimalloc's mi_option_e");
    println!("cargo:rustc-env=KFDB_MI_OPTION_PURGE_DELAY={index}");
}

/// The value of `name` in the `mi_option_e` enum of `header`.
fn option_index(header: &str, name: &str) -> Option<i64> {
    let start = header.find("typedef enum mi_option_e")?;
    let body = &header[start..];
    let body = &body[body.find('{')? + 1..body.find('}')?];
    let mut next = 0i64;
    for line in body.lines() {
        let code = line.split("//").next().unwrap_or("").trim();
        for entry in code.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (ident, value) = match entry.split_once('=') {
                Some((i, v)) => (i.trim(), v.trim().parse::<i64>().ok()),
                None => (entry, None),
            };
            if !ident.starts_with("mi_option_") && !ident.starts_with("_mi_option_") {
                continue;
            }
            let value = match value {
                Some(v) => v,
                // An alias (`mi_option_x = mi_option_y`) takes no new number.
                None if entry.contains('=') => continue,
                None => next,
            };
            if ident == name {
                return Some(value);
            }
            next = value + 1;
        }
    }
    None
}
