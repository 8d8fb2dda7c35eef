//! `helperctl status` and `helperctl which`: what the daemon knows, as a table or as
//! stable JSON. Never a secret: the daemon does not send any.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::bail;
use helperd_wire::client::ClientError;
use helperd_wire::paths::Paths;
use helperd_wire::wire::{
    Reply, Request, Response, RuntimeStatus, StatusReport, TokenStatus, WhichReport,
};

use super::{send, send_starting};
use crate::timefmt::{ago, countdown, format_date};

fn now() -> u64 {
    crate::timefmt::unix_now()
}

/// The daemon's status, starting it when needed.
pub fn fetch(paths: &Paths) -> anyhow::Result<StatusReport> {
    match send_starting(paths, Request::Status)?.reply {
        Reply::Status { status } => Ok(*status),
        Reply::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

/// Tokens that `--check DAYS` reports: expired, rejected, or expiring within `days`.
pub fn check_findings(report: &StatusReport, days: u32, now: u64) -> Vec<String> {
    let horizon = now.saturating_add(u64::from(days) * 86_400);
    report
        .runtimes
        .iter()
        .filter_map(|rt| {
            let t = rt.token.as_ref()?;
            let name = t.name.as_deref().unwrap_or("(unnamed)");
            match (t.state.as_str(), t.expires) {
                ("rejected", _) => Some(format!(
                    "{}: token {name} was rejected by the host",
                    rt.name
                )),
                ("expired", Some(e)) => Some(format!(
                    "{}: token {name} expired on {}",
                    rt.name,
                    format_date(e)
                )),
                (_, Some(e)) if e <= horizon => Some(format!(
                    "{}: token {name} expires on {} ({})",
                    rt.name,
                    format_date(e),
                    countdown(e, now)
                )),
                _ => None,
            }
        })
        .collect()
}

pub fn status(paths: &Paths, json: bool, check: Option<i64>) -> anyhow::Result<u8> {
    if let Some(days) = check {
        let report = fetch(paths)?;
        let days = u32::try_from(days).unwrap_or(report.config.warn_days);
        let findings = check_findings(&report, days, now());
        if json {
            let value = serde_json::json!({ "days": days, "findings": findings });
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else if findings.is_empty() {
            println!("all tokens valid for at least {days} more days");
        } else {
            for f in &findings {
                println!("{f}");
            }
        }
        return Ok(if findings.is_empty() { 0 } else { 3 });
    }
    let report = match send(paths, Request::Status) {
        Err(ClientError::NotRunning(_)) => None,
        Err(e) => return Err(e.into()),
        Ok(Response {
            reply: Reply::Status { status },
            ..
        }) => Some(status),
        Ok(Response {
            reply: Reply::Error { message, .. },
            ..
        }) => bail!("{message}"),
        Ok(other) => bail!("unexpected answer from the daemon: {:?}", other.reply),
    };
    if json {
        let value = serde_json::json!({
            "running": report.is_some(),
            "socket": paths.socket.display().to_string(),
            "daemon": report,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!(
            "{}",
            render_status(&paths.socket, report.as_deref(), now(), colour)
        );
    }
    Ok(0)
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The human form of `status`.
pub fn render_status(
    socket: &Path,
    report: Option<&StatusReport>,
    now: u64,
    colour: bool,
) -> String {
    let mut out = String::new();
    let mut row = |k: &str, v: String| out.push_str(&format!("{k:<18}{v}\n"));
    let Some(r) = report else {
        row(
            "daemon",
            "not running (it starts with the next git request, or run `helperctl daemon start`)"
                .into(),
        );
        row("socket", socket.display().to_string());
        return out;
    };
    row(
        "daemon",
        format!(
            "running (pid {}, version {}, protocol {}, up {})",
            r.pid,
            r.version,
            r.protocol,
            human_duration(r.uptime_secs)
        ),
    );
    row("socket", r.socket.clone());
    row(
        "store",
        format!("{} ({})", r.store.kind, r.store.protection),
    );
    if let Some(location) = &r.store.location {
        row("store path", location.clone());
    }
    let state = match &r.store.problem {
        Some(p) => format!("{}: {p}", r.store.state),
        None => r.store.state.clone(),
    };
    row("store state", state);
    if !r.store.pending_writes.is_empty() {
        row(
            "pending writes",
            format!(
                "{} (lost if the daemon stops before the store answers): {}",
                r.store.pending_writes.len(),
                r.store.pending_writes.join("; ")
            ),
        );
    }
    if let Some(n) = r.store.plain_credentials {
        row("plain credentials", n.to_string());
    }
    let config = match &r.config.error {
        Some(e) => format!(
            "{} — BROKEN, last good configuration in force: {e}",
            r.config.path
        ),
        None => format!("{} ({} runtimes)", r.config.path, r.runtimes.len()),
    };
    row("config", config);
    match &r.policy {
        Some(p) => {
            let head = match &p.error {
                Some(e) => format!("{} — REFUSED: {e}", p.path),
                None => p.path.clone(),
            };
            row("policy", head);
            for rule in &p.rules {
                row("", rule.clone());
            }
        }
        None => row("policy", "none".into()),
    }
    if let Some(sup) = &r.support {
        row(
            "support access",
            format!(
                "{} (uid {}) until {} via {}",
                sup.user,
                sup.uid,
                crate::timefmt::format_datetime(sup.until),
                sup.socket
            ),
        );
    }
    for exposed in &r.exposed_folders {
        row(
            "exposed folder",
            format!("{exposed} may read it; close it to them (your credentials live there)"),
        );
    }
    if r.log_lines_lost > 0 {
        row(
            "daemon log",
            format!(
                "{} lines could not be written (is the disk full?); serving goes on",
                r.log_lines_lost
            ),
        );
    }
    if let Some(f) = &r.forward {
        let state = match (&f.closed_because, f.open) {
            (_, true) => format!(
                "open at {}, {} forwarded requests served",
                f.socket, f.served
            ),
            (Some(why), false) => format!("closed: {why}"),
            (None, false) => "closed".into(),
        };
        row("forward", state);
    }
    if let Some(b) = &r.openbao {
        row("openbao", openbao_line(b, now));
        for bad in &b.invalid {
            row("", format!("! not a runtime: {bad}"));
        }
    }
    if !r.runtimes.is_empty() {
        out.push('\n');
        out.push_str(&runtime_table(&r.runtimes, now, colour));
    }
    out
}

fn token_cells(t: Option<&TokenStatus>, now: u64) -> [String; 5] {
    let Some(t) = t else {
        return [
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "no token".into(),
        ];
    };
    let mut name = t.name.clone().unwrap_or_else(|| "(unnamed)".into());
    if !t.shared_with.is_empty() {
        name.push_str(&format!(" (shared with {})", t.shared_with.join(", ")));
    }
    let scopes = if t.scopes.is_empty() {
        "-".into()
    } else {
        t.scopes.join(",")
    };
    let expires = match t.expires {
        Some(e) => format!("{} ({})", format_date(e), countdown(e, now)),
        None => "never".into(),
    };
    let used = t
        .last_used
        .map(|u| ago(u, now))
        .unwrap_or_else(|| "never".into());
    [name, scopes, expires, used, t.state.clone()]
}

/// "checked with the host 2 hours ago: classic PAT of octocat" (or nothing if never).
fn host_facts(t: &TokenStatus, now: u64) -> Option<String> {
    let when = ago(t.checked_at?, now);
    let mut facts = Vec::new();
    if let Some(kind) = &t.kind {
        facts.push(kind.clone());
    }
    if let Some(login) = &t.login {
        facts.push(format!("of {login}"));
    }
    if t.oauth {
        facts.push("refreshed by helperd".into());
    }
    Some(if facts.is_empty() {
        format!("checked with the host {when}")
    } else {
        format!("checked with the host {when}: {}", facts.join(" "))
    })
}

fn paint(text: &str, state: &str, colour: bool) -> String {
    let code = match state {
        "expiring" => "33",
        "expired" | "rejected" => "31",
        _ => return text.to_string(),
    };
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The `openbao` row: where team runtimes come from, and whether OpenBao answers.
fn openbao_line(b: &helperd_wire::wire::OpenBaoStatus, now: u64) -> String {
    let state = match (&b.error, b.read_at) {
        (Some(e), _) => {
            let cache = match b.cache_until {
                Some(t) if t > now => format!(
                    "secrets read earlier served until {}",
                    crate::timefmt::format_datetime(t)
                ),
                _ => "nothing served from it".into(),
            };
            format!("FAILING: {e}; {cache}")
        }
        (None, Some(t)) => format!("read {}", crate::timefmt::ago(t, now)),
        (None, None) => "not read yet".into(),
    };
    let lease = b
        .lease_ends_at
        .map(|t| format!(", lease ends {}", crate::timefmt::format_datetime(t)))
        .unwrap_or_default();
    format!(
        "{} via {} ({} login: {} logins, {} renewals{lease}): {state}",
        b.source,
        b.addresses.join(", "),
        b.auth,
        b.logins,
        b.renewals
    )
}

/// One row per runtime (continuation rows for further URLs), columns padded to fit.
fn runtime_table(runtimes: &[RuntimeStatus], now: u64, colour: bool) -> String {
    let header = [
        "RUNTIME",
        "PROVIDER",
        "URL PREFIXES",
        "USERNAME",
        "TOKEN",
        "SCOPES",
        "EXPIRES",
        "LAST USED",
        "STATE",
    ];
    let mut rows: Vec<([String; 9], String)> = Vec::new();
    for rt in runtimes {
        let [token, scopes, expires, used, state] = token_cells(rt.token.as_ref(), now);
        let first_url = rt.urls.first().cloned().unwrap_or_default();
        // A team runtime is marked where the eye looks first: its name.
        let name = match &rt.team {
            Some(_) => format!("{} (team)", rt.name),
            None => rt.name.clone(),
        };
        rows.push((
            [
                name,
                rt.provider.clone(),
                first_url,
                rt.username.clone().unwrap_or_else(|| "(needed)".into()),
                token,
                scopes,
                expires,
                used,
                state.clone(),
            ],
            state,
        ));
        for url in rt.urls.iter().skip(1) {
            let mut cells: [String; 9] = Default::default();
            cells[2] = url.clone();
            rows.push((cells, String::new()));
        }
        if let Some(team) = &rt.team {
            let mut cells: [String; 9] = Default::default();
            cells[2] = format!(
                "from OpenBao {} (KV v2, version {})",
                team.path, team.version
            );
            rows.push((cells, String::new()));
        }
        if let Some(app) = &rt.app {
            let mut cells: [String; 9] = Default::default();
            cells[2] = app_line(app, now);
            rows.push((cells, String::new()));
            if let Some(e) = &app.error {
                let mut cells: [String; 9] = Default::default();
                cells[2] = format!("! last mint failed: {e}");
                rows.push((cells, String::new()));
            }
        }
        if let Some(rotation) = &rt.rotation {
            let mut cells: [String; 9] = Default::default();
            cells[2] = rotation_line(rotation, now);
            let warn = matches!(rotation.state.as_str(), "failed" | "interrupted" | "lost");
            if warn {
                cells[2] = format!("! {}", cells[2]);
            }
            rows.push((cells, String::new()));
        }
        let token_notes = rt
            .token
            .iter()
            .flat_map(|t| {
                [
                    host_facts(t, now),
                    t.stale.clone(),
                    t.policy_violation.clone().map(|v| format!("policy: {v}")),
                ]
            })
            .flatten()
            .chain(rt.token.iter().flat_map(|t| t.notes.clone()));
        for note in rt.problem.clone().into_iter().chain(token_notes) {
            let mut cells: [String; 9] = Default::default();
            cells[2] = format!("! {note}");
            rows.push((cells, String::new()));
        }
    }
    let mut widths = header.map(str::len);
    for (cells, _) in &rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            // Problem lines run long; they do not widen the URL column.
            if !c.starts_with("! ") {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        l.trim_end().to_string()
    };
    let mut out = line(&header.map(String::from)) + "\n";
    for (cells, state) in rows {
        out.push_str(&paint(&line(&cells), &state, colour));
        out.push('\n');
    }
    out
}

pub fn which(paths: &Paths, url: &str, json: bool) -> anyhow::Result<u8> {
    let report = match send_starting(
        paths,
        Request::Which {
            url: url.to_string(),
        },
    )?
    .reply
    {
        Reply::Which { which } => which,
        Reply::Error { message, .. } => bail!("{message}"),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_which(&report, now()));
    }
    Ok(0)
}

pub fn render_which(r: &WhichReport, now: u64) -> String {
    let mut out = match &r.runtime {
        Some(rt) => format!("{} -> runtime {rt}\n  because {}\n", r.url, r.reason),
        None => format!("{} -> no runtime\n  because {}\n", r.url, r.reason),
    };
    if let Some(fix) = &r.fix {
        out.push_str(&format!("  fix: {fix}\n  (or run `helperctl install`)\n"));
    }
    if r.runtime.is_some() {
        match &r.token {
            Some(t) => {
                let [name, _, expires, _, state] = token_cells(Some(t), now);
                out.push_str(&format!("  token {name}, expires {expires}, {state}\n"));
            }
            None => out.push_str("  it has no token yet: run `helperctl token set`\n"),
        }
    }
    if !r.candidates.is_empty() {
        out.push_str("  considered:\n");
        let w = r
            .candidates
            .iter()
            .map(|c| c.runtime.len())
            .max()
            .unwrap_or(0);
        let pw = r
            .candidates
            .iter()
            .map(|c| c.prefix.len())
            .max()
            .unwrap_or(0);
        for c in &r.candidates {
            out.push_str(&format!(
                "    {:<w$}  {:<pw$}  {}\n",
                c.runtime, c.prefix, c.outcome
            ));
        }
    }
    out
}

/// A GitLab runtime's self-rotation line: the window, when it is due, how the last
/// attempt went.
fn rotation_line(r: &helperd_wire::wire::RotationStatus, now: u64) -> String {
    let when = |t: u64| crate::timefmt::format_datetime(t);
    let head = format!("rotates itself {} days before expiry ({})", r.days, r.via);
    let tail = match r.state.as_str() {
        "scheduled" => match r.due_at {
            Some(t) => format!("next rotation {} ({})", when(t), crate::timefmt::countdown(t, now)),
            None => "next rotation unknown".into(),
        },
        "due" => "rotation due: at the next git request or within a minute".into(),
        "in_flight" => "rotating now".into(),
        "failed" => format!(
            "last rotation failed ({} in a row: {}); retried {}; the current token serves meanwhile",
            r.failures,
            r.error.as_deref().unwrap_or("unknown"),
            r.retry_at.map(when).unwrap_or_else(|| "at the next look".into())
        ),
        "interrupted" => format!(
            "a rotation was interrupted; helperd asks the host whether it rotated the token before anything else{}",
            r.error.as_deref().map(|e| format!(" (last try: {e})")).unwrap_or_default()
        ),
        "lost" => "the host rotated the token in an interrupted rotation and the new token was lost: renew it (`helperctl renew`)".into(),
        _ => "no rotation (no token with an expiry that can rotate itself)".into(),
    };
    format!("{head}; {tail}")
}

/// A GitHub App runtime's line: app, installation, the token in memory and the next mint.
fn app_line(app: &helperd_wire::wire::AppStatus, now: u64) -> String {
    let mut parts = vec![format!("GitHub App {}", app.app_id)];
    match (app.installation, app.installation_from.as_deref()) {
        (Some(id), Some(from)) => parts.push(format!("installation {id} ({from})")),
        (Some(id), None) => parts.push(format!("installation {id}")),
        (None, _) => parts.push("installation looked up at the first mint".into()),
    }
    if !app.permissions.is_empty() {
        parts.push(format!("permissions {}", app.permissions.join(",")));
    }
    match app.token_expires {
        Some(t) => parts.push(format!(
            "token expires {} ({})",
            crate::timefmt::format_datetime(t),
            crate::timefmt::countdown(t, now)
        )),
        None => parts.push("no token in memory".into()),
    }
    match app.next_mint {
        Some(t) if t > now => {
            parts.push(format!("next mint {}", crate::timefmt::format_datetime(t)))
        }
        _ => parts.push("next mint at the next git request".into()),
    }
    parts.join("; ")
}
