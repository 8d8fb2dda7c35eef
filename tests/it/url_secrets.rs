//! Issue 12: a password inside a URL — one git sends, or one a user writes into
//! config.toml or `helperctl runtime add` — is printed by no output, whatever characters
//! it holds (`#`, `?`, `/`, `@`, a %-escape): not git's answers and helperd's notices and
//! errors, not the audit log (`helperctl audit`, `--json`, the file), not the daemon log at
//! trace level, not `status` and `status --json`, not `which`, not `runtime list`, not the
//! support bundle. (`which` and `runtime add --url/--api-url` are also covered by
//! runtimes.rs.)

use std::fs;
use std::process::{Command, Output};

use crate::util::{
    add_runtime, assert_ok, config_path, ctl, ctl_ok, files_under, run_with_stdin, stderr, stdout,
    Sandbox,
};

/// The passwords: each with a character that ends some reading of a URL's userinfo early,
/// and one written %-escaped (`Sec%40ret5` is `Sec@ret5`).
const SECRETS: [&str; 5] = ["Sec#ret1", "Sec?ret2", "Sec/ret3", "Sec@ret4", "Sec%40ret5"];

/// The runtime token served for `h.example`: served on purpose, never a needle.
const TOKEN: &str = "ghp_servedTok3nForH";

/// Every text that would give `secret` away, whole or in part: as written, %-decoded,
/// %-encoded, its start right after the user name (a redaction that stopped at the special
/// character) and its end (one that stopped after it).
fn needles(secret: &str) -> Vec<String> {
    let decoded = helperd_wire::url::percent_decode(secret).expect("a valid %-escape");
    let encoded: String = decoded
        .chars()
        .map(|c| match c {
            '#' | '?' | '/' | '@' | '%' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect();
    let digit = &secret[secret.len() - 1..];
    vec![
        secret.to_string(),
        decoded,
        encoded,
        ":Sec".to_string(),
        format!("ret{digit}"),
    ]
}

/// Fails naming the first output of `outputs` (`(what, text)`) that gives `secret` away.
#[track_caller]
fn assert_no_secret(secret: &str, outputs: &[(String, String)]) {
    for needle in needles(secret) {
        for (what, text) in outputs {
            assert!(
                !text.contains(&needle),
                "{what} gives away the password {secret:?} ({needle:?}):\n{text}"
            );
        }
    }
}

/// `(what, stdout + stderr)` of a command.
fn said(what: impl Into<String>, out: &Output) -> (String, String) {
    (
        what.into(),
        format!("stdout:\n{}\nstderr:\n{}", stdout(out), stderr(out)),
    )
}

/// git's stderr without git's own failed prompt (`fatal: could not read Username for
/// 'https://HOST'`), which quotes the host git was handed.
fn without_gits_prompt(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("fatal: could not read "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `helperctl ARGS` (whatever its exit status), as `(what, stdout + stderr)`.
fn ctl_said(sb: &Sandbox, args: &[&str]) -> (String, String) {
    said(format!("helperctl {}", args.join(" ")), &ctl(sb, args))
}

/// Every file of a fresh support bundle, untarred, as `(what, text)`.
fn bundle_files(sb: &Sandbox, tag: &str) -> Vec<(String, String)> {
    let bundle = sb.dir.path().join(format!("bundle-{tag}.tar"));
    ctl_ok(
        sb,
        &[
            "support",
            "bundle",
            "--output",
            &bundle.display().to_string(),
        ],
    );
    let dir = sb.dir.path().join(format!("unpacked-{tag}"));
    fs::create_dir(&dir).unwrap();
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&bundle)
        .arg("-C")
        .arg(&dir)
        .output()
        .expect("tar runs");
    assert_ok(&out);
    let files = files_under(&dir);
    assert!(files.len() >= 5, "the bundle has its files: {files:?}");
    let mut texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                format!(
                    "the support bundle's {}",
                    f.strip_prefix(&dir).unwrap().display()
                ),
                String::from_utf8_lossy(&fs::read(f).unwrap()).into_owned(),
            )
        })
        .collect();
    texts.push((
        "the support bundle (raw tar)".into(),
        String::from_utf8_lossy(&fs::read(&bundle).unwrap()).into_owned(),
    ));
    texts
}

