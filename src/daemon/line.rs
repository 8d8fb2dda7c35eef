//! One request line in, one response line out (DESIGN.md §4): the read is capped and
//! timed, the request decoded without ever quoting it (it may hold a secret).

use std::time::Duration;

use helperd_wire::wire::{ErrorCode, Request, Response, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};
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
/// type (`"v": "x"`) reads as missing, as it did through `serde_json::Value`.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(default, deserialize_with = "lenient")]
    v: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    op: Option<String>,
}

/// `Some` when the field has the expected type, `None` (not an error) otherwise.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

/// Decodes one request line; the error is the response to send. Messages never quote the
/// request: it may hold a secret.
fn decode(line: &[u8]) -> Result<Request, (ErrorCode, String)> {
    let bad = |msg: String| (ErrorCode::BadRequest, msg);
    // The version and op first, without building the request: skipping the other
    // fields allocates nothing (the request is then decoded once, straight from the line).
    let head: Head = serde_json::from_slice(line)
        .map_err(|e| bad(format!("request is not JSON (column {})", e.column())))?;
    let op = head.op.ok_or_else(|| bad("request has no \"op\"".into()))?;
    // Every version honours `shutdown`, so any client can replace any daemon.
    if op == "shutdown" {
        return Ok(Request::Shutdown);
    }
    let version = head.v;
    if version != Some(u64::from(PROTOCOL_VERSION)) {
        return Err((
            ErrorCode::VersionMismatch,
            format!(
                "this helperd daemon speaks protocol {PROTOCOL_VERSION}, the client {}; restart the daemon (helperctl daemon restart)",
                version.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
            ),
        ));
    }
    // The request alone: `v` is checked above and, like any other unknown field, skipped.
    serde_json::from_slice::<Request>(line).map_err(|e| {
        // serde names an unknown tag "unknown variant"; other errors may quote a
        // field's value, which may be secret, so only the op is named.
        let unknown = e
            .to_string()
            .starts_with(&format!("unknown variant `{op}`"));
        match (unknown, shown_op(&op)) {
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
