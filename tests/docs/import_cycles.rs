//! No file of `src/` imports one that imports it back, directly or through
//! others, and no top-level module imports one that imports it back
//! (docs/architecture.md, "Layers").
//!
//! A file's imports are the paths it names: `use` trees and inline
//! `crate::`, `super::` and `self::` paths, outside comments, strings and
//! test modules. A path is resolved to the file of the deepest module it
//! names, following `pub use` re-exports to the file that defines the item;
//! a module's `mod` declarations are not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// Every module of `src/` (the library's; `main.rs` is the binary) and its
/// file.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap().with_extension("");
        let mut module: Module = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        match module.last().map(String::as_str) {
            Some("mod") => {
                module.pop();
            }
            Some("lib") if module.len() == 1 => module.clear(),
            Some("main") if module.len() == 1 => continue,
            _ => {}
        }
        modules.insert(module, file);
    }
    modules
}

/// The code of a file without comments, string contents and test modules.
fn code_of(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|&b| b == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body
                + rest[body..]
                    .find(&close)
                    .map_or(rest.len(), |end| end + close.len());
            out.push_str("\"\"");
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            i += j + 1;
            out.push_str("\"\"");
        } else if rest.starts_with("'\"'") {
            // The one char literal that would open a string above.
            i += 3;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    without_test_modules(&out)
}

/// Drops every `#[cfg(...test...)] mod name { ... }`.
fn without_test_modules(code: &str) -> String {
    let mut code = code.to_owned();
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(").map(|a| a + from) {
        let attribute_end = code[at..].find(']').map_or(code.len(), |e| at + e + 1);
        let attribute = &code[at..attribute_end];
        let after = code[attribute_end..].trim_start();
        let after = after.strip_prefix("pub(crate) ").unwrap_or(after);
        let is_test_module = attribute.contains("test") && after.starts_with("mod ");
        let Some(open) = code[attribute_end..].find('{').map(|o| attribute_end + o) else {
            break;
        };
        if !is_test_module || code[attribute_end..open].contains(';') {
            from = attribute_end;
            continue;
        }
        let mut depth = 0;
        let mut end = open;
        for (offset, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + offset + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        code.replace_range(at..end, "");
        from = at;
    }
    code
}

/// The paths of a `use` tree (`a::{b, c::{d, e as f}}`), each as segments.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Module>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut prefix = prefix.to_vec();
        prefix.extend(head);
        let (mut depth, mut start) = (0, 0);
        for (at, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..at], &prefix, out);
                    start = at + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &prefix, out);
        return;
    }
    let tree = tree.split(" as ").next().unwrap_or(tree);
    if tree.is_empty() {
        return;
    }
    let mut path = prefix.to_vec();
    path.extend(tree.split("::").map(|s| s.trim().to_owned()));
    out.push(path);
}

/// `path` as seen from `module`, from the crate root; `None` for paths into
/// other crates.
fn absolute(
    module: &[String],
    path: &[String],
    modules: &BTreeMap<Module, PathBuf>,
) -> Option<Module> {
    let first = path.first()?;
    match first.as_str() {
        "crate" => Some(path[1..].to_vec()),
        "self" => Some([module, &path[1..]].concat()),
        "super" => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let base = module.get(..module.len().checked_sub(ups)?)?;
            Some([base, &path[ups..]].concat())
        }
        _ => {
            let child = [module, &path[..1]].concat();
            modules
                .contains_key(&child)
                .then(|| [module, path].concat())
        }
    }
}

struct Imports {
    /// By file: every path it names, from the crate root.
    paths: BTreeMap<Module, Vec<Module>>,
    /// By file: what its `pub use` items name.
    reexports: BTreeMap<Module, BTreeMap<String, Module>>,
}

