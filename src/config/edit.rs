//! Edits of `config.toml` made by `helperctl runtime add|remove`, keeping the user's
//! comments and layout: the file is the user's, helperd only adds or takes out one table.
//!
//! Every edit is validated by parsing the result with [`Config::parse`], so an edit can
//! never produce a file the daemon would refuse; the caller writes the new text only on
//! success. Pure: text in, text out.

use std::path::Path;

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

use super::{AuthScheme, Config, ConfigError};
use crate::provider::Provider;

/// A runtime to add, as `helperctl runtime add` received it (not yet validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRuntime {
    /// Runtime name; must not be taken by another runtime in the file.
    pub name: String,
    /// The forge (`--provider`).
    pub provider: Provider,
    /// URL prefixes as typed; canonicalised and checked by the validating parse.
    pub urls: Vec<String>,
    /// Username git should send; `None`: the provider's convention.
    pub username: Option<String>,
    /// The provider's API, when not its default for the host.
    pub api_url: Option<String>,
    /// How git sends the token (`--auth`): Basic, the default, or Bearer.
    pub auth: AuthScheme,
    /// Usable from remote machines (`forward = true`, DESIGN.md §11).
    pub forward: bool,
    /// The Atlassian account email (Bitbucket Cloud's API checks tokens with it).
    pub email: Option<String>,
    /// A GitHub App runtime's app (`app_id`, `app_client_id`, `installation_id`,
    /// `permissions`).
    pub app: Option<crate::config::GitHubApp>,
    /// GitLab: rotate the token in its last N days (`rotate_days`).
    pub rotate_days: Option<u32>,
    /// GitLab: the token's kind for its self-rotate endpoint (`rotate_via`); `None`:
    /// personal, the default, not written.
    pub rotate_via: Option<crate::config::RotateVia>,
}

/// Returns the new file text with a `[[runtime]]` table appended.
///
/// The original text is kept byte for byte: the table is appended after it (after a blank
/// line), not rendered through the document, so even a trailing comment stays where it
/// was. A file that is already broken is refused with its own error, and every config
/// rule (duplicate name or prefix, malformed URL...) applies to the result.
pub fn add_runtime(text: &str, path: &Path, rt: &NewRuntime) -> Result<String, ConfigError> {
    Config::parse(text, path)?;
    // Keep the file's own line ending (a file edited on Windows may use CRLF).
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + 256);
    out.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push_str(eol);
    }
    // A blank line between the user's last line and the new table, unless there is one.
    if !text.trim().is_empty() && !out.ends_with(&format!("{eol}{eol}")) {
        out.push_str(eol);
    }
    out.push_str(&render_runtime(rt).replace('\n', eol));
    Config::parse(&out, path)?;
    Ok(out)
}

/// The `[[runtime]]` table alone, rendered by `toml_edit` so every value is quoted and
/// escaped as TOML requires.
fn render_runtime(rt: &NewRuntime) -> String {
    let mut table = Table::new();
    table.insert("name", toml_edit::value(rt.name.as_str()));
    table.insert("provider", toml_edit::value(rt.provider.name()));
    let urls: Array = rt.urls.iter().map(String::as_str).collect();
    table.insert("urls", Item::Value(Value::Array(urls)));
    if let Some(username) = &rt.username {
        table.insert("username", toml_edit::value(username.as_str()));
    }
    if let Some(api_url) = &rt.api_url {
        table.insert("api_url", toml_edit::value(api_url.as_str()));
    }
    // Basic is the default: writing it would only add noise to the user's file.
    if rt.auth != AuthScheme::Basic {
        table.insert("auth", toml_edit::value(rt.auth.name()));
    }
    if let Some(email) = &rt.email {
        table.insert("email", toml_edit::value(email.as_str()));
    }
    if rt.forward {
        table.insert("forward", toml_edit::value(true));
    }
    if let Some(app) = &rt.app {
        // TOML integers are i64; GitHub's ids are far below that.
        let int = |n: u64| toml_edit::value(i64::try_from(n).unwrap_or(i64::MAX));
        table.insert("app_id", int(app.app_id));
        if let Some(id) = &app.client_id {
            table.insert("app_client_id", toml_edit::value(id.as_str()));
        }
        if let Some(id) = app.installation_id {
            table.insert("installation_id", int(id));
        }
        if !app.permissions.is_empty() {
            let mut perms = toml_edit::InlineTable::new();
            for (name, level) in &app.permissions {
                perms.insert(name, level.as_str().into());
            }
            table.insert("permissions", Item::Value(Value::InlineTable(perms)));
        }
    }
    if let Some(days) = rt.rotate_days {
        table.insert("rotate_days", toml_edit::value(i64::from(days)));
    }
    if let Some(via) = rt
        .rotate_via
        .as_ref()
        .filter(|v| **v != crate::config::RotateVia::Personal)
    {
        table.insert("rotate_via", toml_edit::value(via.text()));
    }
    let mut tables = ArrayOfTables::new();
    tables.push(table);
    let mut doc = DocumentMut::new();
    doc.insert("runtime", Item::ArrayOfTables(tables));
    doc.to_string()
}

