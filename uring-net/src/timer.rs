//! A hashed timer wheel with 1 ms ticks: O(1) insert, and expiry that costs one slot per
//! elapsed tick, so thousands of heartbeat and timeout timers cost nothing while they wait.
//!
//! A timer due `d` ticks from the epoch sits in slot `d % SLOTS`; timers further away than one
//! revolution share the slot and stay there (their deadline is compared on each visit), which
//! is the "rounds" scheme without a rounds counter. Timers never fire early: a deadline is
//! rounded *up* to a tick and a tick counts as elapsed only once it has fully passed.

use std::time::{Duration, Instant};

/// Slots in the wheel: one revolution is 512 ms.
const SLOTS: usize = 512;
/// Must stay 1 ms: `instant_of` converts ticks with `Duration::from_millis`.
const TICK: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline_tick: u64,
    /// Insertion order, so timers due on the same tick fire in the order they were set.
    seq: u64,
    token: u64,
}

pub(crate) struct TimerWheel {
    epoch: Instant,
    slots: Box<[Vec<Entry>]>,
    /// Every tick up to and including this one has been expired.
    processed_tick: u64,
    /// Timers set for a tick that was already processed; they fire on the next `expire`.
    overdue: Vec<Entry>,
    len: usize,
    next_seq: u64,
    /// Smallest deadline tick of any pending timer, when known; `None` means "rescan".
    earliest_cache: Option<u64>,
}

