//! What nsqlookupd's handlers need to know about the server they run in.

use std::time::Duration;

/// nsqlookupd's runtime options (flag defaults in `squall::lookupd`) and its own addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupdOptions {
    /// `--broadcast-address` (default: the OS hostname), returned by IDENTIFY.
    pub broadcast_address: String,
    /// The OS hostname, returned by IDENTIFY.
    pub hostname: String,
    /// The TCP and HTTP ports actually listened on, returned by IDENTIFY.
    pub tcp_port: u16,
    pub http_port: u16,
    /// `--inactive-producer-timeout` (300s): producers not seen for longer are hidden.
    pub inactive_producer_timeout: Duration,
    /// `--tombstone-lifetime` (45s): how long a tombstone hides a producer.
    pub tombstone_lifetime: Duration,
}

impl Default for LookupdOptions {
    fn default() -> LookupdOptions {
        LookupdOptions {
            broadcast_address: String::new(),
            hostname: String::new(),
            tcp_port: 4160,
            http_port: 4161,
            inactive_producer_timeout: Duration::from_secs(300),
            tombstone_lifetime: Duration::from_secs(45),
        }
    }
}
