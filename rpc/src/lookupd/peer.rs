//! What an nsqd says about itself in IDENTIFY, what lookupd stores and serves as a producer,
//! and what lookupd answers: the JSON shapes of spec B.1/B.2, with Go's key order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// nsqlookupd's `PeerInfo` as `/lookup` serialises it (struct order). Ports are Go `int`s: the
/// IDENTIFY body may carry any integer, and nsqlookupd stores it unchecked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub remote_address: String,
    pub hostname: String,
    pub broadcast_address: String,
    pub tcp_port: i64,
    pub http_port: i64,
    pub version: String,
    pub topology_zone: String,
    pub topology_region: String,
}

impl PeerInfo {
    /// nsqlookupd's "require all fields" check after IDENTIFY.
    pub fn has_required_fields(&self) -> bool {
        !self.broadcast_address.is_empty()
            && self.tcp_port != 0
            && self.http_port != 0
            && !self.version.is_empty()
    }

    /// `"<broadcast_address>:<http_port>"`, what `/topic/tombstone?node=` is matched against
    /// (plain formatting, no IPv6 brackets, as Go's `fmt.Sprintf("%s:%d")`).
    pub fn tombstone_node(&self) -> String {
        format!("{}:{}", self.broadcast_address, self.http_port)
    }

    /// Decodes an IDENTIFY body the way Go's `json.Unmarshal` fills `PeerInfo`: keys match
    /// exactly or else case-insensitively, unknown keys are ignored, `null` leaves a field
    /// unset, a string field takes only a string and an int field only an integer literal in
    /// `i64`; any type mismatch fails the whole decode (after the rest is read, as Go does).
    /// Top-level `null` decodes to an empty `PeerInfo`.
    pub fn from_identify_body(body: &[u8]) -> Result<PeerInfo, IdentifyDecodeError> {
        // Go replaces invalid UTF-8 inside strings with U+FFFD instead of failing.
        let text = String::from_utf8_lossy(body);
        let value: Value = serde_json::from_str(&text).map_err(|_| IdentifyDecodeError)?;
        let mut peer = PeerInfo::default();
        let object = match value {
            Value::Null => return Ok(peer),
            Value::Object(map) => map,
            _ => return Err(IdentifyDecodeError),
        };
        let mut ok = true;
        for (key, value) in &object {
            let Some(field) = Field::ALL
                .iter()
                .find(|f| f.name() == key)
                .or_else(|| Field::ALL.iter().find(|f| f.name().eq_ignore_ascii_case(key)))
            else {
                continue;
            };
            ok &= peer.set(*field, value);
        }
        if ok {
            Ok(peer)
        } else {
            Err(IdentifyDecodeError)
        }
    }

    fn set(&mut self, field: Field, value: &Value) -> bool {
        if value.is_null() {
            return true;
        }
        let slot_str = match field {
            Field::RemoteAddress => &mut self.remote_address,
            Field::Hostname => &mut self.hostname,
            Field::BroadcastAddress => &mut self.broadcast_address,
            Field::Version => &mut self.version,
            Field::TopologyZone => &mut self.topology_zone,
            Field::TopologyRegion => &mut self.topology_region,
            Field::TcpPort | Field::HttpPort => {
                let Some(n) = value.as_i64() else {
                    return false;
                };
                if field == Field::TcpPort {
                    self.tcp_port = n;
                } else {
                    self.http_port = n;
                }
                return true;
            }
        };
        match value.as_str() {
            Some(s) => {
                *slot_str = s.to_string();
                true
            }
            None => false,
        }
    }
}

/// The IDENTIFY body is not JSON nsqlookupd could decode into its `PeerInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentifyDecodeError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    RemoteAddress,
    Hostname,
    BroadcastAddress,
    TcpPort,
    HttpPort,
    Version,
    TopologyZone,
    TopologyRegion,
}

impl Field {
    const ALL: [Field; 8] = [
        Field::RemoteAddress,
        Field::Hostname,
        Field::BroadcastAddress,
        Field::TcpPort,
        Field::HttpPort,
        Field::Version,
        Field::TopologyZone,
        Field::TopologyRegion,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::RemoteAddress => "remote_address",
            Field::Hostname => "hostname",
            Field::BroadcastAddress => "broadcast_address",
            Field::TcpPort => "tcp_port",
            Field::HttpPort => "http_port",
            Field::Version => "version",
            Field::TopologyZone => "topology_zone",
            Field::TopologyRegion => "topology_region",
        }
    }
}

/// The IDENTIFY body an nsqd sends (spec §8, B.6): a Go map, so keys are alphabetical. v1.3.0
/// has no topology keys; master sends them and lookupd ignores what it does not know.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyRequest {
    pub broadcast_address: String,
    pub hostname: String,
    pub http_port: i64,
    pub tcp_port: i64,
    pub topology_region: String,
    pub topology_zone: String,
    pub version: String,
}

/// nsqlookupd's answer to IDENTIFY: a Go map, so keys are alphabetical. nsqd reads
/// `tcp_port`, `http_port`, `version` and `broadcast_address` from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyResponse {
    #[serde(default)]
    pub broadcast_address: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub http_port: i64,
    #[serde(default)]
    pub tcp_port: i64,
    #[serde(default)]
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpd::to_go_json;

    #[test]
    fn decodes_like_go_unmarshal() {
        let body = br#"{"broadcast_address":"h","hostname":"hn","http_port":4151,"tcp_port":4150,"version":"1.3.0","extra":[1],"TOPOLOGY_ZONE":"z","topology_region":null}"#;
        let p = PeerInfo::from_identify_body(body).unwrap();
        assert_eq!(p.broadcast_address, "h");
        assert_eq!(p.hostname, "hn");
        assert_eq!((p.tcp_port, p.http_port), (4150, 4151));
        assert_eq!(p.version, "1.3.0");
        assert_eq!(p.topology_zone, "z");
        assert_eq!(p.topology_region, "");
        assert!(p.has_required_fields());
        assert_eq!(PeerInfo::from_identify_body(b"null"), Ok(PeerInfo::default()));
        assert!(!PeerInfo::from_identify_body(b"{}").unwrap().has_required_fields());
    }

    #[test]
    fn type_mismatches_fail() {
        for bad in [
            &br#"{"tcp_port":"4150"}"#[..],
            br#"{"tcp_port":4150.5}"#,
            br#"{"tcp_port":1e3}"#,
            br#"{"tcp_port":18446744073709551615}"#,
            br#"{"version":1}"#,
            b"[]",
            b"",
            b"{} x",
            b"{",
        ] {
            assert_eq!(
                PeerInfo::from_identify_body(bad),
                Err(IdentifyDecodeError),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn json_key_orders() {
        let p = PeerInfo {
            remote_address: "127.0.0.1:5".into(),
            hostname: "hn".into(),
            broadcast_address: "h".into(),
            tcp_port: 4150,
            http_port: 4151,
            version: "1.3.0".into(),
            ..PeerInfo::default()
        };
        assert_eq!(
            to_go_json(&p).unwrap(),
            br#"{"remote_address":"127.0.0.1:5","hostname":"hn","broadcast_address":"h","tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"","topology_region":""}"#
        );
        let r = IdentifyResponse {
            broadcast_address: "b".into(),
            hostname: "h".into(),
            http_port: 4161,
            tcp_port: 4160,
            version: "1.3.0".into(),
        };
        assert_eq!(
            to_go_json(&r).unwrap(),
            br#"{"broadcast_address":"b","hostname":"h","http_port":4161,"tcp_port":4160,"version":"1.3.0"}"#
        );
    }
}
