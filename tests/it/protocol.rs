//! Conformance with git's credential-helper protocol (DESIGN.md §5), driven through the
//! real `git credential fill|approve|reject` with `credential.helper` set to the client,
//! so every assertion is about what git itself ends up with.

use std::process::Output;
use std::time::Duration;

use crate::util::{self, assert_ok, stderr, stdout, value, Sandbox};

/// A credential for `https://example.com`.
const ALICE: &str = "protocol=https\nhost=example.com\nusername=alice\npassword=pw-alice\n";

/// git's request for `https://example.com`, with no username.
const EXAMPLE: &str = "protocol=https\nhost=example.com\n";

/// The line the client's stderr would start with if it had something to complain about.
const CLIENT_COMPLAINT: &str = "helperd:";

/// `git credential approve`, which must succeed.
#[track_caller]
fn approve(sb: &Sandbox, input: &str) {
    approve_with(sb, &[], input);
}

#[track_caller]
fn approve_with(sb: &Sandbox, config: &[&str], input: &str) {
    let out = sb.credential_with(config, "approve", input);
    assert_ok(&out);
    assert_no_complaint(&out, "git credential approve");
}

/// `git credential reject`, which must succeed.
#[track_caller]
fn reject(sb: &Sandbox, input: &str) {
    let out = sb.credential("reject", input);
    assert_ok(&out);
    assert_no_complaint(&out, "git credential reject");
}

/// `git credential fill`: git's full answer on stdout when a helper served it.
#[track_caller]
fn fill(sb: &Sandbox, input: &str) -> Output {
    fill_with(sb, &[], input)
}

#[track_caller]
fn fill_with(sb: &Sandbox, config: &[&str], input: &str) -> Output {
    let out = sb.credential_with(config, "fill", input);
    assert_no_complaint(&out, "git credential fill");
    out
}

/// The helper served `input`: git prints the whole credential; returns git's stdout.
#[track_caller]
fn assert_served(sb: &Sandbox, config: &[&str], input: &str, password: &str) -> String {
    let out = fill_with(sb, config, input);
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(
        value(&text, "password").as_deref(),
        Some(password),
        "git credential fill served the wrong password for\n{input}\ngit printed:\n{text}"
    );
    text
}

/// The helper answered nothing for `input`: git falls back to its prompt, which the
/// sandbox disables (GIT_TERMINAL_PROMPT=0), so `fill` fails saying so.
#[track_caller]
fn assert_missed(sb: &Sandbox, config: &[&str], input: &str) {
    let out = fill_with(sb, config, input);
    assert!(
        !out.status.success(),
        "expected no credential for\n{input}\nbut git printed:\n{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("terminal prompts disabled"),
        "git failed for another reason than a miss:\n{}",
        stderr(&out)
    );
}

/// The client wrote nothing on stderr: a served request, a store or a miss are silent.
#[track_caller]
fn assert_no_complaint(out: &Output, what: &str) {
    assert!(
        !stderr(out).contains(CLIENT_COMPLAINT),
        "{what}: the helper complained:\n{}",
        stderr(out)
    );
}

/// The client printed nothing at all and exited 0 (git's rule for a miss).
#[track_caller]
fn assert_silent_success(out: &Output, what: &str) {
    assert_ok(out);
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{what}: expected no output at all\nstdout: {:?}\nstderr: {:?}",
        stdout(out),
        stderr(out)
    );
}

/// A `wwwauth[]` line of exactly `len` bytes (newline excluded) ending in `tail`.
fn wwwauth_line(len: usize, tail: &str) -> String {
    let key = "wwwauth[]=";
    let pad = len
        .checked_sub(key.len() + tail.len())
        .expect("the line is long enough for its key and tail");
    format!("{key}{}{tail}", "A".repeat(pad))
}

#[test]
fn store_then_get_returns_the_credential() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    let text = assert_served(&sb, &[], EXAMPLE, "pw-alice");
    assert_eq!(value(&text, "protocol").as_deref(), Some("https"));
    assert_eq!(value(&text, "host").as_deref(), Some("example.com"));
    assert_eq!(value(&text, "username").as_deref(), Some("alice"));
}

#[test]
fn get_with_the_stored_username_returns_the_credential() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    assert_served(
        &sb,
        &[],
        "protocol=https\nhost=example.com\nusername=alice\n",
        "pw-alice",
    );
}

#[test]
fn another_protocol_gets_nothing() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    assert_missed(&sb, &[], "protocol=http\nhost=example.com\n");
}

