//! AUTH on the shard (spec §4.2): the AUTH command, and the authorization check PUB, MPUB, DPUB
//! and SUB pass before they act. The auth server is queried off the shard: the broker queues an
//! `AuthRequest` (`take_auth_requests`), blocks the connection with the command still in its
//! input, and resumes when the `AuthReply` comes back through `on_message`. A check that finds
//! the cached answer expired refreshes it the same way and then decodes the command again.

use std::time::Instant;

use super::{Blocked, Broker, Net, Pending};
use crate::auth::{AuthReply, AuthRequest};
use crate::error::{ErrorCode, ProtocolError};
use crate::names::Name;
use crate::protocol::{self, go_quote};

/// Why a connection waits for the auth server.
#[derive(Debug)]
pub enum AuthWait {
    /// The AUTH command: answer it.
    Auth,
    /// A check found the answer expired: re-check this command with the new one.
    Refresh {
        cmd: &'static str,
        topic: Name,
        channel: Option<Name>,
    },
}

/// What the check says about a command.
pub(super) enum Verdict {
    Allowed,
    /// Waiting for the auth server; the command stays in the input.
    Waiting,
    Denied(ProtocolError),
}

impl<D: Send + 'static> Broker<D> {
    /// Auth server queries made since the last call, for the engine to run.
    pub fn take_auth_requests(&mut self) -> Vec<AuthRequest> {
        std::mem::take(&mut self.auth_requests)
    }

    pub fn has_auth_requests(&self) -> bool {
        !self.auth_requests.is_empty()
    }

    /// The AUTH command, body already taken from the input (spec §4.2 steps 7 to 10).
    pub(super) fn auth_cmd<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64, secret: Vec<u8>) -> bool {
        let enabled = self.opts.auth_enabled;
        let common_name = net.tls_info(conn).map(|t| t.common_name).unwrap_or_default();
        let Some(s) = self.session_mut(conn) else {
            return false;
        };
        if s.auth.as_ref().is_some_and(|a| !a.authorizations.is_empty()) {
            self.fail(
                net,
                conn,
                &ProtocolError::new(ErrorCode::Invalid, "AUTH already set"),
            );
            return false;
        }
        if !enabled {
            self.fail(
                net,
                conn,
                &ProtocolError::new(ErrorCode::AuthDisabled, "AUTH disabled"),
            );
            return false;
        }
        s.auth_secret = secret;
        s.tls_common_name = common_name;
        self.query_auth(conn, AuthWait::Auth);
        false
    }

    /// nsqd's `CheckAuth` for `cmd` on `topic` (and `channel` for SUB).
    pub(super) fn check_auth(
        &mut self,
        conn: u64,
        cmd: &'static str,
        topic: &Name,
        channel: Option<&Name>,
        now: Instant,
    ) -> Verdict {
        let Some(s) = self.session(conn) else {
            return Verdict::Waiting;
        };
        let Some(state) = s.auth.as_ref().filter(|a| !a.authorizations.is_empty()) else {
            return Verdict::Denied(ProtocolError::new(
                ErrorCode::AuthFirst,
                format!("AUTH required before {cmd}"),
            ));
        };
        if state.is_expired(now) {
            let wait = AuthWait::Refresh {
                cmd,
                topic: *topic,
                channel: channel.copied(),
            };
            self.query_auth(conn, wait);
            return Verdict::Waiting;
        }
        let channel = channel.map_or("", Name::as_str);
        if state.is_allowed(topic.as_str(), channel) {
            Verdict::Allowed
        } else {
            Verdict::Denied(unauthorized(cmd, topic.as_str(), channel))
        }
    }

    /// A denied publish answers in command order, after the answers still owed.
    pub(super) fn deny_publish<N: Net<Detached = D>>(
        &mut self,
        net: &mut N,
        conn: u64,
        len: usize,
        err: ProtocolError,
    ) -> bool {
        if let Some(input) = net.input(conn) {
            bytes::Buf::advance(input, len);
        }
        let Some(s) = self.session_mut(conn) else {
            return false;
        };
        let seq = s.next_seq;
        s.next_seq += 1;
        s.pending.push_back(Pending { seq, result: None });
        self.complete_publish(net, conn, seq, Some(Box::new(err)))
    }

    fn query_auth(&mut self, conn: u64, wait: AuthWait) {
        self.next_auth_ticket += 1;
        let ticket = self.next_auth_ticket;
        let Some(s) = self.session_mut(conn) else {
            return;
        };
        s.blocked = Some(Blocked::Auth);
        s.auth_wait = Some((ticket, wait));
        let request = AuthRequest {
            conn,
            ticket,
            remote_ip: remote_ip(&s.remote_address).to_string(),
            tls: s.tls,
            common_name: s.tls_common_name.clone(),
            secret: s.auth_secret.clone(),
        };
        self.auth_requests.push(request);
    }

    /// The auth server answered (or could not be asked).
    pub(super) fn on_auth_reply<N: Net<Detached = D>>(&mut self, net: &mut N, reply: AuthReply) {
        let Some(s) = self.session_mut(reply.conn) else {
            return; // the connection is gone
        };
        if s.auth_wait.as_ref().is_none_or(|(t, _)| *t != reply.ticket) {
            return;
        }
        let (_, wait) = s.auth_wait.take().expect("checked");
        if s.blocked != Some(Blocked::Auth) {
            return; // closing meanwhile
        }
        s.blocked = None;
        let conn = reply.conn;
        let state = match reply.result {
            Ok(state) => state,
            Err(_) => {
                // The reason stays out of the error frame, as in nsqd; the auth client logs it.
                self.fail(
                    net,
                    conn,
                    &ProtocolError::new(ErrorCode::AuthFailed, "AUTH failed"),
                );
                return;
            }
        };
        match wait {
            AuthWait::Auth => {
                let granted = state.authorizations.len();
                let json = protocol::auth_reply_json(&state.identity, &state.identity_url, granted);
                s.auth = Some(state);
                if granted == 0 {
                    let err = ProtocolError::new(ErrorCode::Unauthorized, "AUTH no authorizations found");
                    self.fail(net, conn, &err);
                    return;
                }
                self.write_response(net, conn, &json);
            }
            AuthWait::Refresh { cmd, topic, channel } => {
                let channel = channel.as_ref().map_or("", Name::as_str);
                let allowed = state.is_allowed(topic.as_str(), channel);
                s.auth = Some(state);
                if !allowed {
                    // Decided here: the new answer may hold no authorization at all, which the
                    // re-check would report as "AUTH required" where nsqd says "not allowed".
                    self.fail(net, conn, &unauthorized(cmd, topic.as_str(), channel));
                    return;
                }
            }
        }
        self.process_input(net, conn);
    }
}

fn unauthorized(cmd: &str, topic: &str, channel: &str) -> ProtocolError {
    let desc = format!(
        "AUTH failed for {cmd} on {} {}",
        go_quote(topic.as_bytes()),
        go_quote(channel.as_bytes())
    );
    ProtocolError::new(ErrorCode::Unauthorized, desc)
}

/// The host part of `ip:port` or `[ip6]:port` (Go's `net.SplitHostPort`).
/// The host part of `remote_address`, which nsqd sends only for a TCP client: a Unix socket's
/// `@` (and an unknown address) has no port, and no host either.
fn remote_ip(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or("", |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    #[test]
    fn remote_ip_strips_port_and_brackets() {
        assert_eq!(super::remote_ip("127.0.0.1:5555"), "127.0.0.1");
        assert_eq!(super::remote_ip("[::1]:5555"), "::1");
        assert_eq!(super::remote_ip(""), "");
        assert_eq!(super::remote_ip("@"), "");
    }
}
