//! `git-credential-helperd`: the program git runs (`credential.helper = helperd`).
//!
//! It forwards git's standard input to the daemon unparsed, prints the daemon's answer and
//! its notices, and starts the daemon when none is listening. Whatever goes wrong, it
//! prints one line on stderr and exits 0, so that git goes on to its own prompt.
//!
//! git starts this program for every credential it needs, so its start-up is on the path
//! of every fetch and push: `no_main` skips the Rust runtime's set-up (stack-guard probing
//! of /proc/self/maps, signal stacks), about a dozen system calls this program has no use
//! for. std still works: its arguments and environment come from glibc as usual.

// (Test builds keep the harness's own main.)
#![cfg_attr(not(test), no_main)]

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use helperd_wire::client::{self, ClientError};
use helperd_wire::paths::Paths;
use helperd_wire::renewal;
use helperd_wire::wire::{
    Envelope, ErrorCode, GitAction, RenewalPrompt, Reply, Request, Response, MAX_MESSAGE_BYTES,
};

const USAGE: &str = "\
usage: git-credential-helperd [--timeout=SECONDS] [--socket=PATH] <get|store|erase>

git runs this program; you normally do not. Set it up with
    git config --global credential.helper helperd
It forwards git's request to the helperd daemon (starting it when needed).

    --timeout=SECONDS  plain credentials stored by this call expire after SECONDS
                       (like git's credential-cache --timeout)
    --socket=PATH      ask the daemon listening at PATH, never start one: on a remote
                       machine, the helperd forwarded from your laptop over SSH
                       (`helperctl forward HOST` on the laptop prints the set-up)
    --help             print this help
    --version          print the version";

/// Most input git ever sends; far above any real credential.
const MAX_INPUT_BYTES: usize = MAX_MESSAGE_BYTES / 2;

/// The C entry point; see the note at the top.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    helperd_wire::os::prepare_client_process();
    std::ffi::c_int::from(run_main())
}

#[cfg_attr(test, allow(dead_code))]
fn run_main() -> u8 {
    let invocation = match parse_args(std::env::args().skip(1)) {
        Ok(inv) => inv,
        Err(msg) => {
            eprintln!("git-credential-helperd: {msg}\n{USAGE}");
            return 2;
        }
    };
    let (action, timeout_secs, socket) = match invocation {
        Invocation::Help => {
            println!("{USAGE}");
            return 0;
        }
        Invocation::Version => {
            println!("git-credential-helperd {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        // git's rule: a helper ignores an action it does not know.
        Invocation::Unknown => return 0,
        Invocation::Git(action, timeout, socket) => (action, timeout, socket),
    };

    if let Err(msg) = run(action, timeout_secs, socket) {
        eprintln!("helperd: {msg}");
    }
    // Always 0: git then carries on with its other helpers and its own prompt.
    0
}

enum Invocation {
    Help,
    Version,
    Unknown,
    /// The action, `--timeout`, `--socket`.
    Git(GitAction, Option<u64>, Option<PathBuf>),
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Invocation, String> {
    let mut timeout = None;
    let mut socket = None;
    let mut action = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let parse_timeout = |value: &str| {
            value
                .parse::<u64>()
                .map_err(|_| format!("--timeout takes a number of seconds, not {value:?}"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--timeout" => {
                let value = args.next().ok_or("--timeout needs a number of seconds")?;
                timeout = Some(parse_timeout(&value)?);
            }
            _ if arg.starts_with("--timeout=") => {
                timeout = Some(parse_timeout(&arg["--timeout=".len()..])?);
            }
            "--socket" => {
                let value = args.next().ok_or("--socket needs the path of a socket")?;
                socket = Some(socket_path(&value)?);
            }
            _ if arg.starts_with("--socket=") => {
                socket = Some(socket_path(&arg["--socket=".len()..])?);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ if action.is_none() => action = Some(arg),
            // git appends nothing after the action; extra words are ignored like git does.
            _ => {}
        }
    }
    let action = action.ok_or("missing the action (get, store or erase)")?;
    Ok(match GitAction::parse(&action) {
        Some(a) => Invocation::Git(a, timeout, socket),
        None => Invocation::Unknown,
    })
}

/// `--socket`'s path; a leading `~/` is the home folder (git does not expand it in
/// `credential.helper`, and the remote path is usually under the home folder).
fn socket_path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("--socket needs the path of a socket".into());
    }
    match value.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|home| PathBuf::from(home).join(rest))
            .ok_or_else(|| format!("--socket={value}: HOME is not set to expand ~")),
        None => Ok(PathBuf::from(value)),
    }
}

/// Reads git's request: up to the first blank line or end of input.
fn read_git_input() -> Result<String, String> {
    let stdin = io::stdin();
    let mut lock = stdin.lock();
    let mut input = Vec::new();
    loop {
        let start = input.len();
        // Capped, so one endless line cannot eat memory before the size check.
        let room = (MAX_INPUT_BYTES + 1).saturating_sub(input.len()) as u64;
        let n = (&mut lock)
            .take(room)
            .read_until(b'\n', &mut input)
            .map_err(|e| format!("failed to read git's request: {e}"))?;
        if n == 0 || input[start..] == *b"\n" {
            input.truncate(start);
            break;
        }
        if input.len() > MAX_INPUT_BYTES {
            return Err(format!(
                "git's request is larger than {} KiB; refusing it",
                MAX_INPUT_BYTES / 1024
            ));
        }
    }
    String::from_utf8(input).map_err(|_| "git's request is not valid UTF-8; refusing it".into())
}

