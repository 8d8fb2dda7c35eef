//! Reading `config.toml` (an edge: the parsing and the rules are pure, in
//! `crate::config`).

use std::path::Path;

use super::{Config, ConfigError};

/// Reads and parses the file; a missing file is an empty configuration.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Config::parse(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(ConfigError {
            path: path.display().to_string(),
            line: None,
            message: format!("cannot read the file: {e}"),
        }),
    }
}
