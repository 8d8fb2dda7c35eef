//! The renewal dialog on the terminal: when git asked for a runtime whose token expired or
//! was rejected, the client asks for the new token on the terminal (hidden), so the push
//! that is waiting goes on with it. The terminal itself (`/dev/tty` or the Windows
//! console, echo off and back on every way out) is [`crate::os::Terminal`].

use std::io;

use crate::os::Terminal;
use crate::wire::RenewalPrompt;

/// What the user answered.
pub struct Renewal {
    /// The new token as typed (secret; never echoed).
    pub token: String,
    /// As typed; the daemon parses it. `None` when left empty.
    pub expires: Option<String>,
}

/// Whether a dialog may run: git allows prompts (`GIT_TERMINAL_PROMPT`, and git 2.46's
/// `credential.interactive`) and a terminal is there.
pub fn terminal_available() -> bool {
    let disabled = std::env::var("GIT_TERMINAL_PROMPT")
        .map(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            )
        })
        .unwrap_or(false);
    !disabled && Terminal::open().is_ok() && !interactive_disabled()
}

/// `credential.interactive = false` (git 2.46+): the user asked git never to prompt.
/// Read through `git config` (this program runs under git, so `-c` options and the
/// repository's config apply); only on the rare renewal path.
fn interactive_disabled() -> bool {
    std::process::Command::new("git")
        .args(["config", "--type=bool", "--get", "credential.interactive"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"false")
}

/// Shows the prompt and reads the new token (hidden) and its expiry. `Ok(None)`: the user
/// left the token empty, so git's own prompt runs next.
pub fn ask(prompt: &RenewalPrompt) -> io::Result<Option<Renewal>> {
    let terminal = Terminal::open()?;
    terminal.write(&format!("{}\n", prompt.text.trim_end()))?;
    let question = format!(
        "New token for runtime {} (hidden; empty to skip): ",
        prompt.runtime
    );
    let token = terminal.read_hidden_line(&question)?;
    if token.trim().is_empty() {
        terminal.write("skipped; git asks next\n")?;
        return Ok(None);
    }
    let expires = ask_expiry(&terminal)?;
    Ok(Some(Renewal {
        token: token.trim().to_string(),
        expires,
    }))
}

const EXPIRY_QUESTION: &str =
    "When does it expire? (2027-03-01 or 2027-03-01T12:00:00Z; empty if it does not say): ";

fn ask_expiry(terminal: &Terminal) -> io::Result<Option<String>> {
    terminal.write(EXPIRY_QUESTION)?;
    let expires = terminal.read_line()?;
    Ok(Some(expires).filter(|e| !e.trim().is_empty()))
}

/// After the daemon refused the typed expiry: shows why and asks again.
pub fn ask_expiry_again(why: &str) -> io::Result<Option<String>> {
    let terminal = Terminal::open()?;
    let why = why.trim_end().trim_end_matches("; nothing was stored");
    terminal.write(&format!("helperd: {why}; try again\n"))?;
    ask_expiry(&terminal)
}
