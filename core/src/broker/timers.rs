//! Heartbeats, read deadlines, output-buffer flushes and the channel scan, on the runtime's timer
//! wheel.
//!
//! A token is `kind:4 | connection index:28 | arm sequence:32`. Timers are never cancelled: each
//! session remembers the sequence it last armed a kind with, and a firing that does not match is
//! stale and ignored.

use super::{conn_index, ms, Blocked, Broker, Net};
use crate::protocol;

const KIND_HEARTBEAT: u64 = 1;
const KIND_DEADLINE: u64 = 2;
const KIND_FLUSH: u64 = 3;
const KIND_SCAN: u64 = 4;
const KIND_SYNC: u64 = 5;

pub(super) const SCAN_TOKEN: u64 = KIND_SCAN << 60;
pub(super) const SYNC_TOKEN: u64 = KIND_SYNC << 60;

fn token(kind: u64, conn: u64, seq: u32) -> u64 {
    (kind << 60) | ((conn_index(conn) as u64 & 0x0fff_ffff) << 32) | seq as u64
}

impl<D: Send + 'static> Broker<D> {
    pub(super) fn arm_heartbeat<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        let seq = self.next_timer_seq();
        let Some(s) = self.session_mut(conn) else { return };
        if s.heartbeats_disabled() {
            s.heartbeat_armed = 0;
            return;
        }
        s.heartbeat_armed = seq;
        let at = net.now() + ms(s.heartbeat_interval_ms);
        net.timer_at(at, token(KIND_HEARTBEAT, conn, seq));
    }

    /// Arms the read deadline: closed after 2 × heartbeat interval without a complete command.
    pub(super) fn arm_read_deadline<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        let seq = self.next_timer_seq();
        let Some(s) = self.session_mut(conn) else { return };
        if s.heartbeats_disabled() {
            s.deadline_armed = 0;
            return;
        }
        s.deadline_armed = seq;
        let at = s.last_read + ms(2 * s.heartbeat_interval_ms);
        net.timer_at(at, token(KIND_DEADLINE, conn, seq));
    }

    pub(super) fn arm_flush<N: Net<Detached = D>>(&mut self, net: &mut N, conn: u64) {
        let seq = self.next_timer_seq();
        let idle_flush = self.opts.output_buffer_idle_flush;
        let Some(s) = self.session_mut(conn) else { return };
        if s.flush_armed != 0 {
            return;
        }
        s.flush_armed = seq;
        let at = net.now() + ms(s.output_buffer_timeout_ms);
        let list = idle_flush && !s.held;
        s.held |= list;
        if list {
            self.held.push(conn);
            if self.held.len() > self.sessions.len() {
                // Closed sessions left entries while the shard never went idle: drop them, so
                // the list stays within one entry per session slot.
                let sessions = &self.sessions;
                self.held.retain(|&c| {
                    sessions
                        .get(super::conn_index(c))
                        .and_then(|s| s.as_ref())
                        .is_some_and(|s| s.conn == c && s.held)
                });
            }
        }
        net.timer_at(at, token(KIND_FLUSH, conn, seq));
    }

    pub(super) fn fire_timer<N: Net<Detached = D>>(&mut self, net: &mut N, token: u64) {
        let kind = token >> 60;
        if kind == KIND_SCAN {
            self.run_scan(net);
            return;
        }
        if kind == KIND_SYNC {
            self.on_sync_timer(net);
            return;
        }
        let idx = ((token >> 32) & 0x0fff_ffff) as usize;
        let seq = token as u32;
        let Some(s) = self.sessions.get_mut(idx).and_then(|s| s.as_mut()) else {
            return;
        };
        let conn = s.conn;
        match kind {
            KIND_HEARTBEAT if s.heartbeat_armed == seq => {
                let mut frame = Vec::with_capacity(19);
                protocol::encode_response(&mut frame, b"_heartbeat_");
                net.write(conn, &frame);
                net.flush(conn);
                self.arm_heartbeat(net, conn);
            }
            KIND_DEADLINE if s.deadline_armed == seq => {
                if matches!(s.blocked, Some(Blocked::Outbox(_) | Blocked::AwaitingReplies)) {
                    // We are not reading this input, so its silence is ours: count from now.
                    s.last_read = net.now();
                }
                let deadline = s.last_read + ms(2 * s.heartbeat_interval_ms);
                if net.now() >= deadline {
                    s.deadline_armed = 0;
                    self.close(net, conn);
                } else {
                    self.arm_read_deadline(net, conn);
                }
            }
            KIND_FLUSH if s.flush_armed == seq => {
                s.flush_armed = 0;
                net.flush(conn);
            }
            _ => {}
        }
    }
}
