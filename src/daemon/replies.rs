//! Failures on the wire: each error type of the layers below maps to a fixed code and
//! the message that names the way out. Messages never contain a secret.

use helperd_wire::wire::{ErrorCode, Reply, Response};

use crate::decision::RefusalError;
use crate::provider::ProviderError;
use crate::store::StoreError;

use super::state::writer::WriteError;
use super::state::{SetTokenError, State};
use crate::config::RuntimeConfig;

/// A store failure: locked, wrong passphrase (`forbidden`), not supported, or unavailable.
pub fn store_error(e: StoreError) -> Response {
    let code = match e {
        StoreError::Locked { .. } => ErrorCode::StoreLocked,
        StoreError::WrongPassphrase { .. } => ErrorCode::Forbidden,
        StoreError::NotSupported { .. } => ErrorCode::BadRequest,
        _ => ErrorCode::StoreUnavailable,
    };
    Response::error(code, e.to_string())
}

/// A failed write: a store failure keeps its code, anything else is `internal`.
pub fn write_error(e: WriteError) -> Response {
    match e {
        WriteError::Store(e) => store_error(e),
        e => Response::error(ErrorCode::Internal, e.to_string()),
    }
}

/// A token that was not stored: the policy's refusal, or what failed.
pub fn set_token_error(e: SetTokenError) -> Response {
    match e {
        SetTokenError::Policy(m) => {
            Response::error(ErrorCode::Policy, format!("{m}; nothing was stored"))
        }
        SetTokenError::Write(e) => write_error(e),
    }
}

/// The provider refused the token or the request, or could not be reached.
pub fn provider_error(e: ProviderError) -> Response {
    Response::error(ErrorCode::Provider, e.to_string())
}

/// A decision's refusal that is an error, with its wire code (see
/// [`RefuseReason::error`](crate::decision::RefuseReason::error)).
pub fn refusal_error(kind: RefusalError, message: String) -> Response {
    let code = match kind {
        RefusalError::Policy => ErrorCode::Policy,
        RefusalError::Config => ErrorCode::Config,
        RefusalError::StoreLocked => ErrorCode::StoreLocked,
        RefusalError::StoreUnavailable => ErrorCode::StoreUnavailable,
        RefusalError::Internal => ErrorCode::Internal,
    };
    Response::error(code, message)
}

/// An answer with code `bad_request`: the request makes no sense (unknown runtime, bad
/// argument...).
pub fn bad_request(message: impl Into<String>) -> Response {
    Response::error(ErrorCode::BadRequest, message)
}

/// No runtime is called `name`; points to `helperctl runtime list`.
pub fn no_runtime(name: &str) -> Response {
    bad_request(format!(
        "there is no runtime named {name:?} (see `helperctl runtime list`)"
    ))
}

/// The local runtime called `name`, or the answer that says there is none (or that it is
/// a team runtime, whose token only the admin changes, in OpenBao).
pub fn runtime_named(state: &State, name: &str) -> Result<RuntimeConfig, Response> {
    state.runtime(name).ok_or_else(|| {
        let team = state.team.current();
        match team.runtimes.iter().find(|t| t.runtime.name == name) {
            Some(t) => bad_request(format!(
                "{name} is a team runtime, read from OpenBao ({}): its {} is changed there by an admin (`helperctl team publish {name}`), not on this machine",
                t.runtime.team.as_ref().map(|o| o.path.as_str()).unwrap_or(""),
                match t.runtime.app {
                    Some(_) => "GitHub App key",
                    None => "token",
                }
            )),
            None => no_runtime(name),
        }
    })
}

/// A finished helperctl request, with what to tell the user.
pub fn done(notice: impl Into<String>) -> Response {
    Response::new(Reply::Done).with_notice(Some(notice.into()))
}

/// git's answer: `output` on its stdin (empty: nothing to say).
pub fn for_git(output: String) -> Response {
    Response::new(Reply::Git { output })
}