/// What the daemon keeps and reports: `status` (both forms), the audit log (both forms
/// and the file), the daemon log and every file of the support bundle.
fn reports(sb: &Sandbox, tag: &str) -> Vec<(String, String)> {
    let mut outputs = vec![
        ctl_said(sb, &["status"]),
        ctl_said(sb, &["status", "--json"]),
        ctl_said(sb, &["audit"]),
        ctl_said(sb, &["audit", "--json"]),
        ctl_said(sb, &["runtime", "list"]),
        (
            "state/audit.log".into(),
            fs::read_to_string(sb.helperd_home().join("state/audit.log")).unwrap_or_default(),
        ),
    ];
    outputs.extend(bundle_files(sb, tag));
    // Last: the commands above log too.
    outputs.push(("the daemon log (trace)".into(), sb.log()));
    outputs
}

/// The requests git's side can make with `secret` in a URL, for `host`: git's own `url=`
/// form (also with another URL in its path), and the attribute form with the userinfo in
/// the host or the path.
fn requests(secret: &str, host: &str) -> Vec<String> {
    vec![
        format!("url=https://user:{secret}@{host}/org/repo.git\n"),
        format!("url=https://user:{secret}@{host}\n"),
        format!("url=https://{host}/org/https://user:{secret}@x.example/repo.git\n"),
        format!("protocol=https\nhost=user:{secret}@{host}\npath=org/repo.git\n"),
        format!("protocol=https\nhost=user:{secret}@{host}\n"),
        format!(
            "protocol=https\nhost={host}\npath=org/https://user:{secret}@{host}/repo.git\nusername=user\n"
        ),
        // Malformed: a bad %-escape after the password.
        format!("url=https://user:{secret}@{host}/org/%zz\n"),
    ]
}

/// git's requests for hosts served a token, refused (a runtime without one) and served
/// plain credentials, with a password in the URL: git's answers and helperd's notices,
/// through the real git and through the client alone (which hands `url=` lines to the
/// daemon as they are), and everything the daemon keeps of them.
#[test]
fn a_password_in_a_url_git_sends_is_printed_nowhere() {
    let sb = Sandbox::new();
    add_runtime(&sb, "acme", "github", "https://h.example/");
    add_runtime(&sb, "bare", "github", "https://n.example/");
    let mut c = sb.ctl();
    c.args(["token", "set", "acme", "--offline", "--name", "laptop"]);
    assert_ok(&run_with_stdin(c, format!("{TOKEN}\n").as_bytes()));
    for secret in SECRETS {
        let mut outputs = Vec::new();
        for host in ["h.example", "n.example", "p.example"] {
            for input in requests(secret, host) {
                // git echoes a password it was given itself, and its prompt's error
                // names the host it was given: neither is helperd's. The client's own
                // stdout, below, is.
                for op in ["fill", "approve", "reject"] {
                    let out = sb.credential(op, &input);
                    outputs.push((
                        format!("git credential {op} (stderr) of\n{input}"),
                        without_gits_prompt(&stderr(&out)),
                    ));
                }
                // `which` with the same URL: its report and its errors.
                if let Some(url) = input.strip_prefix("url=") {
                    let url = url.trim_end();
                    outputs.push(ctl_said(&sb, &["which", url]));
                    outputs.push(ctl_said(&sb, &["which", "--json", url]));
                }
                // The client as git runs it: the `url=` lines reach the daemon as they are.
                for (op, extra) in [
                    ("get", ""),
                    ("store", "password=plain-pw-Stored1\n"),
                    ("erase", ""),
                ] {
                    let out = sb.client_run(&[op], format!("{input}{extra}").as_bytes());
                    outputs.push(said(format!("the client's {op} of\n{input}"), &out));
                }
            }
        }
        outputs.extend(reports(
            &sb,
            &secret.replace(['#', '?', '/', '@', '%'], "_"),
        ));
        assert_no_secret(secret, &outputs);
    }
}

