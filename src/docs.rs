//! Man pages and shell completions generated from the clap definitions, committed under
//! `man/` and `contrib/completions/`. A test fails when the committed files are stale;
//! `HELPERD_BLESS=1 cargo test -p helperd docs` rewrites them. `man/helperd.toml.5`, the
//! configuration reference, is written by hand.

use clap::CommandFactory;

use crate::cli::{client_command, Cli, DaemonArgs};

/// Every man page: file name and roff text.
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let pages = [
        (Cli::command(), "1"),
        (DaemonArgs::command(), "8"),
        (client_command(), "1"),
    ];
    pages
        .into_iter()
        .map(|(cmd, section)| {
            let name = format!("{}.{section}", cmd.get_name());
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .section(section)
                .render(&mut out)
                .expect("rendering into a Vec cannot fail");
            (name, out)
        })
        .collect()
}

/// Shell completions for helperctl: file name (under `contrib/completions/`) and script.
pub fn completions() -> Vec<(String, Vec<u8>)> {
    use clap_complete::Shell;
    [
        (Shell::Bash, "helperctl.bash"),
        (Shell::Zsh, "_helperctl"),
        (Shell::Fish, "helperctl.fish"),
    ]
    .into_iter()
    .map(|(shell, name)| {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "helperctl", &mut out);
        (name.to_string(), out)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Compares (or, with HELPERD_BLESS, rewrites) generated files under `dir`.
    fn check(dir: &str, files: Vec<(String, Vec<u8>)>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let bless = std::env::var_os("HELPERD_BLESS").is_some();
        let mut stale = Vec::new();
        for (name, text) in files {
            let path = dir.join(&name);
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read(&path).ok().as_deref() != Some(&text[..]) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "stale generated files {stale:?} in {}: run `HELPERD_BLESS=1 cargo test -p helperd docs`",
            dir.display()
        );
    }

    #[test]
    fn committed_man_pages_are_current() {
        check("man", man_pages());
    }

    #[test]
    fn committed_completions_are_current() {
        check("contrib/completions", completions());
    }

    #[test]
    fn client_man_page_matches_the_client_usage() {
        // The client parses by hand; its usage text must name what the man page documents.
        let usage = include_str!("../helper/src/bin/git-credential-helperd.rs");
        for word in ["--timeout=SECONDS", "get|store|erase"] {
            assert!(usage.contains(word), "client usage lost {word}");
        }
        let cmd = client_command();
        assert!(cmd.get_arguments().any(|a| a.get_id() == "timeout"));
    }
}
