//! nsqlookupd's registration database (spec B.2, B.4): registrations (`client`, `topic`,
//! `channel`) each holding producers keyed by peer id, plus the identified peers themselves.
//!
//! A peer's [`PeerInfo`] and `last_update` are stored once, as nsqlookupd shares one `PeerInfo`
//! between all of a connection's producer entries; each registration keeps its own tombstone
//! state, so a tombstone is per (topic, node). Keys stay when their last producer leaves.
//! Iteration order is sorted (nsqlookupd's is random; clients must not depend on any).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use super::peer::PeerInfo;

/// A peer id: the connection's remote `ip:port`, as nsqlookupd uses it.
pub type PeerId = String;

/// A point in time on both clocks: `Instant` for the rules, Unix nanoseconds for `/debug`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub now: Instant,
    pub unix_ns: i64,
}

impl Clock {
    /// The current time.
    pub fn system() -> Clock {
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Clock {
            now: Instant::now(),
            unix_ns,
        }
    }

    /// This clock moved forward by `d` (tests).
    pub fn after(self, d: Duration) -> Clock {
        Clock {
            now: self.now + d,
            unix_ns: self.unix_ns + d.as_nanos() as i64,
        }
    }
}

/// Go's zero `time.Time` as `UnixNano()`: what `/debug` shows for a producer never tombstoned.
pub const GO_ZERO_TIME_UNIX_NS: i64 = -6_795_364_578_871_345_152;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Client,
    Topic,
    Channel,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Client => "client",
            Category::Topic => "topic",
            Category::Channel => "channel",
        }
    }
}

/// nsqlookupd's `Registration{Category, Key, SubKey}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Registration {
    pub category: Category,
    pub key: String,
    pub subkey: String,
}

impl Registration {
    pub fn client() -> Registration {
        Registration {
            category: Category::Client,
            key: String::new(),
            subkey: String::new(),
        }
    }

    pub fn topic(topic: &str) -> Registration {
        Registration {
            category: Category::Topic,
            key: topic.to_string(),
            subkey: String::new(),
        }
    }

    pub fn channel(topic: &str, channel: &str) -> Registration {
        Registration {
            category: Category::Channel,
            key: topic.to_string(),
            subkey: channel.to_string(),
        }
    }

    /// nsqlookupd's `IsMatch`: `*` matches any key or subkey.
    pub fn is_match(&self, category: Category, key: &str, subkey: &str) -> bool {
        self.category == category
            && (key == "*" || self.key == key)
            && (subkey == "*" || self.subkey == subkey)
    }
}

impl fmt::Display for Registration {
    /// `category:key:subkey`, the `/debug` key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.category.as_str(), self.key, self.subkey)
    }
}

/// An identified connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub info: PeerInfo,
    /// Set at IDENTIFY and on every PING.
    pub last_update: Clock,
}

/// One peer's entry in one registration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Producer {
    /// Set once by `/topic/tombstone`; stays set (the lifetime decides whether it counts).
    pub tombstoned: bool,
    pub tombstoned_at: Option<Clock>,
}

impl Producer {
    /// nsqlookupd's `IsTombstoned(lifetime)`.
    pub fn is_tombstoned(&self, lifetime: Duration, now: Instant) -> bool {
        self.tombstoned
            && self
                .tombstoned_at
                .is_some_and(|at| now.saturating_duration_since(at.now) < lifetime)
    }

    /// `tombstoned_at` as `/debug` prints it.
    pub fn tombstoned_at_unix_ns(&self) -> i64 {
        self.tombstoned_at.map_or(GO_ZERO_TIME_UNIX_NS, |at| at.unix_ns)
    }
}

/// The whole registry.
#[derive(Clone, Debug, Default)]
pub struct RegistrationDb {
    peers: HashMap<PeerId, Peer>,
    registrations: BTreeMap<Registration, BTreeMap<PeerId, Producer>>,
}

impl RegistrationDb {
    pub fn new() -> RegistrationDb {
        RegistrationDb::default()
    }

    // --- peers --------------------------------------------------------------------------

    /// A connection identified: remembers its info and registers it under `client`.
    pub fn identify(&mut self, id: &str, info: PeerInfo, clock: Clock) {
        self.peers.insert(
            id.to_string(),
            Peer {
                info,
                last_update: clock,
            },
        );
        self.add_producer(Registration::client(), id);
    }

    /// PING from an identified connection.
    pub fn touch(&mut self, id: &str, clock: Clock) {
        if let Some(peer) = self.peers.get_mut(id) {
            peer.last_update = clock;
        }
    }