#[test]
fn another_host_gets_nothing() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    assert_missed(&sb, &[], "protocol=https\nhost=other.example.com\n");
    assert_missed(&sb, &[], "protocol=https\nhost=example.com:8443\n");
}

#[test]
fn the_path_must_match_when_git_sends_one() {
    let sb = Sandbox::new();
    let use_path = ["credential.useHttpPath=true"];
    approve_with(
        &sb,
        &use_path,
        "url=https://example.com/org/a.git\nusername=alice\npassword=pw-a\n",
    );
    let text = assert_served(
        &sb,
        &use_path,
        "url=https://example.com/org/a.git\n",
        "pw-a",
    );
    assert_eq!(value(&text, "path").as_deref(), Some("org/a.git"));
    assert_missed(&sb, &use_path, "url=https://example.com/org/b.git\n");
}

#[test]
fn credentials_for_two_paths_on_one_host_are_kept_apart() {
    let sb = Sandbox::new();
    let use_path = ["credential.useHttpPath=true"];
    approve_with(
        &sb,
        &use_path,
        "url=https://example.com/a.git\nusername=alice\npassword=pw-a\n",
    );
    approve_with(
        &sb,
        &use_path,
        "url=https://example.com/b.git\nusername=bob\npassword=pw-b\n",
    );
    assert_served(&sb, &use_path, "url=https://example.com/a.git\n", "pw-a");
    assert_served(&sb, &use_path, "url=https://example.com/b.git\n", "pw-b");
}

#[test]
fn a_different_username_gets_nothing() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    assert_missed(&sb, &[], "protocol=https\nhost=example.com\nusername=bob\n");
}

#[test]
fn store_overwrites_the_previous_password() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    approve(
        &sb,
        "protocol=https\nhost=example.com\nusername=alice\npassword=pw-new\n",
    );
    assert_served(&sb, &[], EXAMPLE, "pw-new");
}

#[test]
fn erase_removes_every_matching_entry() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    approve(
        &sb,
        "protocol=https\nhost=example.com\nusername=bob\npassword=pw-bob\n",
    );
    approve(
        &sb,
        "protocol=https\nhost=other.example\nusername=carol\npassword=pw-carol\n",
    );
    reject(&sb, EXAMPLE);
    assert_missed(
        &sb,
        &[],
        "protocol=https\nhost=example.com\nusername=alice\n",
    );
    assert_missed(&sb, &[], "protocol=https\nhost=example.com\nusername=bob\n");
    assert_missed(&sb, &[], EXAMPLE);
    // The pattern named a host: other hosts keep their credentials.
    assert_served(&sb, &[], "protocol=https\nhost=other.example\n", "pw-carol");
}

#[test]
fn erase_with_the_stored_password_removes_the_entry() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    reject(&sb, ALICE);
    assert_missed(&sb, &[], EXAMPLE);
}

#[test]
fn erase_keeps_an_entry_whose_password_differs() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    reject(
        &sb,
        "protocol=https\nhost=example.com\nusername=alice\npassword=not-pw-alice\n",
    );
    assert_served(&sb, &[], EXAMPLE, "pw-alice");
}

#[test]
fn an_empty_username_is_a_username_of_its_own() {
    let sb = Sandbox::new();
    approve(
        &sb,
        "protocol=https\nhost=example.com\nusername=\npassword=pw-empty\n",
    );
    let text = assert_served(
        &sb,
        &[],
        "protocol=https\nhost=example.com\nusername=\n",
        "pw-empty",
    );
    assert_eq!(value(&text, "username").as_deref(), Some(""));
    // Absent matches anything, a named user does not match the empty one.
    assert_served(&sb, &[], EXAMPLE, "pw-empty");
    assert_missed(
        &sb,
        &[],
        "protocol=https\nhost=example.com\nusername=alice\n",
    );
}

#[test]
fn an_empty_username_does_not_match_a_named_one() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    assert_missed(&sb, &[], "protocol=https\nhost=example.com\nusername=\n");
}

#[test]
fn password_expiry_utc_round_trips() {
    let sb = Sandbox::new();
    // Far in the future: git itself drops a password whose expiry has passed.
    approve(&sb, &format!("{ALICE}password_expiry_utc=4000000000\n"));
    let text = assert_served(&sb, &[], EXAMPLE, "pw-alice");
    assert_eq!(
        value(&text, "password_expiry_utc").as_deref(),
        Some("4000000000"),
        "git printed:\n{text}"
    );
}

