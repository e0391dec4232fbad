//! What users read stays inside the repository: README.md and every file under
//! `api-docs/`, `docs/` and `helm/` link only to files that exist in it, and name none of
//! the project's private design documents.

use std::path::{Component, Path, PathBuf};

/// Documents that are not part of the repository, by the names they go by.
const PRIVATE: &[&str] = &[
    "../shared",
    "shared/spec",
    "esl-transcripts",
    "API.md",
    "AGENTS.md",
    "DESIGN.md",
    "ESL.md",
    "STYLE.md",
];

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The user-facing files, as paths relative to the repository root.
fn user_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    for dir in ["api-docs", "docs", "helm"] {
        files_under(&root.join(dir), &mut files);
    }
    files
}

/// `path` with `.` and `..` folded away, if it does not climb above its root.
fn normalized(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// Targets of Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            rest.find(')').map(|end| rest[..end].trim())
        })
        .collect()
}

#[test]
fn user_docs_link_only_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for file in user_files(root) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // binary (screenshots)
        };
        let shown = file.strip_prefix(root).unwrap().display().to_string();
        for name in PRIVATE {
            if text.contains(name) {
                problems.push(format!("{shown}: names {name}"));
            }
        }
        for target in link_targets(&text) {
            let target = target.split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let relative = file
                .parent()
                .unwrap()
                .strip_prefix(root)
                .unwrap()
                .join(target);
            match normalized(&relative) {
                Some(inside) if root.join(&inside).exists() => {}
                _ => problems.push(format!(
                    "{shown}: links {target}, not a file of the repository"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn link_checks_catch_what_they_must() {
    assert_eq!(
        link_targets("see [a](../x.md) and [b](y.md#z)"),
        ["../x.md", "y.md#z"]
    );
    assert_eq!(normalized(Path::new("api-docs/../../shared")), None);
    assert_eq!(
        normalized(Path::new("api-docs/./GUIDE.md")),
        Some(PathBuf::from("api-docs/GUIDE.md"))
    );
}
