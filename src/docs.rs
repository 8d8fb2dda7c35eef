//! Man pages generated from the clap definitions, committed under `man/`. A test fails when
//! the committed pages are stale; `HELPERD_BLESS=1 cargo test -p helperd docs` rewrites them.

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn committed_man_pages_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        let bless = std::env::var_os("HELPERD_BLESS").is_some();
        let mut stale = Vec::new();
        for (name, text) in man_pages() {
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
            "stale man pages {stale:?}: run `HELPERD_BLESS=1 cargo test -p helperd docs`"
        );
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