#[test]
fn oauth_refresh_token_round_trips() {
    let sb = Sandbox::new();
    approve(&sb, &format!("{ALICE}oauth_refresh_token=rt-1234\n"));
    let text = assert_served(&sb, &[], EXAMPLE, "pw-alice");
    assert_eq!(
        value(&text, "oauth_refresh_token").as_deref(),
        Some("rt-1234"),
        "git printed:\n{text}"
    );
}

#[test]
fn an_ephemeral_credential_from_git_is_never_stored() {
    let sb = Sandbox::new();
    // git forwards `ephemeral` to helpers only along with `capability[]=authtype`.
    approve(&sb, &format!("capability[]=authtype\n{ALICE}ephemeral=1\n"));
    assert_missed(&sb, &[], EXAMPLE);
}

#[test]
fn an_ephemeral_credential_sent_to_the_client_is_never_stored() {
    let sb = Sandbox::new();
    let out = sb.client_run(&["store"], format!("{ALICE}ephemeral=1\n").as_bytes());
    assert_silent_success(&out, "store of an ephemeral credential");
    let out = sb.client_run(&["get"], EXAMPLE.as_bytes());
    assert_silent_success(&out, "get after an ephemeral store");
    assert_missed(&sb, &[], EXAMPLE);
}

#[test]
fn an_ephemeral_store_leaves_the_stored_credential_alone() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    approve(
        &sb,
        "capability[]=authtype\nprotocol=https\nhost=example.com\nusername=alice\npassword=pw-once\nephemeral=1\n",
    );
    assert_served(&sb, &[], EXAMPLE, "pw-alice");
}

#[test]
fn authtype_and_credential_are_returned_to_a_request_with_the_capability() {
    let sb = Sandbox::new();
    approve(
        &sb,
        "capability[]=authtype\nprotocol=https\nhost=example.com\nauthtype=Bearer\ncredential=tok-5678\n",
    );
    let out = fill(&sb, &format!("capability[]=authtype\n{EXAMPLE}"));
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(
        value(&text, "authtype").as_deref(),
        Some("Bearer"),
        "{text}"
    );
    assert_eq!(
        value(&text, "credential").as_deref(),
        Some("tok-5678"),
        "{text}"
    );
}

#[test]
fn authtype_and_credential_are_withheld_from_a_request_without_the_capability() {
    let sb = Sandbox::new();
    approve(
        &sb,
        "capability[]=authtype\nprotocol=https\nhost=example.com\nauthtype=Bearer\ncredential=tok-5678\n",
    );
    assert_missed(&sb, &[], EXAMPLE);
    // Asked directly, the client prints nothing either.
    let out = sb.client_run(&["get"], EXAMPLE.as_bytes());
    assert_silent_success(&out, "get without the authtype capability");
}

#[test]
fn a_long_wwwauth_cannot_smuggle_another_host() {
    let sb = Sandbox::new();
    approve(
        &sb,
        "protocol=https\nhost=good.example\nusername=alice\npassword=pw-good\n",
    );
    approve(
        &sb,
        "protocol=https\nhost=evil.example\nusername=mallory\npassword=pw-evil\n",
    );
    // The longest line accepted (64 KiB), and lines ending right around 1, 4 and 64 KiB
    // boundaries, where a fixed-size line buffer would split them.
    for len in [1024, 4096, 64 * 1024 - 1, 64 * 1024] {
        let line = wwwauth_line(len, "host=evil.example");
        let input = format!("protocol=https\nhost=good.example\n{line}\n");
        let text = assert_served(&sb, &[], &input, "pw-good");
        assert_eq!(value(&text, "host").as_deref(), Some("good.example"));
        assert_eq!(value(&text, "username").as_deref(), Some("alice"));
    }
}

#[test]
fn a_long_wwwauth_cannot_smuggle_a_password_or_username() {
    let sb = Sandbox::new();
    approve(
        &sb,
        "protocol=https\nhost=good.example\nusername=alice\npassword=pw-good\n",
    );
    // A literal backslash-n is just two characters of the value.
    let line = wwwauth_line(64 * 1024, "\\npassword=pw-smuggled\\nusername=mallory");
    let input = format!("protocol=https\nhost=good.example\n{line}\n");
    let text = assert_served(&sb, &[], &input, "pw-good");
    assert_eq!(value(&text, "username").as_deref(), Some("alice"));
    assert!(!text.contains("pw-smuggled"), "{text}");
}

