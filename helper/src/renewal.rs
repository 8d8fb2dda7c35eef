//! The renewal dialog on the terminal: when git asked for a runtime whose token expired or
//! was rejected, the client asks for the new token on `/dev/tty` (hidden), so the push
//! that is waiting goes on with it. Echo is switched off with termios and put back on
//! every way out, Ctrl-C included (a signal handler restores it, then lets the signal do
//! its usual work).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};

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
    !disabled && open_tty().is_ok() && !interactive_disabled()
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

fn open_tty() -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/tty")
}

/// The terminal's settings before echo went off, for the signal handler to put back.
/// Written once before the handlers are installed, read only by them.
static mut SAVED: std::mem::MaybeUninit<libc::termios> = std::mem::MaybeUninit::uninit();
static TTY_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// The signals that end a prompt: the terminal is restored, then the signal does what it
/// always does (git and this client stop), so the terminal is never left silent.
const ENDING_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

extern "C" fn restore_and_reraise(sig: libc::c_int) {
    let fd = TTY_FD.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: tcsetattr, signal and raise are async-signal-safe; SAVED was fully written
    // before this handler was installed (TTY_FD >= 0 says so) and is never written again.
    unsafe {
        if fd >= 0 {
            libc::tcsetattr(fd, libc::TCSANOW, std::ptr::addr_of!(SAVED).cast());
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Echo off on `tty` until dropped, with the ending signals restoring it too.
struct EchoOff {
    fd: libc::c_int,
    saved: libc::termios,
}

impl EchoOff {
    fn new(tty: &File) -> io::Result<EchoOff> {
        use std::os::fd::AsRawFd;
        let fd = tty.as_raw_fd();
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: fd is an open terminal; tcgetattr fills `saved` when it returns 0.
        if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: initialised by the successful tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        // SAFETY: single-threaded at this point (the client starts no threads before the
        // prompt), and no handler reads SAVED until TTY_FD is set below.
        unsafe {
            std::ptr::addr_of_mut!(SAVED).write(std::mem::MaybeUninit::new(saved));
        }
        TTY_FD.store(fd, std::sync::atomic::Ordering::SeqCst);
        for sig in ENDING_SIGNALS {
            // SAFETY: installs a handler that only calls async-signal-safe functions.
            unsafe {
                libc::signal(sig, restore_and_reraise as *const () as libc::sighandler_t);
            }
        }
        let mut hidden = saved;
        hidden.c_lflag &= !libc::ECHO;
        hidden.c_lflag |= libc::ECHONL;
        // SAFETY: fd is an open terminal and `hidden` a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &hidden) } != 0 {
            let e = io::Error::last_os_error();
            drop(EchoOff { fd, saved });
            return Err(e);
        }
        Ok(EchoOff { fd, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: as in `new`; restoring the saved settings and the default handlers.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
            for sig in ENDING_SIGNALS {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        TTY_FD.store(-1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Asks `question` with echo off — switched off before the question appears, so nothing
/// typed after it can show — and reads one line.
fn read_hidden_line(tty: &File, question: &str) -> io::Result<String> {
    let _echo_off = EchoOff::new(tty)?;
    let mut out = tty.try_clone()?;
    write!(out, "{question}")?;
    out.flush()?;
    read_line(tty)
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
    writeln!(out, "{}", prompt.text.trim_end())?;
    out.flush()?;
    let question = format!(
        "New token for runtime {} (hidden; empty to skip): ",
        prompt.runtime
    );
    let token = read_hidden_line(&tty, &question)?;
    if token.trim().is_empty() {
        writeln!(out, "skipped; git asks next")?;
        return Ok(None);
    }
    let expires = ask_expiry(&tty)?;
    Ok(Some(Renewal {
        token: token.trim().to_string(),
        expires,
    }))
}

const EXPIRY_QUESTION: &str =
    "When does it expire? (2027-03-01 or 2027-03-01T12:00:00Z; empty if it does not say): ";

fn ask_expiry(tty: &File) -> io::Result<Option<String>> {
    let mut out = tty.try_clone()?;
    write!(out, "{EXPIRY_QUESTION}")?;
    out.flush()?;
    let expires = read_line(tty)?;
    Ok(Some(expires).filter(|e| !e.trim().is_empty()))
}

/// After the daemon refused the typed expiry: shows why and asks again.
pub fn ask_expiry_again(why: &str) -> io::Result<Option<String>> {
    let tty = open_tty()?;
    let mut out = tty.try_clone()?;
    let why = why.trim_end().trim_end_matches("; nothing was stored");
    writeln!(out, "helperd: {why}; try again")?;
    ask_expiry(&tty)
}
