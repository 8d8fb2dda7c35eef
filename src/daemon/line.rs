//! One request line in, one response line out (DESIGN.md §4): the read is capped and
//! timed, the request decoded without ever quoting it (it may hold a secret).

use std::time::Duration;

use helperd_wire::wire::{
    ErrorCode, GitAction, Reply, Request, Response, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::ipc::AsyncConnection;

/// What a connection sent.
pub enum Incoming {
    /// Nothing worth an answer (silence, hang-up).
    Nothing,
    /// A request that cannot be served: this is the answer.
    Reply(Box<Response>),
    /// A request to carry out.
    Request(Request),
}

/// Reads and decodes one request, within `timeout`, from its first byte (the server's
/// first look takes nothing off the stream).
pub async fn read_request(stream: &mut AsyncConnection, timeout: Duration) -> Incoming {
    match tokio::time::timeout(timeout, read_request_line(stream)).await {
        Err(_) => {
            tracing::debug!("client sent no request in time; closing");
            Incoming::Nothing
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "failed to read a request");
            Incoming::Nothing
        }
        Ok(Ok(line)) => parse(&line),
    }
}

/// Whether `read` holds a whole request, or as much as may be read: a line, or more than
/// the cap.
pub fn complete(read: &[u8]) -> bool {
    read.len() > MAX_MESSAGE_BYTES || read.contains(&b'\n')
}

/// Decodes everything a client sent (up to its first newline, or the stream's end).
pub fn parse(read: &[u8]) -> Incoming {
    let line = match read.iter().position(|&b| b == b'\n') {
        Some(end) if end < MAX_MESSAGE_BYTES => &read[..=end],
        None if read.len() <= MAX_MESSAGE_BYTES && !read.is_empty() => {
            tracing::warn!("refused a truncated request");
            return Incoming::Reply(Box::new(Response::error(
                ErrorCode::BadRequest,
                "truncated request (no final newline)",
            )));
        }
        None if read.is_empty() => return Incoming::Nothing,
        _ => {
            let msg = format!(
                "request larger than {} KiB; refused",
                MAX_MESSAGE_BYTES / 1024
            );
            tracing::warn!("{msg}");
            return Incoming::Reply(Box::new(Response::error(ErrorCode::BadRequest, msg)));
        }
    };
    match decode(line) {
        Ok(request) => Incoming::Request(request),
        Err((code, message)) => {
            tracing::warn!(?code, %message, "refused a request");
            Incoming::Reply(Box::new(Response::error(code, message)))
        }
    }
}

/// Reads until a newline, the cap, or the stream's end.
async fn read_request_line(
    stream: &mut AsyncConnection,
) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
    // Zeroizing: the request may carry a password.
    let mut read = zeroize::Zeroizing::new(Vec::new());
    let mut reader = BufReader::new(stream.take(MAX_MESSAGE_BYTES as u64 + 1));
    reader.read_until(b'\n', &mut read).await?;
    Ok(read)
}

/// The part of a request line read before the rest: its version and op. A field of another
/// type (`"v": "x"`) reads as missing.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(default, borrow)]
    v: Lenient<'a>,
    #[serde(default, borrow)]
    op: Lenient<'a>,
}

/// A field of the head as it came: a whole number, a string, or anything else (skipped
/// without building it).
#[derive(Default)]
enum Lenient<'a> {
    Number(u64),
    Text(std::borrow::Cow<'a, str>),
    #[default]
    Other,
}

impl Lenient<'_> {
    fn number(&self) -> Option<u64> {
        match self {
            Lenient::Number(n) => Some(*n),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Lenient::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

impl<'de> serde::de::Visitor<'de> for LenientVisitor {
    type Value = Lenient<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Lenient::Number(n))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(n).map_or(Lenient::Other, Lenient::Number))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Lenient::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Lenient::Other)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Other)
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Lenient::Text(text.into()))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Lenient::Text(text.to_string().into()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Lenient::Other)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Lenient::Other)
    }
}

/// A whole git request of this protocol version, read in one pass, without the generic
/// path's copy of every field (serde reads an internally tagged enum into a buffer
/// first): what every `git fetch` and `push` sends. Anything else (another op or version,
/// a field missing or of the wrong type) fails to read or to match, and [`decode`] reads
/// its head to say what is wrong. Gives what decoding [`Request`] gives.
#[derive(serde::Deserialize)]
struct GitLine<'a> {
    #[serde(default, borrow)]
    v: Lenient<'a>,
    #[serde(default, borrow)]
    op: Lenient<'a>,
    #[serde(default)]
    action: Option<GitAction>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

