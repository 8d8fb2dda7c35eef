//! The direction of dependencies (DESIGN.md §3), checked on the source: inside `daemon/`
//! a file imports only files below it (services never import each other), and the pure
//! core imports no edge.

use std::path::{Path, PathBuf};

/// The layer of each part of `daemon/`, top first. Same layer: may not import each other
/// (except within one part, e.g. `state/*`).
const DAEMON_LAYERS: &[(&str, u8)] = &[
    ("server", 1),
    ("support_server", 2),
    ("line", 3),
    ("dispatch", 3),
    ("git", 4),
    ("tokens", 4),
    ("login", 4),
    ("admin", 4),
    ("replies", 5),
    ("state", 6),
    ("peer", 7),
    ("hardening", 7),
    ("memory", 7),
    ("log_writer", 7),
];

/// The pure core, and what it must never import.
const CORE: &[&str] = &[
    "secret",
    "gitproto",
    "location",
    "runtime",
    "token",
    "config",
    "policy",
    "decision",
    "plain",
    "timefmt",
    "tomlspan",
    "team",
    "config_openbao",
];
const EDGES: &[&str] = &[
    "store",
    "provider",
    "openbao",
    "ipc",
    "daemon",
    "ctl",
    "fsutil",
    "policy_file",
    "cli",
    "tty",
];

/// The parts of an edge the core may read: the provider registry and its descriptors are
/// constant data (reading one does no I/O), and the core's rules (the username git gets,
/// the token page a notice names) depend on them. Their API functions are `pub(crate)`
/// and called by `provider::ProviderClient` alone.
const CORE_MAY_READ: &[&str] = &["crate::provider::registry", "crate::provider::descriptor"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("src is readable").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The daemon part a file under `daemon/` belongs to (`git/refresh.rs` → `git`).
fn part_of(relative: &Path) -> Option<&str> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    Some(first.strip_suffix(".rs").unwrap_or(first))
}

fn layer(part: &str) -> Option<u8> {
    DAEMON_LAYERS
        .iter()
        .find(|(p, _)| *p == part)
        .map(|(_, l)| *l)
}

/// The daemon parts a file refers to: `super::X` (from a top file), `super::super::X`
/// (from a nested one) or `crate::daemon::X`, outside tests.
fn daemon_imports(text: &str, nested: bool) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let prefixes: &[&str] = if nested {
        &["super::super::", "crate::daemon::"]
    } else {
        &["super::", "crate::daemon::"]
    };
    let mut found = Vec::new();
    for prefix in prefixes {
        for (i, _) in code.match_indices(prefix) {
            // `super::super::` also contains `super::`: skip the inner match.
            if !nested && *prefix == "super::" && code[..i].ends_with("super::") {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != "super" {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn daemon_files_import_only_files_below_them() {
    let daemon = src().join("daemon");
    let mut problems = Vec::new();
    for file in rust_files(&daemon) {
        let relative = file.strip_prefix(&daemon).unwrap().to_path_buf();
        if relative == Path::new("mod.rs") || relative == Path::new("layering_tests.rs") {
            continue;
        }
        let part = part_of(&relative).unwrap().to_string();
        let Some(own) = layer(&part) else {
            problems.push(format!("{}: not in DAEMON_LAYERS", relative.display()));
            continue;
        };
        let nested = relative.components().count() > 1;
        let text = std::fs::read_to_string(&file).unwrap();
        for target in daemon_imports(&text, nested) {
            if target == part {
                continue;
            }
            match layer(&target) {
                Some(l) if l > own => {}
                Some(_) => problems.push(format!(
                    "{} (layer {own}) imports {target} (not below it)",
                    relative.display()
                )),
                None if nested => {} // a sibling inside the same part
                None => problems.push(format!("{}: unknown part {target}", relative.display())),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_core_imports_no_edge() {
    let mut problems = Vec::new();
    for module in CORE {
        let mut files = vec![src().join(format!("{module}.rs"))];
        let dir = src().join(module);
        if dir.is_dir() {
            files.extend(rust_files(&dir));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
            let code = CORE_MAY_READ
                .iter()
                .fold(code.to_string(), |code, allowed| code.replace(allowed, ""));
            for edge in EDGES {
                if code.contains(&format!("crate::{edge}::"))
                    || code.contains(&format!("crate::{edge};"))
                {
                    problems.push(format!("{} imports the edge {edge}", file.display()));
                }
            }
            for io in ["std::fs", "std::net", "tokio", "std::process"] {
                if code.contains(io) {
                    problems.push(format!("{} does I/O ({io})", file.display()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the core is not pure:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_a_bad_import() {
    // A service that imports another service, seen from the outside.
    assert_eq!(daemon_imports("use super::tokens::x;", false), ["tokens"]);
    assert_eq!(
        daemon_imports("use super::super::state::State;", true),
        ["state"]
    );
    assert!(layer("tokens") <= layer("git"));
}