/// Sets (`forward = true`) or removes (`false` is the default) the `forward` key of the
/// runtime `name`; everything else in the file stays as it was (`toml_edit` keeps
/// comments and layout). The result is checked to be the same config with only that
/// runtime's flag changed.
pub fn set_forward(
    text: &str,
    path: &Path,
    name: &str,
    forward: bool,
) -> Result<String, ConfigError> {
    let config = Config::parse(text, path)?;
    let no_runtime = || ConfigError {
        path: path.display().to_string(),
        line: None,
        message: format!("there is no runtime {name:?}"),
    };
    config.runtime(name).ok_or_else(no_runtime)?;
    let mut doc: DocumentMut = text.parse().map_err(|_| no_runtime())?;
    let table = doc
        .get_mut("runtime")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|tables| {
            tables
                .iter_mut()
                .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
        })
        .ok_or_else(no_runtime)?;
    if forward {
        table.insert("forward", toml_edit::value(true));
    } else {
        table.remove("forward");
    }
    let out = doc.to_string();
    let after = Config::parse(&out, path)?;
    let mut expected = config.clone();
    for rt in &mut expected.runtimes {
        if rt.name == name {
            rt.forward = forward;
        }
    }
    let lines_cleared = |c: &Config| {
        let mut c = c.clone();
        c.runtimes.iter_mut().for_each(|r| r.line = 0);
        c
    };
    if lines_cleared(&after) != lines_cleared(&expected) {
        return Err(ConfigError {
            path: path.display().to_string(),
            line: None,
            message: format!(
                "could not change runtime {name:?} without changing more; edit the file by hand"
            ),
        });
    }
    Ok(out)
}

/// Removes the `[[runtime]]` named `name`; an error when there is none.
///
/// The table is cut out of the text by lines, so everything else stays byte for byte:
/// from the comment lines directly above its header (they describe it) to the comment
/// lines directly above the next header (they describe that one), or to the end of the
/// file, where a last comment block set apart by a blank line is kept as a footer. The
/// cut is checked: the result must hold the same config less that runtime, else the
/// table is removed through `toml_edit`'s document instead.
pub fn remove_runtime(text: &str, path: &Path, name: &str) -> Result<String, ConfigError> {
    let config = Config::parse(text, path)?;
    let Some(runtime) = config.runtime(name) else {
        return Err(ConfigError {
            path: path.display().to_string(),
            line: None,
            message: format!("there is no runtime {name:?}"),
        });
    };
    let expected = without_lines(&config, name);
    let cut = cut_table(text, runtime.line);
    if let Ok(after) = Config::parse(&cut, path) {
        if without_lines(&after, name) == expected {
            return Ok(cut);
        }
    }
    let out = remove_through_document(text, name);
    Config::parse(&out, path)?;
    Ok(out)
}

/// The config less the runtime `name`, with line numbers cleared (an edit moves them).
fn without_lines(config: &Config, name: &str) -> Config {
    let mut config = config.clone();
    config.runtimes.retain(|r| r.name != name);
    for runtime in &mut config.runtimes {
        runtime.line = 0;
    }
    config
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `text` without the table whose header is on 1-based line `header_line`.
fn cut_table(text: &str, header_line: usize) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let header = header_line.saturating_sub(1).min(lines.len());
    let next = header_lines(text)
        .into_iter()
        .find(|&l| l > header)
        .unwrap_or(lines.len());
    let mut start = header;
    while start > 0 && is_comment(lines[start - 1]) {
        start -= 1;
    }
    let mut end = next;
    if next < lines.len() {
        while end > header + 1 && is_comment(lines[end - 1]) {
            end -= 1;
        }
    } else {
        end = footer_start(&lines, header + 1);
    }
    if end == lines.len() {
        // Nothing follows: drop the blank lines that separated the table from the rest.
        while start > 0 && is_blank(lines[start - 1]) {
            start -= 1;
        }
    } else if start > 0 && is_blank(lines[start - 1]) && end < lines.len() && is_blank(lines[end]) {
        // One blank line between the neighbours is enough.
        end += 1;
    }
    let mut out = String::with_capacity(text.len());
    out.extend(lines[..start].iter().copied());
    out.extend(lines[end..].iter().copied());
    out
}

