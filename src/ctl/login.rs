//! `helperctl login RUNTIME`: the OAuth device flow. The daemon talks to the host and keeps
//! the device code and the tokens; helperctl shows the code and the page, and polls with a
//! spinner until the user approved (or the code expired).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use helperd_wire::paths::Paths;
use helperd_wire::wire::{LoginStep, Reply, Request};

use super::send_starting;

fn step(paths: &Paths, request: Request) -> anyhow::Result<LoginStep> {
    match send_starting(paths, request)?.reply {
        Reply::Login { login } => Ok(*login),
        Reply::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

/// A one-character spinner on stderr while waiting (only on a terminal).
struct Spinner {
    on: bool,
    frame: usize,
}

impl Spinner {
    fn tick(&mut self, text: &str) {
        if !self.on {
            return;
        }
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        self.frame = (self.frame + 1) % FRAMES.len();
        eprint!("\r{} {text}", FRAMES[self.frame]);
        let _ = std::io::stderr().flush();
    }

    fn clear(&self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

pub fn login(paths: &Paths, runtime: &str) -> anyhow::Result<u8> {
    let (mut interval, expires_in) = match step(
        paths,
        Request::LoginStart {
            runtime: runtime.to_string(),
        },
    )? {
        LoginStep::Code {
            user_code,
            verification_uri,
            verification_uri_complete,
            interval,
            expires_in,
        } => {
            eprintln!("To log in runtime {runtime}, open {verification_uri}");
            eprintln!("and enter the code: {user_code}");
            if let Some(complete) = verification_uri_complete {
                eprintln!("(or open {complete}, which has the code filled in)");
            }
            (interval.max(1), expires_in)
        }
        other => bail!("unexpected login step from the daemon: {other:?}"),
    };
    let deadline = Instant::now() + Duration::from_secs(expires_in);
    let mut spinner = Spinner {
        on: std::io::stderr().is_terminal(),
        frame: 0,
    };
    loop {
        // Sleep the interval in small steps so the spinner turns.
        let wake = Instant::now() + Duration::from_secs(interval);
        while Instant::now() < wake {
            spinner.tick("waiting for you to approve in the browser…");
            std::thread::sleep(Duration::from_millis(100));
        }
        if Instant::now() > deadline {
            spinner.clear();
            bail!("the code expired before it was approved; run `helperctl login {runtime}` again");
        }
        let polled = step(
            paths,
            Request::LoginPoll {
                runtime: runtime.to_string(),
            },
        );
        match polled {
            Ok(LoginStep::Pending { interval: next }) => interval = next.max(1),
            Ok(LoginStep::Done { message }) => {
                spinner.clear();
                println!("{message}");
                return Ok(0);
            }
            Ok(other) => {
                spinner.clear();
                bail!("unexpected login step from the daemon: {other:?}")
            }
            Err(e) => {
                spinner.clear();
                return Err(e);
            }
        }
    }
}