/// A config.toml edited by hand with a password in `urls` or `api_url`, well-formed or
/// not: whatever the parser makes of it, its error, `status`, `which`, git's notice, the
/// daemon log and the support bundle print no password.
#[test]
fn a_password_in_a_url_of_config_toml_is_printed_nowhere() {
    let sb = Sandbox::new();
    add_runtime(&sb, "acme", "github", "https://h.example/");
    for secret in SECRETS {
        let shapes = [
            format!("urls = [\"https://user:{secret}@h.example/\"]\n"),
            format!("urls = [\"https://user:{secret}@h.example:bad/org/\"]\n"),
            format!("urls = [\"htps://user:{secret}@h.example/\"]\n"),
            format!("urls = [\"https://h.example/\"]\napi_url = \"https://user:{secret}@api.h.example/\"\n"),
            format!("urls = [\"https://h.example/\"]\napi_url = \"https://user:{secret}@*.h.example/\"\n"),
            format!("urls = [\"https://h.example/\"]\napi_url = \"https://user:{secret}@api.h.example:bad/\"\n"),
        ];
        for (i, shape) in shapes.iter().enumerate() {
            fs::write(
                config_path(&sb),
                format!("[[runtime]]\nname = \"acme\"\nprovider = \"github\"\n{shape}"),
            )
            .unwrap();
            let mut outputs = vec![
                ctl_said(&sb, &["daemon", "reload"]),
                ctl_said(&sb, &["which", "https://h.example/org/repo.git"]),
                ctl_said(&sb, &["which", "--json", "https://h.example/org/repo.git"]),
                ctl_said(&sb, &["runtime", "list", "--json"]),
            ];
            let out = sb.credential("fill", "protocol=https\nhost=h.example\npath=org/r.git\n");
            outputs.push(said("git credential fill", &out));
            let tag = format!("{}-{i}", secret.replace(['#', '?', '/', '@', '%'], "_"));
            outputs.extend(reports(&sb, &tag));
            assert_no_secret(secret, &outputs);
        }
    }
}

/// `helperctl runtime add` refuses a malformed URL holding a password without printing
/// the password, whatever is wrong with the URL.
#[test]
fn runtime_add_refuses_a_malformed_url_without_printing_its_password() {
    let sb = Sandbox::new();
    for secret in SECRETS {
        let bad = [
            format!("https://user:{secret}@h.example:bad/"),
            format!("htps://user:{secret}@h.example/"),
            format!("https://user:{secret}@/org/"),
            format!("https://user:{secret}@h.example/%zz"),
            format!("https://user:{secret}@h%zz.example/"),
            format!("https://user:{secret}@h ex.example/"),
            format!("user:{secret}@h.example/org/"),
        ];
        let mut outputs = Vec::new();
        for url in &bad {
            for flag in ["--url", "--api-url"] {
                let base = match flag {
                    "--url" => vec![],
                    _ => vec!["--url", "https://ok.example/"],
                };
                let mut args = vec!["runtime", "add", "x", "--provider", "github"];
                args.extend(base);
                args.extend([flag, url.as_str()]);
                let out = ctl(&sb, &args);
                outputs.push(said(format!("helperctl runtime add {flag} {url}"), &out));
                if out.status.success() {
                    ctl_ok(&sb, &["runtime", "remove", "x"]);
                }
            }
        }
        outputs.push(ctl_said(&sb, &["status"]));
        outputs.push(("the daemon log".into(), sb.log()));
        assert_no_secret(secret, &outputs);
    }
}
