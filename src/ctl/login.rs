//! `helperctl login RUNTIME`: the OAuth device flow. The daemon talks to the host and keeps
//! the device code and the tokens; helperctl shows the code and the page, and polls with a
//! spinner until the user approved (or the code expired).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use helperd_wire::paths::Paths;
use helperd_wire::wire::{LoginStep, Reply, Request};

use super::send_starting;
use crate::provider::descriptor::OAuth;

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
    let config = crate::config::file::load(&crate::config::config_file(&paths.config_dir))?;
    if config
        .runtime(runtime)
        .is_some_and(|rt| matches!(rt.provider.descriptor().oauth, OAuth::BrowserPkce(_)))
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

/// One parameter of a query string, %-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| helperd_wire::url::percent_decode(&v.replace('+', " ")))?
    })
}

/// What one request to the loopback redirect server is.
#[derive(Debug, PartialEq, Eq)]
enum Redirect {
    /// Not the redirect (a favicon, a preconnect, another path): 404, wait on.
    Other,
    /// The redirect path with another login's state (forged or stale): refused, wait on.
    WrongState,
    /// The host says the login failed.
    Failed(String),
    /// The code, with the state it came with.
    Code(String, String),
}

/// Reads a request line (`GET /callback?code=…&state=… HTTP/1.1`).
fn classify(request_line: &str, expected_state: &str) -> Redirect {
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        return Redirect::Other;
    }
    if query_param(query, "state").as_deref() != Some(expected_state) {
        return Redirect::WrongState;
    }
    match (query_param(query, "code"), query_param(query, "error")) {
        (Some(code), _) => Redirect::Code(code, expected_state.to_string()),
        (None, error) => Redirect::Failed(error.unwrap_or_else(|| "no code".into())),
    }
}

/// Serves the loopback redirect until the host's redirect for this login arrives (or
/// `deadline` passes: `None`). Anything else gets a 404 or a refusal and waiting goes on,
/// so a browser's favicon request or preconnect cannot end the login.
fn wait_for_redirect(
    listener: &std::net::TcpListener,
    expected_state: &str,
    deadline: Instant,
    spinner: &mut Spinner,
) -> anyhow::Result<Option<(String, String)>> {
    use std::io::{BufRead, BufReader};
    listener.set_nonblocking(true)?;
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Ok(None);
                }
                spinner.tick("waiting for the browser…");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        stream.set_nonblocking(false)?;
        // A connection that says nothing (a preconnect) must not hold the others up long.
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut request_line = String::new();
        if BufReader::new(&stream)
            .read_line(&mut request_line)
            .is_err()
        {
            continue;
        }
        let (status, page, outcome) = match classify(&request_line, expected_state) {
            Redirect::Other => ("404 Not Found", "not found", None),
            Redirect::WrongState => (
                "400 Bad Request",
                "helperd: this page does not belong to the login in progress; nothing was done.",
                None,
            ),
            Redirect::Failed(error) => (
                "200 OK",
                "helperd: the login did not complete; see the terminal.",
                Some(Err(error)),
            ),
            Redirect::Code(code, state) => (
                "200 OK",
                "helperd: you are logged in; you can close this tab.",
                Some(Ok((code, state))),
            ),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        match outcome {
            None => continue,
            Some(Ok(found)) => return Ok(Some(found)),
            Some(Err(error)) => bail!("the host did not send a code (it said: {error})"),
        }
    }
}

/// Gitea, Forgejo, Codeberg: the authorization code flow with PKCE on a loopback redirect
/// (RFC 8252 §7.3). helperctl listens on 127.0.0.1 for the one redirect; the daemon keeps
/// the verifier and exchanges the code.
fn browser_login(paths: &Paths, runtime: &str) -> anyhow::Result<u8> {
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

    // The daemon made the state for this login; the page the host redirects to must carry
    // it back (RFC 6749 §10.12).
    let expected_state = query_param(url.split_once('?').map_or("", |(_, q)| q), "state")
        .context("the login page the daemon gave has no state")?;
    let mut spinner = Spinner {
        on: std::io::stderr().is_terminal(),
        frame: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let waited = wait_for_redirect(&listener, &expected_state, deadline, &mut spinner);
    spinner.clear();
    let (code, state) = match waited? {
        Some(found) => found,
        None => bail!(
            "no answer from the browser within 10 minutes; run `helperctl login {runtime}` again"
        ),
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

#[cfg(test)]
mod redirect_tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn requests_are_classified_by_path_and_state() {
        let r = |line: &str| classify(line, "S1");
        assert_eq!(r("GET /favicon.ico HTTP/1.1"), Redirect::Other);
        assert_eq!(
            r("GET /callback?code=c&state=S2 HTTP/1.1"),
            Redirect::WrongState
        );
        assert_eq!(r("GET /callback?code=c HTTP/1.1"), Redirect::WrongState);
        assert_eq!(
            r("GET /callback?error=access_denied&state=S1 HTTP/1.1"),
            Redirect::Failed("access_denied".into())
        );
        assert_eq!(
            r("GET /callback?code=a%2Bb&state=S1 HTTP/1.1"),
            Redirect::Code("a+b".into(), "S1".into())
        );
    }

    /// A favicon request, a preconnect that says nothing and a forged redirect all leave
    /// the login waiting for the real redirect.
    #[test]
    fn the_redirect_server_waits_for_the_redirect_of_this_login() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let browser = std::thread::spawn(move || {
            let ask = |line: &str| {
                let mut s = TcpStream::connect(addr).unwrap();
                write!(s, "{line}\r\nHost: x\r\n\r\n").unwrap();
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer
            };
            // A preconnect that closes without a word.
            drop(TcpStream::connect(addr).unwrap());
            let favicon = ask("GET /favicon.ico HTTP/1.1");
            let forged = ask("GET /callback?code=evil&state=other HTTP/1.1");
            let real = ask("GET /callback?code=good&state=S1 HTTP/1.1");
            (favicon, forged, real)
        });
        let mut spinner = Spinner {
            on: false,
            frame: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let found = wait_for_redirect(&listener, "S1", deadline, &mut spinner).unwrap();
        assert_eq!(found, Some(("good".to_string(), "S1".to_string())));
        let (favicon, forged, real) = browser.join().unwrap();
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        assert!(forged.starts_with("HTTP/1.1 400"), "{forged}");
        assert!(real.contains("you can close this tab"), "{real}");
    }
}
