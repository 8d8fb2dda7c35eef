//! The client side of helperd: the wire types shared with the daemon, the paths both ends
//! agree on, and the code that talks to (and starts) the daemon.
//!
//! This crate is what git runs on every operation, so it depends on std, serde and
//! serde_json only (DESIGN.md §3).

#![deny(missing_docs)]

pub mod client;
pub mod os;
pub mod paths;
pub mod renewal;
pub mod url;
pub mod wire;
