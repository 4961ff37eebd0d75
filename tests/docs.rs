//! The docs are the reference: `docs/architecture.md`'s module map names every module of
//! `src/lib.rs`, and nothing else, so it cannot drift from the code. And the rooms it maps
//! stay rooms: no two of them import each other (directly or round about), and `config`, the
//! floor, imports no stage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// The top-level modules of `src/lib.rs`.
fn rooms() -> BTreeSet<String> {
    read("src/lib.rs")
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
                .or_else(|| l.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_string())
        })
        .collect()
}

#[test]
fn the_architecture_module_map_names_every_module_and_no_other() {
    let code = rooms();
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

/// Which rooms each room's files name as `crate::<room>` (tests and comments left out).
fn imports(rooms: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap();
        let room = rel.iter().next().unwrap().to_string_lossy();
        let room = room.trim_end_matches(".rs").to_string();
        if !rooms.contains(&room) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in code.lines().map(|l| l.split("//").next().unwrap_or("")) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(list) => list.split(['}', ',']).map(str::trim).collect(),
                    None => vec![rest],
                };
                for name in names {
                    let to: String = name
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if to != room && rooms.contains(&to) {
                        graph.entry(room.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn no_two_rooms_import_each_other_and_config_imports_no_stage() {
    let rooms = rooms();
    let graph = imports(&rooms);
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(r) = todo.pop() {
            for next in graph.get(&r).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let cycles: Vec<(String, String)> = graph
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from.clone(), to.clone())))
        .filter(|(from, to)| reaches(to).contains(from))
        .collect();
    assert!(
        cycles.is_empty(),
        "imports that close a cycle between rooms: {cycles:?}"
    );
    let floor: BTreeSet<&str> = ["problem", "text"].into();
    let config: Vec<&String> = graph
        .get("config")
        .into_iter()
        .flatten()
        .filter(|r| !floor.contains(r.as_str()))
        .collect();
    assert!(config.is_empty(), "config imports stages: {config:?}");
}
