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
    ("rotator", 4),
    ("replies", 5),
    ("state", 6),
    ("peer", 7),
    ("memory", 7),
    ("log_writer", 7),
];

/// The pure core, and what it must never import. A module is its file or its folder, less
/// the edges inside it (`config::file`, `policy::file`).
const CORE: &[&str] = &[
    "secret", "gitproto", "location", "runtime", "token", "config", "policy", "decision", "plain",
    "timefmt", "tomlspan", "team", "rotation",
];
const EDGES: &[&str] = &[
    "store",
    "provider",
    "openbao",
    "ipc",
    "daemon",
    "ctl",
    "fsutil",
    "os",
    "config::file",
    "policy::file",
    "cli",
    "tty",
];

/// The parts of an edge the core may read: the provider registry and its descriptors are
/// constant data (reading one does no I/O), and the core's rules (the username git gets,
/// the token page a notice names) depend on them. Their API functions are `pub(crate)`
/// and called by `provider::ProviderClient` alone. `provider::Provider`, the key into the
/// registry, is constant data too.
const CORE_MAY_READ: &[&str] = &[
    "crate::provider::registry",
    "crate::provider::descriptor",
    "crate::provider::Provider",
];

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
        files.retain(|file| file.is_file() && !is_edge(file));
        assert!(!files.is_empty(), "no source for the core module {module}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
            let code = CORE_MAY_READ
                .iter()
                .fold(code.to_string(), |code, allowed| {
                    without_path(&code, allowed)
                });
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

/// The module path of a file under `src/` (`config/file.rs` → `config::file`, `config/mod.rs`
/// → `config`).
fn module_path(file: &Path) -> String {
    let relative = file.strip_prefix(src()).unwrap_or(file).with_extension("");
    let parts: Vec<&str> = relative
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    parts.strip_suffix(&["mod"]).unwrap_or(&parts).join("::")
}

/// A file of an edge, or of a module inside one (`config/file.rs`).
fn is_edge(file: &Path) -> bool {
    let module = module_path(file);
    EDGES.iter().any(|edge| {
        module == *edge
            || module
                .strip_prefix(edge)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

/// `code` without the uses of `path`: `crate::provider::Provider` goes, but not the start of
/// `crate::provider::ProviderClient`.
fn without_path(code: &str, path: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(i) = rest.find(path) {
        let after = &rest[i + path.len()..];
        let whole = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..i]);
        if !whole {
            out.push_str(path);
        }
        rest = after;
    }
    out.push_str(rest);
    out
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
    // The core may name the provider kind, and not the client whose name starts the same.
    let code = "use crate::provider::Provider;\nuse crate::provider::ProviderClient;\n";
    assert_eq!(
        without_path(code, "crate::provider::Provider"),
        "use ;\nuse crate::provider::ProviderClient;\n"
    );
    // A file that reads its module's file is an edge inside the core module's folder.
    assert!(is_edge(&src().join("config/file.rs")));
    assert!(is_edge(&src().join("policy/file.rs")));
    assert!(!is_edge(&src().join("config/mod.rs")));
    assert!(!is_edge(&src().join("config/openbao.rs")));
    assert_eq!(module_path(&src().join("config/mod.rs")), "config");
}
