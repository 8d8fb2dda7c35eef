//! Reading a secret from the user: hidden on the terminal, or a line from stdin when stdin
//! is not a terminal (scripts, CI).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::os::fd::AsFd;

use nix::sys::termios::{self, LocalFlags, SetArg};

use crate::secret::Secret;

/// Asks for a secret with `prompt`. Trailing newline removed.
pub fn read_secret(prompt: &str) -> io::Result<Secret> {
    if io::stdin().is_terminal() {
        let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
        read_hidden(tty, prompt)
    } else {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
        let secret = Secret::new(line.trim_end_matches(['\n', '\r']));
        zeroize::Zeroize::zeroize(&mut line);
        Ok(secret)
    }
}

fn read_hidden(tty: File, prompt: &str) -> io::Result<Secret> {
    let mut out = tty.try_clone()?;
    // Echo goes off before the prompt appears: nothing typed after it may show.
    let saved = termios::tcgetattr(tty.as_fd()).map_err(io::Error::from)?;
    let mut hidden = saved.clone();
    hidden.local_flags.remove(LocalFlags::ECHO);
    hidden.local_flags.insert(LocalFlags::ECHONL);
    termios::tcsetattr(tty.as_fd(), SetArg::TCSANOW, &hidden).map_err(io::Error::from)?;
    let mut line = String::new();
    let read = write!(out, "{prompt}")
        .and_then(|()| out.flush())
        .and_then(|()| BufReader::new(&tty).read_line(&mut line));
    // Restore echo whatever happened.
    let _ = termios::tcsetattr(tty.as_fd(), SetArg::TCSANOW, &saved);
    read?;
    let secret = Secret::new(line.trim_end_matches(['\n', '\r']));
    zeroize::Zeroize::zeroize(&mut line);
    Ok(secret)
}

/// Asks a visible question on the terminal and reads one line.
pub fn read_line(prompt: &str) -> io::Result<String> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let mut out = tty.try_clone()?;
    write!(out, "{prompt}")?;
    out.flush()?;
    let mut line = String::new();
    BufReader::new(&tty).read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