    pub fn peer(&self, id: &str) -> Option<&Peer> {
        self.peers.get(id)
    }

    /// The connection closed: its producer entries go (registration keys stay), as does its
    /// info. Returns the registrations it was removed from.
    pub fn disconnect(&mut self, id: &str) -> Vec<Registration> {
        let removed = self.lookup_registrations(id);
        for r in &removed {
            self.remove_producer(r, id);
        }
        self.peers.remove(id);
        removed
    }

    /// Whether `id` counts as active: seen within `inactive_timeout` (nsqlookupd: `now -
    /// lastUpdate > timeout` is inactive).
    pub fn is_active(&self, id: &str, inactive_timeout: Duration, now: Instant) -> bool {
        self.peers
            .get(id)
            .is_some_and(|p| now.saturating_duration_since(p.last_update.now) <= inactive_timeout)
    }

    // --- registrations ------------------------------------------------------------------

    /// Adds a key with no producers (HTTP create endpoints).
    pub fn add_registration(&mut self, r: Registration) {
        self.registrations.entry(r).or_default();
    }

    /// Adds `id` under `r`; an existing entry (and its tombstone) is kept. True if added.
    pub fn add_producer(&mut self, r: Registration, id: &str) -> bool {
        let producers = self.registrations.entry(r).or_default();
        if producers.contains_key(id) {
            return false;
        }
        producers.insert(id.to_string(), Producer::default());
        true
    }

    /// Removes `id` from `r`: (whether it was there, producers left). The key stays.
    pub fn remove_producer(&mut self, r: &Registration, id: &str) -> (bool, usize) {
        match self.registrations.get_mut(r) {
            None => (false, 0),
            Some(producers) => {
                let removed = producers.remove(id).is_some();
                (removed, producers.len())
            }
        }
    }

    pub fn remove_registration(&mut self, r: &Registration) {
        self.registrations.remove(r);
    }

    /// nsqlookupd's `FindRegistrations` (with `*` wildcards).
    pub fn find_registrations(&self, category: Category, key: &str, subkey: &str) -> Vec<Registration> {
        self.registrations
            .keys()
            .filter(|r| r.is_match(category, key, subkey))
            .cloned()
            .collect()
    }

    /// nsqlookupd's `FindProducers`: the producers of `r`, whose key or subkey may be `*`; with
    /// a wildcard, each peer appears once (its first entry, in registration order).
    pub fn producers(&self, r: &Registration) -> Vec<(&PeerId, &Producer)> {
        if r.key != "*" && r.subkey != "*" {
            return self.registrations.get(r).into_iter().flatten().collect();
        }
        let mut seen: Vec<(&PeerId, &Producer)> = Vec::new();
        for (k, producers) in &self.registrations {
            if !k.is_match(r.category, &r.key, &r.subkey) {
                continue;
            }
            for (id, producer) in producers {
                if !seen.iter().any(|(s, _)| *s == id) {
                    seen.push((id, producer));
                }
            }
        }
        seen
    }