/// Where a final comment block (after a blank line, at or after line `from`) begins; the
/// end of the file when there is none.
fn footer_start(lines: &[&str], from: usize) -> usize {
    let mut last = lines.len();
    while last > from && is_blank(lines[last - 1]) {
        last -= 1;
    }
    let mut first = last;
    while first > from && is_comment(lines[first - 1]) {
        first -= 1;
    }
    if first < last && first > from && is_blank(lines[first - 1]) {
        first
    } else {
        lines.len()
    }
}

/// 0-based lines of every table header (`[t]`, `[[t]]`), in order, from the parser's
/// spans: a line-by-line scan could mistake a line inside a multi-line string or array.
fn header_lines(text: &str) -> Vec<usize> {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return Vec::new();
    };
    let mut offsets = Vec::new();
    collect_headers(doc.as_table(), &mut offsets);
    let mut lines: Vec<usize> = offsets
        .into_iter()
        .map(|o| {
            text.as_bytes()[..o.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        })
        .collect();
    lines.sort_unstable();
    lines
}

fn collect_headers(table: &Table, offsets: &mut Vec<usize>) {
    for (_, item) in table.iter() {
        match item {
            Item::Table(t) => {
                offsets.extend(t.span().map(|s| s.start));
                collect_headers(t, offsets);
            }
            Item::ArrayOfTables(tables) => {
                for t in tables.iter() {
                    offsets.extend(t.span().map(|s| s.start));
                    collect_headers(t, offsets);
                }
            }
            _ => {}
        }
    }
}

