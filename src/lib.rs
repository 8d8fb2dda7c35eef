//! helperd: a per-user git credential helper daemon (see DESIGN.md).
//!
//! Core, no I/O: [`secret`], [`gitproto`], [`plain`]. Edges: [`store`], [`ipc`],
//! [`fsutil`]. The daemon: [`daemon`]. Binaries: `helperd`, `helperctl`.

#![deny(missing_docs)]

// The pure core: data and rules, no I/O (DESIGN.md §3). `config` and `policy` each keep
// the reading of their file in a `file` module, an edge.
pub mod audit_event;
pub mod config;
pub mod decision;
pub mod gitproto;
pub mod json_string;
pub mod location;
pub mod plain;
pub mod policy;
pub mod rotation;
pub mod runtime;
pub mod secret;
pub mod team;
pub mod timefmt;
pub mod token;
pub mod tomlspan;

// Edges: files, sockets, the terminal, secret stores, forges and OpenBao.
pub mod audit;
pub mod fsutil;
pub mod ipc;
pub mod openbao;
pub mod os;
pub mod provider;
pub mod store;
pub mod tty;

// The programs: the daemon, `helperctl` (its command line, its commands), and the man
// pages and completions generated from the command line.
pub mod cli;
pub mod ctl;
pub mod daemon;
pub mod docs;

pub use helperd_wire as wire;
