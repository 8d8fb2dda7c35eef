//! What parsing `config.toml` needs everywhere: [`ConfigError`], the context that builds
//! one at a line (`Cx`), and the span and unknown-key helpers. Shared by the
//! `[[runtime]]` and `[settings]` parser in `mod.rs` and the `[openbao]` one in
//! `openbao.rs`; imports neither.

use std::ops::Range;
use std::path::Path;

use toml_edit::{Item, TableLike};

/// A problem in `config.toml`: the file, the line when known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {message}", line_suffix(.line))]
pub struct ConfigError {
    /// The file as shown to the user.
    pub path: String,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// What is wrong, and how to fix it where that is clear.
    pub message: String,
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// What every error needs: the text (for line numbers) and the file's name.
pub(super) struct Cx<'a> {
    text: &'a str,
    path: String,
}

impl<'a> Cx<'a> {
    /// The context for `text`, read from `path` (only used in messages).
    pub(super) fn new(text: &'a str, path: &Path) -> Cx<'a> {
        Cx {
            text,
            path: path.display().to_string(),
        }
    }

    /// 1-based line of a byte offset.
    pub(super) fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        crate::tomlspan::line_of(self.text, span)
    }

    /// An error at `span` (its line, when known).
    pub(super) fn error(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        ConfigError {
            path: self.path.clone(),
            line: self.line(span),
            message,
        }
    }
}

pub(super) fn key_span(table: &dyn TableLike, key: &str) -> Option<Range<usize>> {
    table.key(key).and_then(|k| k.span())
}

/// The span of a key's value, else of the key (an implicit table has no span of its own).
pub(super) fn value_span(table: &dyn TableLike, key: &str) -> Option<Range<usize>> {
    table
        .get(key)
        .and_then(Item::span)
        .or_else(|| key_span(table, key))
}

/// Refuses keys not in `known`: a misspelt key must not be silently ignored.
pub(super) fn check_keys(
    cx: &Cx<'_>,
    table: &dyn TableLike,
    known: &[&str],
    what: &str,
) -> Result<(), ConfigError> {
    match table.iter().find(|(k, _)| !known.contains(k)) {
        None => Ok(()),
        Some((key, _)) => Err(cx.error(
            key_span(table, key),
            format!(
                "{what}: unknown key {key:?}; known keys: {}",
                known.join(", ")
            ),
        )),
    }
}