/// The fallback: `toml_edit` drops the table with the comments it attached to it.
fn remove_through_document(text: &str, name: &str) -> String {
    let mut doc: DocumentMut = text
        .parse()
        .expect("Config::parse accepted this text, so it is valid TOML");
    if let Some(tables) = doc
        .get_mut("runtime")
        .and_then(Item::as_array_of_tables_mut)
    {
        tables.retain(|t| t.get("name").and_then(Item::as_str) != Some(name));
        if tables.is_empty() {
            doc.remove("runtime");
        }
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/c/config.toml";

    const ORIGINAL: &str = r#"# helperd runtimes
# (edited by hand, and by helperctl)

[settings]
warn_days = 14 # two weeks' notice

# Work: both orgs
[[runtime]]
name = "acme"
provider = "github"
urls = [
  "https://github.com/acme/",       # the product
  "https://github.com/acme-infra/", # ops
]
# username = "someone"   (left for later)

# Personal account
[[runtime]]   # everything else on github.com
name = "oss"
provider = "github"
urls = ["https://github.com/"]
username = "octocat"

[[runtime]]
name = "work-gl"
provider = "gitlab"
urls = ["https://gitlab.example.com/"]

# vim: set ft=toml:
"#;

    fn new_runtime(name: &str, url: &str) -> NewRuntime {
        NewRuntime {
            name: name.into(),
            provider: Provider::BitbucketServer,
            urls: vec![url.into()],
            username: None,
            api_url: None,
            auth: AuthScheme::Basic,
            forward: false,
            email: None,
            app: None,
            rotate_days: None,
            rotate_via: None,
        }
    }

    #[test]
    fn set_forward_changes_only_that_runtime_and_keeps_comments() {
        let text = "# mine\n[[runtime]]\nname = \"a\" # the first\nprovider = \"github\"\nurls = [\"https://github.com/a/\"]\n\n# second\n[[runtime]]\nname = \"b\"\nprovider = \"github\"\nurls = [\"https://github.com/b/\"]\n";
        let on = set_forward(text, Path::new(PATH), "b", true).unwrap();
        assert!(
            on.contains("# mine") && on.contains("# the first") && on.contains("# second"),
            "{on}"
        );
        let config = Config::parse(&on, Path::new(PATH)).unwrap();
        assert!(config.runtime("b").unwrap().forward);
        assert!(!config.runtime("a").unwrap().forward);
        let off = set_forward(&on, Path::new(PATH), "b", false).unwrap();
        assert_eq!(
            off, text,
            "turning it off again restores the file byte for byte"
        );
        let e = set_forward(text, Path::new(PATH), "nosuch", true).unwrap_err();
        assert!(e.message.contains("no runtime \"nosuch\""), "{e}");
        let added = add(
            text,
            &NewRuntime {
                forward: true,
                ..new_runtime("c", "https://c.example/")
            },
        )
        .unwrap();
        assert!(
            Config::parse(&added, Path::new(PATH))
                .unwrap()
                .runtime("c")
                .unwrap()
                .forward
        );
    }

    fn add(text: &str, rt: &NewRuntime) -> Result<String, ConfigError> {
        add_runtime(text, Path::new(PATH), rt)
    }

    fn remove(text: &str, name: &str) -> Result<String, ConfigError> {
        remove_runtime(text, Path::new(PATH), name)
    }

    fn names(text: &str) -> Vec<String> {
        let config = Config::parse(text, Path::new(PATH)).expect("the edit is valid");
        config.runtimes.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn add_appends_and_keeps_every_byte() {
        let mut rt = new_runtime("bb", "https://bb.example.com/scm/proj/");
        rt.username = Some("jdoe".into());
        rt.api_url = Some("https://bb.example.com/rest".into());
        rt.auth = AuthScheme::Bearer;
        let out = add(ORIGINAL, &rt).unwrap();
        let added = out
            .strip_prefix(ORIGINAL)
            .expect("the original text is untouched");
        assert_eq!(
            added,
            "\n[[runtime]]\nname = \"bb\"\nprovider = \"bitbucket-server\"\n\
             urls = [\"https://bb.example.com/scm/proj/\"]\nusername = \"jdoe\"\n\
             api_url = \"https://bb.example.com/rest\"\nauth = \"bearer\"\n"
        );
        assert_eq!(names(&out), ["acme", "oss", "work-gl", "bb"]);
        let config = Config::parse(&out, Path::new(PATH)).unwrap();
        assert_eq!(config.settings.warn_days, 14);
    }

    #[test]
    fn add_to_an_empty_or_unterminated_file() {
        let rt = new_runtime("bb", "https://bb.example.com/");
        let table = "[[runtime]]\nname = \"bb\"\nprovider = \"bitbucket-server\"\nurls = [\"https://bb.example.com/\"]\n";
        assert_eq!(add("", &rt).unwrap(), table);
        assert_eq!(add("# mine", &rt).unwrap(), format!("# mine\n\n{table}"));
        assert_eq!(
            add("# mine\n\n", &rt).unwrap(),
            format!("# mine\n\n{table}")
        );
        assert_eq!(
            add("# mine\r\n", &rt).unwrap(),
            format!("# mine\r\n\r\n{}", table.replace('\n', "\r\n"))
        );
    }

    #[test]
    fn add_escapes_values() {
        let mut rt = new_runtime("q", "https://h.example/a\"b/");
        rt.username = Some("o'neil \"x\"".into());
        let out = add("", &rt).unwrap();
        let config = Config::parse(&out, Path::new(PATH)).unwrap();
        assert_eq!(config.runtimes[0].username.as_deref(), Some("o'neil \"x\""));
        assert_eq!(config.runtimes[0].urls[0].path, "a\"b");
    }

    #[test]
    fn add_refuses_what_the_config_refuses() {
        let err = add(ORIGINAL, &new_runtime("oss", "https://bb.example.com/")).unwrap_err();
        assert_eq!(
            err.message,
            "runtime \"oss\" is defined twice (first at line 18)"
        );
        assert_eq!(err.path, PATH);
        let err = add(ORIGINAL, &new_runtime("bb", "https://GitHub.com:443/acme")).unwrap_err();
        assert_eq!(
            err.message,
            "runtime \"bb\": url https://github.com/acme/ is already used by runtime \"acme\" (line 12)"
        );
        let err = add(ORIGINAL, &new_runtime("b b", "https://bb.example.com/")).unwrap_err();
        assert!(
            err.message.starts_with("runtime name \"b b\" is invalid"),
            "{err}"
        );
        let err = add(ORIGINAL, &new_runtime("bb", "bb.example.com")).unwrap_err();
        assert!(
            err.message.contains("is malformed: it has no scheme"),
            "{err}"
        );
        let mut rt = new_runtime("bb", "https://bb.example.com/");
        rt.urls.clear();
        assert!(add(ORIGINAL, &rt)
            .unwrap_err()
            .message
            .contains("urls is empty"));
        // A file that is already broken is refused with its own error, and left alone.
        let err = add("[setting]\n", &new_runtime("bb", "https://bb.example.com/")).unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.starts_with("unknown key \"setting\""), "{err}");
    }

    #[test]
    fn remove_cuts_out_one_table_with_its_comment() {
        let out = remove(ORIGINAL, "oss").unwrap();
        let expected = ORIGINAL.replace(
            "# Personal account\n[[runtime]]   # everything else on github.com\nname = \"oss\"\n\
             provider = \"github\"\nurls = [\"https://github.com/\"]\nusername = \"octocat\"\n\n",
            "",
        );
        assert_ne!(expected, ORIGINAL);
        assert_eq!(out, expected);
        assert!(out.contains(
            "]\n# username = \"someone\"   (left for later)\n\n[[runtime]]\nname = \"work-gl\""
        ));
        assert_eq!(names(&out), ["acme", "work-gl"]);
    }

    #[test]
    fn remove_takes_the_comments_inside_the_table_too() {
        let out = remove(ORIGINAL, "acme").unwrap();
        let start = ORIGINAL.find("# Work").unwrap();
        let end = ORIGINAL.find("# Personal").unwrap();
        let expected = format!("{}{}", &ORIGINAL[..start], &ORIGINAL[end..]);
        assert_eq!(out, expected);
        assert!(out.contains("warn_days = 14 # two weeks' notice\n\n# Personal account\n"));
    }

    #[test]
    fn remove_the_last_table_keeps_the_footer() {
        let out = remove(ORIGINAL, "work-gl").unwrap();
        let expected = ORIGINAL.replace(
            "[[runtime]]\nname = \"work-gl\"\nprovider = \"gitlab\"\nurls = [\"https://gitlab.example.com/\"]\n\n",
            "",
        );
        assert_eq!(out, expected);
        assert!(out.ends_with("username = \"octocat\"\n\n# vim: set ft=toml:\n"));
    }

    #[test]
    fn remove_at_the_end_of_the_file_leaves_no_blank_tail() {
        let text = "[[runtime]]\nname = \"a\"\nprovider = \"github\"\nurls = [\"https://github.com/a/\"]\n\n\
                    [[runtime]]\nname = \"b\"\nprovider = \"github\"\nurls = [\"https://github.com/b/\"]\n";
        let out = remove(text, "b").unwrap();
        assert_eq!(out, "[[runtime]]\nname = \"a\"\nprovider = \"github\"\nurls = [\"https://github.com/a/\"]\n");
        assert_eq!(remove(&out, "a").unwrap(), "");
    }

    #[test]
    fn remove_with_settings_between_runtimes() {
        let text = "[[runtime]]\nname = \"a\"\nprovider = \"github\"\nurls = [\"https://github.com/a/\"]\n\n\
                    # settings\n[settings]\nwarn_days = 3\n\n\
                    [[runtime]]\nname = \"b\"\nprovider = \"github\"\nurls = [\"https://github.com/b/\"]\n";
        let out = remove(text, "a").unwrap();
        assert_eq!(out, text.replace("[[runtime]]\nname = \"a\"\nprovider = \"github\"\nurls = [\"https://github.com/a/\"]\n\n", ""));
        assert_eq!(names(&out), ["b"]);
        assert_eq!(
            Config::parse(&out, Path::new(PATH))
                .unwrap()
                .settings
                .warn_days,
            3
        );
    }

    #[test]
    fn remove_then_add_round_trips() {
        let rt = new_runtime("bb", "https://bb.example.com/");
        let added = add(ORIGINAL, &rt).unwrap();
        assert_eq!(remove(&added, "bb").unwrap(), ORIGINAL);
    }

    #[test]
    fn remove_a_missing_runtime_is_an_error() {
        let err = remove(ORIGINAL, "nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/c/config.toml: there is no runtime \"nope\""
        );
        assert!(remove("", "nope").is_err());
        // A broken file is refused with its own error.
        let err = remove("[[runtime]]\nname = 1\n", "a").unwrap_err();
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn the_document_fallback_removes_the_same_runtime() {
        let out = remove_through_document(ORIGINAL, "oss");
        assert_eq!(names(&out), ["acme", "work-gl"]);
        assert!(out.contains("# Work: both orgs\n"));
    }
}
