//! What parsing `config.toml` needs everywhere: [`ConfigError`] and the context that builds
//! one at a line (`Cx`, the TOML parse context shared with `policy.toml` in
//! [`crate::tomlspan`]). Shared by the `[[runtime]]` and `[settings]` parser in `mod.rs`
//! and the `[openbao]` one in `openbao.rs`; imports neither.

use crate::tomlspan::{line_suffix, AtLine};

pub(super) use crate::tomlspan::{check_keys, key_span, value_span};

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

impl AtLine for ConfigError {
    fn at_line(path: String, line: Option<usize>, message: String) -> Self {
        ConfigError {
            path,
            line,
            message,
        }
    }
}

/// The parse context of `config.toml`: its errors are [`ConfigError`]s.
pub(super) type Cx<'a> = crate::tomlspan::Cx<'a, ConfigError>;