/// The request when `line` is a well-formed git request of this protocol version.
fn decode_git(line: &[u8]) -> Option<Request> {
    let git: GitLine = serde_json::from_slice(line).ok()?;
    let ours = git.op.text() == Some("git") && git.v.number() == Some(PROTOCOL_VERSION.into());
    match (ours, git.action, git.input) {
        (true, Some(action), Some(input)) => Some(Request::Git {
            action,
            input,
            timeout_secs: git.timeout_secs,
        }),
        _ => None,
    }
}

/// Decodes one request line; the error is the response to send. Messages never quote the
/// request: it may hold a secret.
fn decode(line: &[u8]) -> Result<Request, (ErrorCode, String)> {
    if let Some(request) = decode_git(line) {
        return Ok(request);
    }
    let bad = |msg: String| (ErrorCode::BadRequest, msg);
    // The version and op first, without building the request: skipping the other
    // fields allocates nothing (the request is then decoded once, straight from the line).
    let head: Head = serde_json::from_slice(line)
        .map_err(|e| bad(format!("request is not JSON (column {})", e.column())))?;
    let op = head
        .op
        .text()
        .ok_or_else(|| bad("request has no \"op\"".into()))?;
    // Every version honours `shutdown`, so any client can replace any daemon.
    if op == "shutdown" {
        return Ok(Request::Shutdown);
    }
    let version = head.v.number();
    if version != Some(u64::from(PROTOCOL_VERSION)) {
        return Err((
            ErrorCode::VersionMismatch,
            format!(
                "this helperd daemon speaks protocol {PROTOCOL_VERSION}, the client {}; restart the daemon (helperctl daemon restart)",
                version.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            ),
        ));
    }
    // A well-formed git request of this version was read above: this one is not.
    if op == "git" {
        return Err(bad("malformed git request".into()));
    }
    // The request alone: `v` is checked above and, like any other unknown field, skipped.
    serde_json::from_slice::<Request>(line).map_err(|e| {
        // serde names an unknown tag "unknown variant"; other errors may quote a
        // field's value, which may be secret, so only the op is named.
        let unknown = e
            .to_string()
            .starts_with(&format!("unknown variant `{op}`"));
        match (unknown, shown_op(op)) {
            (true, Some(name)) => bad(format!("unknown op {name:?}")),
            (true, None) => bad("unknown op (not an op name)".into()),
            (false, Some(name)) => bad(format!("malformed {name} request")),
            (false, None) => bad("malformed request".into()),
        }
    })
}

/// An op as a message may show it: an op name is a short lower-case word; anything else
/// (a mistake, or a secret put where the op goes) is not repeated.
fn shown_op(op: &str) -> Option<&str> {
    // The longest op there is (login_browser_finish) has 20 letters.
    let is_name =
        (1..=20).contains(&op.len()) && op.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    is_name.then_some(op)
}

/// The response as its line (it may hold a secret: wiped when dropped).
pub fn encode(response: &Response) -> zeroize::Zeroizing<Vec<u8>> {
    if let (Reply::Git { output }, None) = (&response.reply, &response.prompt) {
        return encode_git(response.v, output, response.notice.as_deref());
    }
    // Measured first, then written into a buffer of exactly that size: a buffer that grew
    // would leave the old one, with the secret in it, freed but not wiped; and one sized
    // for any answer (16 KiB) costs a wipe of all of it, byte by byte, on every request.
    let mut counter = ByteCount(0);
    serde_json::to_writer(&mut counter, response).expect("wire types always serialize");
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(counter.0 + 1));
    serde_json::to_writer(&mut *bytes, response).expect("wire types always serialize");
    bytes.push(b'\n');
    debug_assert_eq!(
        bytes.len(),
        bytes.capacity(),
        "the answer never outgrew its buffer"
    );
    bytes
}

/// [`encode`] of an answer for git, the one every `get` sends: what `serde_json` writes
/// for it (a test holds it to that), written by hand into a buffer of exactly its size.
fn encode_git(v: u32, output: &str, notice: Option<&str>) -> zeroize::Zeroizing<Vec<u8>> {
    use crate::json_string;
    let mut version = itoa::Buffer::new();
    let version = version.format(v).as_bytes();
    const HEAD: &[u8] = b"{\"v\":";
    const RESULT: &[u8] = b",\"result\":\"git\",\"output\":";
    const NOTICE: &[u8] = b",\"notice\":";
    let len = HEAD.len()
        + version.len()
        + RESULT.len()
        + json_string::len(output)
        + notice.map_or(0, |n| NOTICE.len() + json_string::len(n))
        + "}\n".len();
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(len));
    bytes.extend_from_slice(HEAD);
    bytes.extend_from_slice(version);
    bytes.extend_from_slice(RESULT);
    json_string::push(&mut bytes, output);
    if let Some(notice) = notice {
        bytes.extend_from_slice(NOTICE);
        json_string::push(&mut bytes, notice);
    }
    bytes.extend_from_slice(b"}\n");
    debug_assert_eq!(bytes.len(), len, "the answer was measured right");
    debug_assert_eq!(bytes.capacity(), len, "the answer never outgrew its buffer");
    bytes
}