fn imports(modules: &BTreeMap<Module, PathBuf>) -> Imports {
    let mut paths: BTreeMap<Module, Vec<Module>> = BTreeMap::new();
    let mut reexports: BTreeMap<Module, BTreeMap<String, Module>> = BTreeMap::new();
    for (module, file) in modules {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let found = paths.entry(module.clone()).or_default();
        let mut from = 0;
        while let Some(at) = code[from..].find("use ").map(|a| a + from) {
            let starts_word = at == 0
                || !code[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
            let end = code[at..].find(';').map_or(code.len(), |e| at + e);
            from = at + 4;
            if !starts_word {
                continue;
            }
            let before = code[..at].trim_end();
            let public = before.ends_with("pub") || before.ends_with(')');
            let mut trees = Vec::new();
            expand(&code[at + 4..end], &[], &mut trees);
            for tree in trees {
                let Some(path) = absolute(module, &tree, modules) else {
                    continue;
                };
                if public && let Some(last) = tree.last() {
                    reexports
                        .entry(module.clone())
                        .or_default()
                        .insert(last.clone(), path.clone());
                }
                found.push(path);
            }
        }
        for start in ["crate::", "super::", "self::"] {
            let mut from = 0;
            while let Some(at) = code[from..].find(start).map(|a| a + from) {
                from = at + start.len();
                let starts_path = at == 0
                    || !code[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
                if !starts_path {
                    continue;
                }
                let end = code[at..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .map_or(code.len(), |e| at + e);
                // A use tree's head (`crate::a::{...}`) is the use's.
                if code[at..end].ends_with("::") {
                    continue;
                }
                let segments: Module = code[at..end]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(path) = absolute(module, &segments, modules) {
                    found.push(path);
                }
            }
        }
    }
    Imports { paths, reexports }
}

/// The file that defines what `path` names.
fn resolve(path: &[String], imports: &Imports, modules: &BTreeMap<Module, PathBuf>) -> Module {
    let mut path = path.to_vec();
    for _ in 0..16 {
        let Some(depth) = (0..=path.len())
            .rev()
            .find(|&k| modules.contains_key(&path[..k]))
        else {
            return Vec::new();
        };
        let module = path[..depth].to_vec();
        let reexported = path
            .get(depth)
            .and_then(|item| imports.reexports.get(&module)?.get(item));
        match reexported {
            Some(target) => path = [target, &path[depth + 1..]].concat(),
            None => return module,
        }
    }
    path
}

/// Edges between files: `a` imports from `b`.
fn edges(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let modules = modules(src);
    let imports = imports(&modules);
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, paths) in &imports.paths {
        let out = edges.entry(module.clone()).or_default();
        for path in paths {
            if path.last().is_some_and(|s| s == "*") {
                continue;
            }
            let target = resolve(path, &imports, &modules);
            // The crate root only declares modules and re-exports them.
            if target != *module && !target.is_empty() {
                out.insert(target);
            }
        }
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_through(
    start: &Module,
    edges: &BTreeMap<Module, BTreeSet<Module>>,
) -> Option<Vec<Module>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in edges.get(&at).into_iter().flatten() {
            if next == start {
                return Some(path);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let edges = edges(&src());
    let cycles: Vec<String> = edges
        .keys()
        .filter_map(|module| cycle_through(module, &edges))
        .map(|cycle| {
            let mut names: Vec<String> = cycle.iter().map(|m| name(m)).collect();
            names.push(names[0].clone());
            names.join(" -> ")
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in edges(&src()) {
        for to in targets {
            if let (Some(a), Some(b)) = (from.first(), to.first())
                && a != b
            {
                top.entry(a.clone()).or_default().insert(b.clone());
            }
        }
    }
    let mut both_ways = Vec::new();
    for (a, targets) in &top {
        for b in targets {
            if a < b && top.get(b).is_some_and(|t| t.contains(a)) {
                both_ways.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(both_ways.is_empty(), "{}", both_ways.join("\n"));
}

/// The check finds what it is for: a made-up tree in which two files
/// import each other through a re-export, and one that does not.
#[test]
fn the_check_finds_a_cycle_through_a_reexport() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("engine")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod engine;\n").unwrap();
    std::fs::write(
        src.join("engine/mod.rs"),
        "mod a;\nmod b;\npub use a::Alpha;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("engine/a.rs"),
        "// use super::b::Beta; in a comment is no import\nuse super::b::Beta;\npub struct Alpha;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("engine/b.rs"),
        "pub struct Beta(crate::engine::Alpha);\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    )
    .unwrap();
    let found = edges(src);
    let a: Module = vec!["engine".into(), "a".into()];
    let b: Module = vec!["engine".into(), "b".into()];
    assert_eq!(cycle_through(&a, &found), Some(vec![a.clone(), b.clone()]));
    std::fs::write(src.join("engine/b.rs"), "pub struct Beta;\n").unwrap();
    assert_eq!(cycle_through(&a, &edges(src)), None);
}