    /// Every registration `id` is a producer of (nsqlookupd's `LookupRegistrations`).
    pub fn lookup_registrations(&self, id: &str) -> Vec<Registration> {
        self.registrations
            .iter()
            .filter(|(_, producers)| producers.contains_key(id))
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// All registrations with their producers, for `/debug`.
    pub fn iter(&self) -> impl Iterator<Item = (&Registration, &BTreeMap<PeerId, Producer>)> {
        self.registrations.iter()
    }

    /// `/topic/tombstone`: tombstones every producer of `topic` whose
    /// `broadcast_address:http_port` is `node`. Returns how many.
    pub fn tombstone(&mut self, topic: &str, node: &str, clock: Clock) -> usize {
        // Which entries `FindProducers` would hand back (one per peer under a `*` topic).
        let mut targets: Vec<(Registration, PeerId)> = Vec::new();
        for (k, producers) in &self.registrations {
            if !k.is_match(Category::Topic, topic, "") {
                continue;
            }
            for id in producers.keys() {
                let matches = self
                    .peers
                    .get(id)
                    .is_some_and(|p| p.info.tombstone_node() == node);
                if matches && !targets.iter().any(|(_, t)| t == id) {
                    targets.push((k.clone(), id.clone()));
                }
            }
        }
        for (k, id) in &targets {
            if let Some(producer) = self.registrations.get_mut(k).and_then(|m| m.get_mut(id)) {
                producer.tombstoned = true;
                producer.tombstoned_at = Some(clock);
            }
        }
        targets.len()
    }

    /// The active producers of `r` (nsqlookupd's `FilterByActive`): seen within
    /// `inactive_timeout` and not tombstoned within `tombstone_lifetime` (zero: tombstones
    /// ignored, as `/nodes` asks).
    pub fn active_producers(
        &self,
        r: &Registration,
        inactive_timeout: Duration,
        tombstone_lifetime: Duration,
        now: Instant,
    ) -> Vec<(&PeerId, &Peer, &Producer)> {
        self.producers(r)
            .into_iter()
            .filter_map(|(id, producer)| {
                let peer = self.peers.get(id)?;
                let active = self.is_active(id, inactive_timeout, now)
                    && !producer.is_tombstoned(tombstone_lifetime, now);
                active.then_some((id, peer, producer))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(bcast: &str, http: i64) -> PeerInfo {
        PeerInfo {
            broadcast_address: bcast.into(),
            tcp_port: 4150,
            http_port: http,
            version: "1.3.0".into(),
            ..PeerInfo::default()
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn producers_are_idempotent_and_keys_stay() {
        let c = Clock::system();
        let mut db = RegistrationDb::new();
        db.identify("a", info("h", 1), c);
        assert!(db.add_producer(Registration::topic("t"), "a"));
        assert!(!db.add_producer(Registration::topic("t"), "a"));
        assert_eq!(db.remove_producer(&Registration::topic("t"), "a"), (true, 0));
        assert_eq!(db.remove_producer(&Registration::topic("t"), "a"), (false, 0));
        assert_eq!(
            db.find_registrations(Category::Topic, "*", ""),
            [Registration::topic("t")]
        );
        assert_eq!(db.remove_producer(&Registration::topic("x"), "a"), (false, 0));
    }

    #[test]
    fn wildcards() {
        let mut db = RegistrationDb::new();
        db.add_registration(Registration::channel("t", "c1"));
        db.add_registration(Registration::channel("t", "c2"));
        db.add_registration(Registration::channel("u", "c1"));
        db.add_registration(Registration::topic("t"));
        assert_eq!(db.find_registrations(Category::Channel, "t", "*").len(), 2);
        assert_eq!(db.find_registrations(Category::Channel, "*", "c1").len(), 2);
        assert_eq!(db.find_registrations(Category::Channel, "*", "*").len(), 3);
        assert_eq!(db.find_registrations(Category::Topic, "t", "").len(), 1);
        assert_eq!(Registration::channel("t", "c").to_string(), "channel:t:c");
        assert_eq!(Registration::client().to_string(), "client::");
    }

    #[test]
    fn tombstones_expire_but_stay_set() {
        let c = Clock::system();
        let mut db = RegistrationDb::new();
        db.identify("a", info("h", 4151), c);
        db.identify("b", info("h", 4152), c);
        db.add_producer(Registration::topic("t"), "a");
        db.add_producer(Registration::topic("t"), "b");
        assert_eq!(db.tombstone("t", "h:4151", c), 1);
        assert_eq!(db.tombstone("nope", "h:4151", c), 0);
        let r = Registration::topic("t");
        let life = Duration::from_secs(45);
        let ids = |db: &RegistrationDb, at: Clock| -> Vec<String> {
            db.active_producers(&r, MIN * 5, life, at.now)
                .into_iter()
                .map(|(id, _, _)| id.clone())
                .collect()
        };
        assert_eq!(ids(&db, c.after(Duration::from_secs(44))), ["b"]);
        assert_eq!(ids(&db, c.after(Duration::from_secs(45))), ["a", "b"]);
        let p = db.producers(&r)[0].1;
        assert!(p.tombstoned && p.tombstoned_at_unix_ns() == c.unix_ns);
    }

    #[test]
    fn inactivity_and_disconnect() {
        let c = Clock::system();
        let mut db = RegistrationDb::new();
        db.identify("a", info("h", 1), c);
        db.add_producer(Registration::channel("t", "c"), "a");
        db.add_producer(Registration::topic("t"), "a");
        assert!(db.is_active("a", MIN, c.after(MIN).now));
        assert!(!db.is_active("a", MIN, c.after(MIN + Duration::from_millis(1)).now));
        db.touch("a", c.after(MIN));
        assert!(db.is_active("a", MIN, c.after(MIN * 2).now));
        let removed = db.disconnect("a");
        assert_eq!(removed.len(), 3);
        assert!(db.peer("a").is_none());
        assert_eq!(db.iter().count(), 3, "keys stay");
        assert!(db.iter().all(|(_, p)| p.is_empty()));
    }
}
