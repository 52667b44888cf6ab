//! The stages point one way: every `crate::` (and `super::`) reference in `src/` goes
//! to a module of the same or a lower layer of the table in `docs/architecture.md`, and
//! the modules of one layer do not form a cycle. Inside `expr`, the same holds for its
//! own table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A layer table from `docs/architecture.md`: the rows after `heading`, each
/// `| layer | stage | modules |` with modules written as `` `name` ``.
fn layers(doc: &str, heading: &str) -> BTreeMap<String, usize> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("docs/architecture.md has no `{heading}`"));
    let mut table = BTreeMap::new();
    for line in doc[start..].lines().skip(1).skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Ok(layer) = cells[0].parse::<usize>() else { continue };
        for module in cells[2].split(',') {
            let module = module.trim().trim_matches('`');
            assert!(table.insert(module.to_string(), layer).is_none(), "`{module}` is listed twice");
        }
    }
    assert!(!table.is_empty(), "the table under `{heading}` is empty");
    table
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`: `expr/check.rs` is `["expr", "check"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        parts.clear();
    }
    parts
}

/// The code of a file without comments (doc links are not dependencies) and without the
/// contents of string literals.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            i += 2;
            while i < bytes.len() && !bytes[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if bytes[i] == b'"' && (i == 0 || bytes[i - 1] != b'\'') {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The first two path segments of each item of `crate::{...}` or `crate::a::b`.
fn referenced(after: &str, out: &mut Vec<(String, Option<String>)>) {
    if let Some(group) = after.strip_prefix('{') {
        let mut depth = 0usize;
        let mut item_start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    referenced_item(group[item_start..i].trim(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    referenced_item(group[item_start..i].trim(), out);
                    item_start = i + 1;
                }
                _ => {}
            }
        }
    } else {
        referenced_item(after, out);
    }
}

fn referenced_item(item: &str, out: &mut Vec<(String, Option<String>)>) {
    let first = ident(item);
    if first.is_empty() || first == "self" {
        return;
    }
    // Paths through the crate root's re-exports must name the module instead, so that
    // the edge is visible.
    assert!(
        !first.starts_with(|c: char| c.is_ascii_uppercase()),
        "write `crate::MODULE::{first}`, not the root re-export `crate::{first}`"
    );
    let second = item[first.len()..].strip_prefix("::").map(ident).filter(|s| !s.is_empty());
    out.push((first.to_string(), second.map(str::to_string)));
}

/// Every (from module path, to module path) reference in `src/`.
fn references() -> Vec<(Vec<String>, Vec<String>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut edges = Vec::new();
    for file in files {
        let from = module_of(&src, &file);
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let mut found = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            if i > 0 && (code.as_bytes()[i - 1].is_ascii_alphanumeric() || code.as_bytes()[i - 1] == b'_') {
                continue; // `$crate::` or a longer name
            }
            referenced(&code[i + "crate::".len()..], &mut found);
        }
        for (i, _) in code.match_indices("super::") {
            let mut target_base: Vec<String> = from.clone();
            // `super` of a file module is its parent; of a `mod.rs`-less leaf too.
            target_base.pop();
            let mut refs = Vec::new();
            referenced(&code[i + "super::".len()..], &mut refs);
            for (first, second) in refs {
                let mut path = target_base.clone();
                path.push(first);
                if let Some(second) = second {
                    path.push(second);
                }
                found.push((path[0].clone(), path.get(1).cloned()));
            }
        }
        for (first, second) in found {
            let mut to = vec![first];
            to.extend(second);
            edges.push((from.clone(), to));
        }
    }
    edges
}

/// Checks edges between modules named by `key` against `table`: never upward, no cycle
/// within a layer.
fn check(edges: &[(String, String)], table: &BTreeMap<String, usize>, what: &str) {
    let mut problems = Vec::new();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges {
        if from == to {
            continue;
        }
        let (Some(&lf), Some(&lt)) = (table.get(from), table.get(to)) else {
            for m in [from, to] {
                if !table.contains_key(m) {
                    problems.push(format!("{what} `{m}` is not in the layer table"));
                }
            }
            continue;
        };
        if lt > lf {
            problems.push(format!("{what} `{from}` (layer {lf}) uses `{to}` (layer {lt}), a higher layer"));
        }
        graph.entry(from).or_default().insert(to);
    }
    // A cycle: depth-first search with colours.
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        colour: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        problems: &mut Vec<String>,
    ) {
        colour.insert(node, 1);
        stack.push(node);
        for &next in graph.get(node).into_iter().flatten() {
            match colour.get(next) {
                Some(1) => {
                    let at = stack.iter().position(|n| *n == next).unwrap_or(0);
                    problems.push(format!("cycle: {} -> {next}", stack[at..].join(" -> ")));
                }
                Some(_) => {}
                None => visit(next, graph, colour, stack, problems),
            }
        }
        stack.pop();
        colour.insert(node, 2);
    }
    let mut colour = BTreeMap::new();
    let nodes: Vec<&str> = graph.keys().copied().collect();
    for node in nodes {
        if !colour.contains_key(node) {
            visit(node, &graph, &mut colour, &mut Vec::new(), &mut problems);
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "the stages must point one way:\n{}", problems.join("\n"));
}

#[test]
fn stages_point_one_way() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md")).unwrap();
    let table = layers(&doc, "## Layers");
    let top: Vec<(String, String)> = references()
        .into_iter()
        .filter(|(from, _)| !from.is_empty())
        .map(|(from, to)| (from[0].clone(), to[0].clone()))
        .collect();
    assert!(top.len() > 50, "the scan found too few references ({}); is it reading src/?", top.len());
    check(&top, &table, "module");
}

#[test]
fn expression_stages_point_one_way() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md")).unwrap();
    let table = layers(&doc, "## Layers inside `expr`");
    let inner: Vec<(String, String)> = references()
        .into_iter()
        .filter(|(from, to)| from.len() == 2 && from[0] == "expr" && to.len() == 2 && to[0] == "expr")
        .filter(|(_, to)| table.contains_key(&to[1]))
        .map(|(from, to)| (from[1].clone(), to[1].clone()))
        .collect();
    assert!(!inner.is_empty(), "no references between expression stages found");
    check(&inner, &table, "expression stage");
}

#[test]
fn the_checker_rejects_an_upward_edge_and_a_cycle() {
    let table: BTreeMap<String, usize> =
        [("low", 0), ("high", 1), ("peer", 1)].into_iter().map(|(m, l)| (m.to_string(), l)).collect();
    let up = vec![("low".to_string(), "high".to_string())];
    assert!(std::panic::catch_unwind(|| check(&up, &table, "module")).is_err());
    let cycle = vec![("high".to_string(), "peer".to_string()), ("peer".to_string(), "high".to_string())];
    assert!(std::panic::catch_unwind(|| check(&cycle, &table, "module")).is_err());
    let fine = vec![("high".to_string(), "low".to_string()), ("high".to_string(), "peer".to_string())];
    check(&fine, &table, "module");
}