/// A writer that only counts what it is given.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the response line; closing the stream (dropping it) then tells the client
/// that nothing more comes.
pub async fn write_response(
    stream: &mut AsyncConnection,
    response: &Response,
) -> std::io::Result<()> {
    write_bytes(stream, &encode(response)).await
}

/// Writes `bytes` (an already encoded line) and flushes.
pub async fn write_bytes(stream: &mut AsyncConnection, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// git's answer, written by hand, is what `serde_json` writes; other answers go
    /// through `serde_json` itself.
    #[test]
    fn git_answers_are_encoded_as_serde_json_encodes_them() {
        use helperd_wire::wire::RenewalPrompt;
        let git = |output: &str| {
            Response::new(Reply::Git {
                output: output.into(),
            })
        };
        let prompt = RenewalPrompt {
            runtime: "acme".into(),
            text: "renew".into(),
        };
        let responses = [
            git(""),
            git("protocol=https\nhost=h\nusername=u\npassword=p\"\\\u{1}é\n"),
            git("password=p\n").with_notice(Some("expires in 3 days\n\t\"soon\"".into())),
            git("password=p\n").with_prompt(Some(prompt)),
            Response::error(ErrorCode::BadRequest, "no"),
        ];
        for response in responses {
            let mut expected = serde_json::to_vec(&response).unwrap();
            expected.push(b'\n');
            let encoded = encode(&response);
            assert_eq!(
                String::from_utf8_lossy(&encoded),
                String::from_utf8_lossy(&expected)
            );
            assert_eq!(encoded.len(), encoded.capacity());
        }
    }

    /// The answer's buffer is exactly its size (so the wipe on drop costs only that),
    /// escaping included, and it decodes back to the same response.
    #[test]
    fn an_answer_is_encoded_into_a_buffer_of_exactly_its_size() {
        let output = format!(
            "username=x-access-token\npassword={}\"\\\u{1}\n",
            "t".repeat(3000)
        );
        let response = Response::new(helperd_wire::wire::Reply::Git { output })
            .with_notice(Some("ünïcode notice".into()));
        let bytes = encode(&response);
        assert_eq!(bytes.len(), bytes.capacity());
        assert_eq!(bytes.last(), Some(&b'\n'));
        let back: Response = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, response);
    }

    fn code(e: (ErrorCode, String)) -> ErrorCode {
        e.0
    }

    #[test]
    fn decode_classifies_bad_requests() {
        assert_eq!(
            code(decode(b"garbage\n").unwrap_err()),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(decode(b"{\"v\":1}\n").unwrap_err()),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(
                decode(format!("{{\"v\":{PROTOCOL_VERSION},\"op\":\"fly\"}}\n").as_bytes())
                    .unwrap_err()
            ),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(decode(b"{\"v\":7,\"op\":\"status\"}\n").unwrap_err()),
            ErrorCode::VersionMismatch
        );
        assert_eq!(
            decode(b"{\"v\":7,\"op\":\"shutdown\"}\n").unwrap(),
            Request::Shutdown
        );
        assert_eq!(
            decode(format!("{{\"v\":{PROTOCOL_VERSION},\"op\":\"status\"}}\n").as_bytes()).unwrap(),
            Request::Status
        );
    }

    /// The one pass reads only well-formed git requests of this version, as the generic
    /// decoding of a [`Request`] reads them; what it leaves, the head decides.
    #[test]
    fn the_one_pass_reads_only_well_formed_git_requests() {
        let v = PROTOCOL_VERSION;
        let bad_request = Err(ErrorCode::BadRequest);
        let mismatch = Err(ErrorCode::VersionMismatch);
        let lines = [
            (
                format!(r#"{{"v":{v},"op":"git","action":"get","input":"host=h\n"}}"#),
                Ok(true),
            ),
            (
                format!(r#"{{"input":"x","timeout_secs":5,"action":"store","op":"git","v":{v}}}"#),
                Ok(true),
            ),
            (
                format!(r#"{{"v":{v},"op":"git","action":"get","input":"x","v":"{v}"}}"#),
                bad_request,
            ),
            (
                format!(r#"{{"v":{v},"op":"git","op":"git","action":"get","input":"x"}}"#),
                bad_request,
            ),
            (
                format!(r#"{{"v":"{v}","op":"git","action":"get","input":"x"}}"#),
                mismatch,
            ),
            (
                format!(r#"{{"v":{},"op":"git","action":"get","input":"x"}}"#, v + 1),
                mismatch,
            ),
            (
                r#"{"op":"git","action":"get","input":"x"}"#.to_string(),
                mismatch,
            ),
            (
                format!(r#"{{"v":{v},"op":"store_token","action":"get","input":"x"}}"#),
                bad_request,
            ),
            (
                format!(r#"{{"v":{v},"op":"shutdown","action":"get","input":"x"}}"#),
                Ok(false),
            ),
            (
                format!(r#"{{"v":{v},"op":"git","action":"get","input":"x"}} trailing"#),
                bad_request,
            ),
        ];
        for (line, expected) in &lines {
            let one_pass = decode_git(line.as_bytes());
            if let Some(request) = &one_pass {
                let generic = serde_json::from_slice::<Request>(line.as_bytes()).unwrap();
                assert_eq!(request, &generic, "{line}");
            }
            // Ok(true): read in one pass; Ok(false): read from its head; Err: refused so.
            let outcome = match decode(line.as_bytes()) {
                Ok(request) => Ok(one_pass.as_ref() == Some(&request)),
                Err((code, _)) => Err(code),
            };
            assert_eq!(&outcome, expected, "{line}");
        }
    }

    /// A git request decoded straight from the line is what the generic decoding of a
    /// [`Request`] gives, and a line it refuses is one that the generic path refuses too.
    #[test]
    fn git_requests_decode_as_the_generic_path_does() {
        let v = PROTOCOL_VERSION;
        let bodies = [
            r#""action":"get","input":"protocol=https\nhost=h\n""#,
            r#""action":"store","input":"a=\u0062","timeout_secs":30"#,
            r#""action":"erase","input":"","timeout_secs":null"#,
            r#""input":"x","action":"get","extra":{"nested":[1,{"a":null}]}"#,
            r#""action":"get","input":"x","timeout_secs":"30""#,
            r#""action":"fly","input":"x""#,
            r#""action":"get","input":12"#,
            r#""action":"get""#,
            r#""action":"get","input":"x","input":"y""#,
            r#""action":"get","input":"x","timeout_secs":-1"#,
            r#""action":null,"input":"x""#,
            r#""action":"get","input":null"#,
        ];
        for body in bodies {
            let line = format!(r#"{{"v":{v},"op":"git",{body}}}"#);
            let generic = serde_json::from_slice::<Request>(line.as_bytes());
            match (decode(line.as_bytes()), generic) {
                (Ok(fast), Ok(generic)) => assert_eq!(fast, generic, "{line}"),
                (Err((code, message)), Err(_)) => {
                    assert_eq!(code, ErrorCode::BadRequest, "{line}");
                    assert_eq!(message, "malformed git request", "{line}");
                }
                (fast, generic) => panic!("{line}: {fast:?} against {generic:?}"),
            }
        }
    }

    /// The head reads `v` and `op` of any type without failing: a value of another type
    /// is as good as none.
    #[test]
    fn a_head_of_other_types_reads_as_missing() {
        let refused = |line: &str| decode(line.as_bytes()).unwrap_err();
        assert_eq!(
            refused(r#"{"v":{"a":[1,2]},"op":"status"}"#).0,
            ErrorCode::VersionMismatch
        );
        assert_eq!(
            refused(r#"{"v":-2,"op":"status"}"#).0,
            ErrorCode::VersionMismatch
        );
        assert_eq!(
            refused(r#"{"v":2.0,"op":"status"}"#).0,
            ErrorCode::VersionMismatch
        );
        let (code, message) = refused(&format!(r#"{{"v":{PROTOCOL_VERSION},"op":[1]}}"#));
        assert_eq!(
            (code, message.as_str()),
            (ErrorCode::BadRequest, "request has no \"op\"")
        );
        // An escaped op is the same op.
        assert_eq!(
            decode(format!(r#"{{"v":{PROTOCOL_VERSION},"op":"st\u0061tus"}}"#).as_bytes()).unwrap(),
            Request::Status
        );
    }

    #[test]
    fn an_op_that_is_not_an_op_name_is_not_repeated() {
        // Found by the wire_line fuzz target: a secret put where the op goes came back.
        let line = br#"{"v":2,"op":"2sreestcecretsecretsecretgit","secretffot":"x"}"#;
        let (_, message) = decode(line).unwrap_err();
        assert!(!message.contains("secretsecret"), "{message}");
        let line = format!(r#"{{"v":{PROTOCOL_VERSION},"op":"frobnicate"}}"#);
        let (_, message) = decode(line.as_bytes()).unwrap_err();
        assert!(message.contains("\"frobnicate\""), "{message}");
    }

    #[test]
    fn malformed_request_error_does_not_quote_the_secret() {
        let line =
            format!(r#"{{"v":{PROTOCOL_VERSION},"op":"git","action":"get","input":12345678}}"#);
        let line = line.as_bytes();
        let (_, message) = decode(line).unwrap_err();
        assert!(!message.contains("12345678"), "{message}");
    }
}
