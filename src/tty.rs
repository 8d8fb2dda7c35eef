//! Reading a secret from the user: hidden on the terminal, or a line from stdin when stdin
//! is not a terminal (scripts, CI).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
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
    // Echo goes off before the prompt appears: nothing typed after it may show. Signals
    // and line editing go off too, so that Ctrl-C arrives here as a byte: the terminal
    // is restored first, then the interrupt is raised as the user meant it.
    let saved = termios::tcgetattr(tty.as_fd()).map_err(io::Error::from)?;
    let mut raw = saved.clone();
    raw.local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
    raw.control_chars[termios::SpecialCharacterIndices::VMIN as usize] = 1;
    raw.control_chars[termios::SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcsetattr(tty.as_fd(), SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
    let mut line = Vec::new();
    let read = write!(out, "{prompt}")
        .and_then(|()| out.flush())
        .and_then(|()| read_until_enter(&tty, &mut line));
    // Restore the terminal whatever happened.
    let _ = termios::tcsetattr(tty.as_fd(), SetArg::TCSANOW, &saved);
    let _ = writeln!(out);
    let outcome = read;
    let text = String::from_utf8(std::mem::take(&mut line));
    zeroize::Zeroize::zeroize(&mut line);
    match outcome? {
        Typed::Interrupted => {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
            Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"))
        }
        Typed::Line => {
            let text = text.map_err(|_| io::Error::other("the input is not valid UTF-8"))?;
            Ok(Secret::new(text))
        }
    }
}

enum Typed {
    Line,
    Interrupted,
}

/// Reads bytes up to Enter, with Backspace and Ctrl-U; Ctrl-C or Ctrl-D interrupt.
fn read_until_enter(tty: &File, line: &mut Vec<u8>) -> io::Result<Typed> {
    let mut byte = [0u8; 1];
    loop {
        if (&*tty).read(&mut byte)? == 0 {
            return Ok(Typed::Line);
        }
        match byte[0] {
            b'\n' | b'\r' => return Ok(Typed::Line),
            0x03 => return Ok(Typed::Interrupted),
            0x04 if line.is_empty() => return Ok(Typed::Interrupted),
            0x7f | 0x08 => {
                line.pop();
            }
            0x15 => line.clear(),
            b => line.push(b),
        }
    }
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
