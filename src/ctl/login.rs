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
    let config = crate::config_file::load(&crate::config::config_file(&paths.config_dir))?;
    if config
        .runtime(runtime)
        .is_some_and(|rt| rt.provider == crate::config::Provider::Gitea)
    {
        return browser_login(paths, runtime);
    }
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

/// Gitea, Forgejo, Codeberg: the authorization code flow with PKCE on a loopback redirect
/// (RFC 8252 §7.3). helperctl listens on 127.0.0.1 for the one redirect; the daemon keeps
/// the verifier and exchanges the code.
fn browser_login(paths: &Paths, runtime: &str) -> anyhow::Result<u8> {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let url = match step(
        paths,
        Request::LoginBrowserStart {
            runtime: runtime.to_string(),
            redirect_uri,
        },
    )? {
        LoginStep::Browser { url } => url,
        other => bail!("unexpected login step from the daemon: {other:?}"),
    };
    eprintln!("To log in runtime {runtime}, open this page in your browser and approve:");
    eprintln!("  {url}");
    // Best effort: a desktop opens it by itself.
    if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }

    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut spinner = Spinner {
        on: std::io::stderr().is_terminal(),
        frame: 0,
    };
    let (mut stream, _) = loop {
        match listener.accept() {
            Ok(conn) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    spinner.clear();
                    bail!("no answer from the browser within 10 minutes; run `helperctl login {runtime}` again");
                }
                spinner.tick("waiting for the browser…");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    };
    spinner.clear();
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request_line = String::new();
    BufReader::new(&stream).read_line(&mut request_line)?;
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| {
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| crate::gitproto::percent_decode(&v.replace('+', " ")))?
        })
    };
    let (code, state, error) = (param("code"), param("state"), param("error"));
    let page = if code.is_some() {
        "helperd: you are logged in; you can close this tab."
    } else {
        "helperd: the login did not complete; see the terminal."
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    let (Some(code), Some(state)) = (code, state) else {
        bail!(
            "the host did not send a code{}",
            error
                .map(|e| format!(" (it said: {e})"))
                .unwrap_or_default()
        );
    };
    match step(
        paths,
        Request::LoginBrowserFinish {
            runtime: runtime.to_string(),
            code,
            state,
        },
    )? {
        LoginStep::Done { message } => {
            println!("{message}");
            Ok(0)
        }
        other => bail!("unexpected login step from the daemon: {other:?}"),
    }
}
