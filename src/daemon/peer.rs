//! Who is asking: the socket's peer credentials, for the log and the audit trail.

use crate::audit::AuditEvent;

/// The process at the other end of a connection, from the socket's peer credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The peer's uid; on the main socket it must be the daemon's own user.
    pub uid: u32,
    /// The peer's pid, when the OS reports one; for the audit log.
    pub pid: Option<i32>,
    /// Which socket it connected to; decides what it may ask.
    pub channel: Channel,
}

/// Which socket a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The main socket: this machine's git and helperctl.
    Main,
    /// The support socket: read-only access of another local user.
    Support,
    /// The forward socket: git on a remote machine, through `ssh -R` (DESIGN.md §11).
    Forward,
}

impl Peer {
    /// An audit event naming this process.
    pub fn event(&self, kind: &str) -> AuditEvent {
        self.stamp(AuditEvent::now(kind))
    }

    /// Adds this process, and the socket it came through, to `event`.
    pub fn stamp(&self, event: AuditEvent) -> AuditEvent {
        let event = match self.channel {
            Channel::Main => event,
            Channel::Support => event.via("support"),
            Channel::Forward => event.via("forward"),
        };
        match self.pid {
            Some(pid) => event.peer(pid, self.uid),
            None => event,
        }
    }
}
