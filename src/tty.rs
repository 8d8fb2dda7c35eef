//! Reading a secret from the user: hidden on the terminal, or a line from stdin when stdin
//! is not a terminal (scripts, CI).

use std::io::{self, BufRead, IsTerminal};

use crate::secret::Secret;

/// Asks for a secret with `prompt`. Trailing newline removed.
pub fn read_secret(prompt: &str) -> io::Result<Secret> {
    if io::stdin().is_terminal() {
        read_hidden(prompt)
    } else {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
        let secret = Secret::new(line.trim_end_matches(['\n', '\r']));
        zeroize::Zeroize::zeroize(&mut line);
        Ok(secret)
    }
}

fn read_hidden(prompt: &str) -> io::Result<Secret> {
    let mut line = Vec::new();
    let read = crate::os::read_hidden(prompt, &mut line);
    let text = String::from_utf8(std::mem::take(&mut line));
    zeroize::Zeroize::zeroize(&mut line);
    read?;
    let text = text.map_err(|_| io::Error::other("the input is not valid UTF-8"))?;
    Ok(Secret::new(text))
}

/// Asks a visible question on the terminal and reads one line.
pub fn read_line(prompt: &str) -> io::Result<String> {
    let terminal = helperd_wire::os::Terminal::open()?;
    terminal.write(prompt)?;
    terminal.read_line()
}
