//! The terminal for the renewal prompt, the same on every OS: only opening it and
//! switching echo off differ (`open_terminal`, `EchoOff` of each family).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};

use super::imp::{open_terminal, EchoOff, ECHOES_ENTER};

/// The terminal (`/dev/tty`, or the Windows console), apart from git's stdin and stdout.
pub struct Terminal {
    input: File,
    output: File,
}

impl Terminal {
    /// Opens the terminal; fails when there is none (a cron job, CI, a service).
    pub fn open() -> io::Result<Terminal> {
        let (input, output) = open_terminal()?;
        Ok(Terminal { input, output })
    }

    /// Writes `text` and flushes it.
    pub fn write(&self, text: &str) -> io::Result<()> {
        let mut out = &self.output;
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// Reads one line, without its line end.
    pub fn read_line(&self) -> io::Result<String> {
        let mut line = String::new();
        BufReader::new(&self.input).read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }

    /// Asks `question` with echo off (switched off before the question appears, so
    /// nothing typed after it can show) and reads one line. Echo comes back on every way
    /// out, Ctrl-C included.
    pub fn read_hidden_line(&self, question: &str) -> io::Result<String> {
        let echo_off = EchoOff::new(&self.input)?;
        self.write(question)?;
        let line = self.read_line();
        drop(echo_off);
        if !ECHOES_ENTER {
            self.write("\n")?;
        }
        line
    }
}
