//! The project's documents name only what a clone of it has: every
//! relative Markdown link (and its `#anchor`) resolves, and no file cites a
//! document from outside the project.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Folders that are build output or local state, not the project.
const NOT_THE_PROJECT: [&str; 6] = [
    "target",
    ".git",
    "corpus",
    "artifacts",
    "coverage",
    "node_modules",
];

/// Every file under `dir` whose name ends with one of `extensions`.
fn files(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !NOT_THE_PROJECT.contains(&name.as_str()) {
                files(&path, extensions, out);
            }
        } else if extensions.iter().any(|extension| name.ends_with(extension)) {
            out.push(path);
        }
    }
}

/// The inline links `[text](target)` of a Markdown text, with their line,
/// outside code blocks and code spans.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans hold examples, not links.
        let prose: String = line
            .split('`')
            .enumerate()
            .map(|(i, part)| if i % 2 == 0 { part } else { "" })
            .collect();
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push((number + 1, after[..end].to_owned()));
            rest = &after[end..];
        }
    }
    found
}

/// The anchors GitHub makes of a Markdown file's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        out.insert(slug);
    }
    out
}

#[test]
fn every_relative_markdown_link_points_at_a_file_that_exists() {
    let mut documents = Vec::new();
    files(&root(), &[".md"], &mut documents);
    assert!(documents.len() >= 10, "found only {documents:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                document.clone()
            } else {
                document.parent().unwrap().join(path)
            };
            let place = format!(
                "{}:{line}: {target}",
                document.strip_prefix(root()).unwrap().display()
            );
            if !resolved.exists() {
                broken.push(format!("{place} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor {
                let target_text = std::fs::read_to_string(&resolved).unwrap_or_default();
                if !anchors(&target_text).contains(anchor) {
                    broken.push(format!("{place} (no heading makes #{anchor})"));
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} links checked");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn no_file_cites_a_document_a_clone_does_not_have() {
    // Written in pieces so that this file does not name them itself.
    let outside = [
        ["PROTO", "COL.md"].concat(),
        ["KNO", "WN.md"].concat(),
        ["CL", "I.md"].concat(),
        ["../sha", "red/"].concat(),
    ];
    let mut sources = Vec::new();
    files(
        &root(),
        &[".rs", ".md", ".toml", ".sh", ".py", ".yml", "run"],
        &mut sources,
    );
    let mut citing = Vec::new();
    for source in &sources {
        let text = std::fs::read_to_string(source).unwrap();
        for name in &outside {
            if text.contains(name.as_str()) {
                citing.push(format!(
                    "{} names {name}",
                    source.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(citing.is_empty(), "{}", citing.join("\n"));
}

#[test]
fn the_link_reader_finds_links_and_anchors_as_github_makes_them() {
    let text = "See [a](docs/a.md#two-words) and `[not](x.md)`.\n```\n[no](y.md)\n```\n[b](b.md)";
    assert_eq!(
        links(text),
        [
            (1, "docs/a.md#two-words".to_owned()),
            (5, "b.md".to_owned())
        ]
    );
    let headings = anchors("# Two words\n## 7a. Replay streams (v1.1)\n### `check`, and more");
    assert!(headings.contains("two-words"));
    assert!(headings.contains("7a-replay-streams-v11"));
    assert!(headings.contains("check-and-more"));
}

#[test]
fn the_readme_layout_names_every_module_and_example() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let layout = readme
        .split("## Layout")
        .nth(1)
        .and_then(|rest| rest.split("```text").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("README.md has a ## Layout section with a text block");
    let mut sources = Vec::new();
    files(&root().join("src"), &[".rs"], &mut sources);
    files(&root().join("cli").join("src"), &[".rs"], &mut sources);
    files(&root().join("examples"), &[".rs"], &mut sources);
    let mut missing = Vec::new();
    for source in &sources {
        let name = source.file_name().unwrap().to_string_lossy().into_owned();
        // A folder module is named by its folder.
        let listed = if name == "mod.rs" {
            let folder = source
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy();
            format!("{folder}/")
        } else {
            name
        };
        if !layout.contains(&listed) {
            missing.push(source.strip_prefix(root()).unwrap().display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's layout does not name: {}",
        missing.join(", ")
    );
}