impl TimerWheel {
    pub fn new(epoch: Instant) -> TimerWheel {
        TimerWheel {
            epoch,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            processed_tick: 0,
            overdue: Vec::new(),
            len: 0,
            next_seq: 0,
            earliest_cache: None,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Sets a timer that fires `token` at the first `expire(now)` with `now >= at`.
    pub fn insert(&mut self, at: Instant, token: u64) {
        let deadline_tick = self.tick_ceil(at);
        let entry = Entry {
            deadline_tick,
            seq: self.next_seq,
            token,
        };
        self.next_seq += 1;
        if deadline_tick <= self.processed_tick {
            self.overdue.push(entry);
        } else {
            self.slots[(deadline_tick % SLOTS as u64) as usize].push(entry);
        }
        if self.len == 0 {
            self.earliest_cache = Some(deadline_tick);
        } else if let Some(earliest) = self.earliest_cache {
            self.earliest_cache = Some(earliest.min(deadline_tick));
        }
        self.len += 1;
    }

    /// Moves up to `max` expired tokens into `out`, earliest deadline first. Returns whether
    /// expired timers were left behind for the next call.
    pub fn expire(&mut self, now: Instant, max: usize, out: &mut Vec<u64>) -> bool {
        let now_tick = self.tick_floor(now);
        let mut expired = std::mem::take(&mut self.overdue);
        if now_tick > self.processed_tick {
            let elapsed = now_tick - self.processed_tick;
            let visits = elapsed.min(SLOTS as u64);
            for step in 1..=visits {
                let slot = &mut self.slots[((self.processed_tick + step) % SLOTS as u64) as usize];
                let mut i = 0;
                while i < slot.len() {
                    if slot[i].deadline_tick <= now_tick {
                        expired.push(slot.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
            }
            self.processed_tick = now_tick;
        }
        expired.sort_unstable_by_key(|e| (e.deadline_tick, e.seq));
        let fire = expired.len().min(max);
        out.extend(expired[..fire].iter().map(|e| e.token));
        self.len -= fire;
        // Timers beyond the budget are due already: keep them for the next call.
        self.overdue = expired.split_off(fire);
        if fire > 0 {
            self.earliest_cache = None;
        }
        !self.overdue.is_empty()
    }

    /// When the earliest pending timer is due (`None` when there is none).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        if !self.overdue.is_empty() {
            return Some(self.instant_of(self.processed_tick));
        }
        let earliest = match self.earliest_cache {
            Some(tick) => tick,
            None => {
                let tick = self.scan_earliest();
                self.earliest_cache = Some(tick);
                tick
            }
        };
        Some(self.instant_of(earliest))
    }

    fn scan_earliest(&self) -> u64 {
        self.slots
            .iter()
            .flatten()
            .map(|e| e.deadline_tick)
            .min()
            .unwrap_or(self.processed_tick + 1)
    }

    fn tick_ceil(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch);
        let nanos = since.as_nanos();
        let tick_nanos = TICK.as_nanos();
        nanos.div_ceil(tick_nanos) as u64
    }

    fn tick_floor(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_nanos() / TICK.as_nanos()) as u64
    }

    /// The instant tick `tick` has fully passed.
    fn instant_of(&self, tick: u64) -> Instant {
        self.epoch + Duration::from_millis(tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order_and_never_early() {
        let epoch = Instant::now();
        let mut wheel = TimerWheel::new(epoch);
        // Spread over more than one revolution, inserted out of order.
        let offsets_ms = [700u64, 3, 3, 50, 1, 511, 512, 513, 1500, 0];
        for (i, ms) in offsets_ms.iter().enumerate() {
            wheel.insert(epoch + Duration::from_millis(*ms), i as u64);
        }
        assert_eq!(wheel.len(), offsets_ms.len());

        let mut fired = Vec::new();
        let mut fired_at = Vec::new();
        let mut now = epoch;
        while wheel.len() > 0 {
            let mut out = Vec::new();
            wheel.expire(now, usize::MAX, &mut out);
            for token in out {
                fired_at.push((token, now));
                fired.push(token);
            }
            now += Duration::from_micros(700);
            assert!(now < epoch + Duration::from_secs(3), "wheel never drained");
        }
        let mut expected: Vec<u64> = (0..offsets_ms.len() as u64).collect();
        expected.sort_by_key(|&i| (offsets_ms[i as usize], i));
        assert_eq!(fired, expected);
        for (token, at) in fired_at {
            let deadline = epoch + Duration::from_millis(offsets_ms[token as usize]);
            assert!(at >= deadline, "token {token} fired early");
            assert!(
                at < deadline + Duration::from_millis(2),
                "token {token} fired late"
            );
        }
    }

    #[test]
    fn sub_tick_deadline_rounds_up() {
        let epoch = Instant::now();
        let mut wheel = TimerWheel::new(epoch);
        wheel.insert(epoch + Duration::from_micros(1500), 7);
        let mut out = Vec::new();
        wheel.expire(epoch + Duration::from_micros(1600), 10, &mut out);
        assert!(out.is_empty(), "fired before its deadline");
        wheel.expire(epoch + Duration::from_micros(2000), 10, &mut out);
        assert_eq!(out, vec![7]);
    }

    #[test]
    fn next_deadline_and_budget() {
        let epoch = Instant::now();
        let mut wheel = TimerWheel::new(epoch);
        assert_eq!(wheel.next_deadline(), None);
        wheel.insert(epoch + Duration::from_millis(2000), 1);
        wheel.insert(epoch + Duration::from_millis(20), 2);
        assert_eq!(wheel.next_deadline(), Some(epoch + Duration::from_millis(20)));
        for t in 10..20 {
            wheel.insert(epoch + Duration::from_millis(5), t);
        }
        let mut out = Vec::new();
        let more = wheel.expire(epoch + Duration::from_millis(30), 4, &mut out);
        assert!(more);
        assert_eq!(out, vec![10, 11, 12, 13]);
        out.clear();
        let more = wheel.expire(epoch + Duration::from_millis(30), 100, &mut out);
        assert!(!more);
        assert_eq!(out, vec![14, 15, 16, 17, 18, 19, 2]);
        assert_eq!(wheel.next_deadline(), Some(epoch + Duration::from_millis(2000)));
        // A timer set in the past fires on the next expire.
        wheel.insert(epoch, 99);
        out.clear();
        wheel.expire(epoch + Duration::from_millis(31), 100, &mut out);
        assert_eq!(out, vec![99]);
    }
}
