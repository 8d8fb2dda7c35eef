//! The renewal dialog on the terminal: when git asked for a runtime whose token expired or
//! was rejected, the client asks for the new token on `/dev/tty` (hidden), so the push
//! that is waiting goes on with it. std only: echo is turned off with `stty`, which runs
//! only in this rare path.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::wire::RenewalPrompt;

/// What the user answered.
pub struct Renewal {
    pub token: String,
    /// As typed; the daemon parses it. `None` when left empty.
    pub expires: Option<String>,
}

/// Whether a dialog may run: git allows prompts and a terminal is there.
pub fn terminal_available() -> bool {
    let disabled = std::env::var("GIT_TERMINAL_PROMPT")
        .map(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            )
        })
        .unwrap_or(false);
    !disabled && open_tty().is_ok()
}

fn open_tty() -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/tty")
}

/// Runs `stty` on the terminal (`-echo` / `echo`).
fn stty(tty: &File, arg: &str) -> io::Result<()> {
    let status = Command::new("stty")
        .arg(arg)
        .stdin(Stdio::from(tty.try_clone()?))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("stty {arg} failed")))
    }
}

fn read_line(tty: &File) -> io::Result<String> {
    let mut line = String::new();
    BufReader::new(tty).read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Shows the prompt and reads the new token (hidden) and its expiry. `Ok(None)`: the user
/// left the token empty, so git's own prompt runs next.
pub fn ask(prompt: &RenewalPrompt) -> io::Result<Option<Renewal>> {
    let tty = open_tty()?;
    let mut out = tty.try_clone()?;
    // Echo goes off before the question appears, as getpass does: whatever is typed
    // after the question is seen must never show.
    let hidden = stty(&tty, "-echo");
    writeln!(out, "{}", prompt.text.trim_end())?;
    write!(
        out,
        "New token for runtime {} (hidden; empty to skip): ",
        prompt.runtime
    )?;
    out.flush()?;
    let token = read_line(&tty);
    // Echo must come back even if reading failed.
    if hidden.is_ok() {
        let _ = stty(&tty, "echo");
        writeln!(out)?;
    }
    let token = token?;
    if token.trim().is_empty() {
        writeln!(out, "skipped; git asks next")?;
        return Ok(None);
    }
    write!(
        out,
        "When does it expire? (2027-03-01 or 2027-03-01T12:00:00Z; empty if it does not say): "
    )?;
    out.flush()?;
    let expires = read_line(&tty)?;
    Ok(Some(Renewal {
        token: token.trim().to_string(),
        expires: Some(expires).filter(|e| !e.trim().is_empty()),
    }))
}