#[test]
fn a_line_over_64_kib_is_refused_with_one_clear_error() {
    let sb = Sandbox::new();
    approve(
        &sb,
        "protocol=https\nhost=evil.example\nusername=mallory\npassword=pw-evil\n",
    );
    let line = wwwauth_line(64 * 1024 + 1, "host=evil.example");
    let input = format!("protocol=https\nhost=good.example\n{line}\n");
    let out = sb.client_run(&["get"], input.as_bytes());
    assert_ok(&out);
    assert!(
        out.stdout.is_empty(),
        "an over-long line must not be answered: {:?}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert_eq!(
        err.lines().count(),
        1,
        "expected one line on stderr: {err:?}"
    );
    assert!(
        err.starts_with(CLIENT_COMPLAINT) && err.contains("longer than"),
        "the error should say the line is too long: {err:?}"
    );
    assert!(!err.contains("AAAA"), "the error quotes the value: {err:?}");
}

#[test]
fn a_miss_prints_nothing_at_all_and_exits_0() {
    let sb = Sandbox::new();
    // Once while the client starts the daemon, once with it running.
    for round in ["daemon not running", "daemon running"] {
        let out = sb.client_run(&["get"], b"protocol=https\nhost=nothing.example\n");
        assert_silent_success(&out, &format!("get on a miss ({round})"));
    }
    assert!(sb.daemon_pid().is_some(), "the client started no daemon");
}

#[test]
fn a_timeout_makes_a_stored_credential_expire() {
    let sb = Sandbox::new();
    sb.configure_git_helper(&format!("{} --timeout=2", util::client_bin().display()));
    approve(&sb, ALICE);
    assert_served(&sb, &[], EXAMPLE, "pw-alice");
    sb.advance_clock(3);
    assert_missed(&sb, &[], EXAMPLE);
}

#[test]
fn credentials_survive_a_daemon_restart() {
    let sb = Sandbox::new();
    approve(&sb, ALICE);
    let first = sb.daemon_pid().expect("the client started a daemon");
    let out = sb
        .ctl()
        .args(["daemon", "stop"])
        .output()
        .expect("helperctl runs");
    assert_ok(&out);
    assert!(
        util::wait_until(Duration::from_secs(5), || !util::process_alive(first)),
        "the daemon (pid {first}) did not exit after `helperctl daemon stop`"
    );
    // The client starts a new daemon, which reads the store of record.
    assert_served(&sb, &[], EXAMPLE, "pw-alice");
    let second = sb.daemon_pid().expect("the client started a new daemon");
    assert_ne!(first, second, "the same daemon answered");
}

#[test]
fn the_first_blank_line_ends_the_request() {
    let sb = Sandbox::new();
    approve(
        &sb,
        "protocol=https\nhost=good.example\nusername=alice\npassword=pw-good\n",
    );
    approve(
        &sb,
        "protocol=https\nhost=evil.example\nusername=mallory\npassword=pw-evil\n",
    );
    let out = sb.client_run(
        &["get"],
        b"protocol=https\nhost=good.example\n\nhost=evil.example\n",
    );
    assert_ok(&out);
    assert_eq!(
        value(&stdout(&out), "password").as_deref(),
        Some("pw-good"),
        "what came after the blank line was read:\n{}",
        stdout(&out)
    );
}

#[test]
fn unknown_keys_in_the_request_are_ignored() {
    let sb = Sandbox::new();
    let out = sb.client_run(
        &["store"],
        format!("future_key=1\n{ALICE}another[]=x\n").as_bytes(),
    );
    assert_silent_success(&out, "store with unknown keys");
    let out = sb.client_run(
        &["get"],
        format!("future_key=1\n{EXAMPLE}another[]=x\n").as_bytes(),
    );
    assert_ok(&out);
    assert_no_complaint(&out, "get with unknown keys");
    assert_eq!(
        value(&stdout(&out), "password").as_deref(),
        Some("pw-alice"),
        "{}",
        stdout(&out)
    );
    // Unknown keys never come back either.
    assert!(!stdout(&out).contains("future_key"), "{}", stdout(&out));
}

#[test]
fn an_unknown_action_exits_0_silently() {
    let sb = Sandbox::new();
    let out = sb.client_run(&["frobnicate"], ALICE.as_bytes());
    assert_silent_success(&out, "an unknown action");
    assert!(
        sb.daemon_pid().is_none(),
        "an unknown action should not even start the daemon"
    );
}