fn run(
    action: GitAction,
    timeout_secs: Option<u64>,
    socket: Option<PathBuf>,
) -> Result<(), String> {
    let input = read_git_input()?;
    let envelope = Envelope::new(Request::Git {
        action,
        input,
        timeout_secs,
    });
    if let Some(socket) = socket {
        return run_forwarded(&socket, &envelope);
    }
    let paths = Paths::from_env().map_err(|e| e.to_string())?;

    let response = match client::send(&paths.socket, &envelope) {
        Err(ClientError::NotRunning(_)) => {
            start_daemon(&paths.socket)?;
            client::send(&paths.socket, &envelope).map_err(|e| e.to_string())?
        }
        other => other.map_err(|e| e.to_string())?,
    };
    let response = if is_version_mismatch(&response) {
        // An older (or newer) daemon from another installation: replace it, once.
        replace_daemon(&paths.socket)?;
        client::send(&paths.socket, &envelope).map_err(|e| e.to_string())?
    } else {
        response
    };
    answer_git(offer_renewal(&paths.socket, false, response, &envelope)?)
}

/// When the daemon offers a renewal and a terminal is there, asks for the new token and
/// returns the daemon's answer with it; else the answer as it came.
fn offer_renewal(
    socket: &Path,
    forwarded: bool,
    response: Response,
    envelope: &Envelope,
) -> Result<Response, String> {
    Ok(match (&response.prompt, &envelope.request) {
        (Some(prompt), Request::Git { input, .. }) if renewal::terminal_available() => {
            match renew(socket, forwarded, prompt, input)? {
                Some(renewed) => renewed,
                // Skipped: git's own prompt comes next. The prompt already said why, so
                // only the answer goes out: the runtime's username, so that git asks for
                // the password alone and the token typed there renews the runtime.
                None => Response {
                    notice: None,
                    ..response
                },
            }
        }
        _ => response,
    })
}

/// A request to a daemon forwarded over SSH (`--socket`): never starts one, never
/// replaces one; the renewal prompt is offered here, on the remote terminal.
fn run_forwarded(socket: &Path, envelope: &Envelope) -> Result<(), String> {
    let response = match client::send_to_own(socket, envelope) {
        Ok(response) => response,
        Err(ClientError::NotRunning(_)) => {
            return Err(format!(
                "no helperd is forwarded on this connection ({}): connect with ssh -R {}:<the laptop's forward.socket>, see `helperctl forward` on the laptop",
                socket.display(),
                socket.display()
            ))
        }
        Err(e) => return Err(e.to_string()),
    };
    answer_git(offer_renewal(socket, true, response, envelope)?)
}

/// Asks for the new token on the terminal and has the daemon answer git with it.
fn renew(
    socket: &Path,
    forwarded: bool,
    prompt: &RenewalPrompt,
    input: &str,
) -> Result<Option<Response>, String> {
    let answer = renewal::ask(prompt).map_err(|e| format!("the renewal prompt failed: {e}"))?;
    let Some(mut answer) = answer else {
        return Ok(None);
    };
    // A mistyped expiry must not throw away the token just typed: ask for it again.
    for attempt in 1..=MAX_EXPIRY_ATTEMPTS {
        let request = Envelope::new(Request::Renew {
            runtime: prompt.runtime.clone(),
            secret: answer.token.clone(),
            expires: answer.expires.clone(),
            input: input.to_string(),
        });
        let sent = match forwarded {
            true => client::send_to_own(socket, &request),
            false => client::send(socket, &request),
        };
        let response = sent.map_err(|e| e.to_string())?;
        match &response.reply {
            Reply::Error {
                code: ErrorCode::BadRequest,
                message,
            } if message.contains("expiry") && attempt < MAX_EXPIRY_ATTEMPTS => {
                answer.expires = renewal::ask_expiry_again(message)
                    .map_err(|e| format!("the renewal prompt failed: {e}"))?;
            }
            _ => return Ok(Some(response)),
        }
    }
    unreachable!("the last attempt returns")
}

/// How often the expiry may be typed at the renewal prompt.
const MAX_EXPIRY_ATTEMPTS: u32 = 3;

fn is_version_mismatch(response: &Response) -> bool {
    matches!(
        response.reply,
        Reply::Error {
            code: ErrorCode::VersionMismatch,
            ..
        }
    )
}

fn start_daemon(socket: &Path) -> Result<(), String> {
    let me = std::env::current_exe().ok();
    client::start_daemon(&client::daemon_executable(me.as_deref()), socket)
}

/// Stops the daemon on `socket` (every version honours `shutdown`) and starts ours.
fn replace_daemon(socket: &Path) -> Result<(), String> {
    // A daemon that does not stop in time is reported by the start that follows.
    let _ = client::stop_daemon(socket, Duration::from_secs(5));
    start_daemon(socket)
}

fn answer_git(response: Response) -> Result<(), String> {
    if let Some(notice) = &response.notice {
        eprintln!("{}", notice.trim_end());
    }
    match response.reply {
        Reply::Git { output } => {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(output.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("failed to write the answer to git: {e}"))
        }
        Reply::Error { message, .. } => Err(message),
        // Answers to other requests never come for a git request.
        _ => Ok(()),
    }
}
