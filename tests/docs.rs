//! The docs are the reference: `docs/architecture.md`'s module map names every module of
//! `src/lib.rs`, and nothing else, so it cannot drift from the code.

use std::collections::BTreeSet;

fn read(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn the_architecture_module_map_names_every_module_and_no_other() {
    let code: BTreeSet<String> = read("src/lib.rs")
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_string())
        })
        .collect();
    let doc: BTreeSet<String> = read("docs/architecture.md")
        .lines()
        .skip_while(|l| !l.starts_with("## Modules"))
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(m, _)| m.to_string()))
        .collect();
    let missing: Vec<_> = code.difference(&doc).collect();
    let stale: Vec<_> = doc.difference(&code).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md: modules missing from the map {missing:?}; rows naming no module {stale:?}"
    );
}
