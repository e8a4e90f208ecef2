//! One nsqlookupd TCP connection (spec B.1): the magic, then commands applied to the
//! registration database in order, each answered with one framed response. Every error closes.

use bytes::{Buf, BytesMut};

use super::codec::{decode_command, encode_response, Command, ProtocolError, MAGIC_V1};
use super::db::{Category, Clock, Registration, RegistrationDb};
use super::options::LookupdOptions;
use super::peer::IdentifyResponse;
use crate::httpd::to_go_json;

/// Why a connection must be closed (its last response is already in `out`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    /// The first four bytes were not `"  V1"`; `E_BAD_PROTOCOL` was sent.
    BadProtocol { magic: Vec<u8> },
    /// A protocol error, sent as `"<code> <text>"`.
    Error(ProtocolError),
}

/// The state of one connection.
#[derive(Clone, Debug)]
pub struct TcpSession {
    /// The remote `ip:port`: the peer id and the `remote_address` lookupd reports.
    peer_id: String,
    magic_read: bool,
    identified: bool,
}

impl TcpSession {
    pub fn new(peer_id: String) -> TcpSession {
        TcpSession {
            peer_id,
            magic_read: false,
            identified: false,
        }
    }

    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    pub fn is_identified(&self) -> bool {
        self.identified
    }

    /// Consumes every whole command at the front of `input`, appending framed responses to
    /// `out`. `Err`: send `out` and close; nothing more is read.
    pub fn on_input(
        &mut self,
        input: &mut BytesMut,
        db: &mut RegistrationDb,
        options: &LookupdOptions,
        clock: Clock,
        out: &mut Vec<u8>,
    ) -> Result<(), Closing> {
        if !self.magic_read {
            if input.len() < MAGIC_V1.len() {
                return Ok(());
            }
            let magic = input.split_to(MAGIC_V1.len());
            if &magic[..] != MAGIC_V1 {
                encode_response(b"E_BAD_PROTOCOL", out);
                return Err(Closing::BadProtocol {
                    magic: magic.to_vec(),
                });
            }
            self.magic_read = true;
        }
        loop {
            match decode_command(input, self.identified) {
                Ok(None) => return Ok(()),
                Ok(Some((command, used))) => {
                    input.advance(used);
                    let response = self.exec(command, db, options, clock);
                    encode_response(&response, out);
                }
                Err(e) => {
                    encode_response(&e.payload(), out);
                    return Err(Closing::Error(e));
                }
            }
        }
    }

    fn exec(
        &mut self,
        command: Command,
        db: &mut RegistrationDb,
        options: &LookupdOptions,
        clock: Clock,
    ) -> Vec<u8> {
        let id = self.peer_id.as_str();
        match command {
            Command::Ping => {
                if self.identified {
                    db.touch(id, clock);
                }
            }
            Command::Identify(mut peer) => {
                peer.remote_address = self.peer_id.clone();
                db.identify(id, peer, clock);
                self.identified = true;
                let response = IdentifyResponse {
                    broadcast_address: options.broadcast_address.clone(),
                    hostname: options.hostname.clone(),
                    http_port: i64::from(options.http_port),
                    tcp_port: i64::from(options.tcp_port),
                    version: squall_core::NSQD_VERSION.to_string(),
                };
                // nsqlookupd answers OK when its map fails to marshal.
                return to_go_json(&response).unwrap_or_else(|_| b"OK".to_vec());
            }
            Command::Register { topic, channel } => {
                if let Some(channel) = &channel {
                    db.add_producer(Registration::channel(&topic, channel), id);
                }
                db.add_producer(Registration::topic(&topic), id);
            }
            Command::Unregister { topic, channel } => match channel {
                Some(channel) => {
                    let r = Registration::channel(&topic, &channel);
                    let (_, left) = db.remove_producer(&r, id);
                    if left == 0 && channel.ends_with("#ephemeral") {
                        db.remove_registration(&r);
                    }
                }
                None => {
                    // A topic unregistration also takes the peer off every channel of the
                    // topic (nsqlookupd warns when that removes anything; nsqd never needs it).
                    for r in db.find_registrations(Category::Channel, &topic, "*") {
                        db.remove_producer(&r, id);
                    }
                    let r = Registration::topic(&topic);
                    let (_, left) = db.remove_producer(&r, id);
                    if left == 0 && topic.ends_with("#ephemeral") {
                        db.remove_registration(&r);
                    }
                }
            },
        }
        b"OK".to_vec()
    }

    /// The connection is gone: its producers leave every registration.
    pub fn on_closed(&mut self, db: &mut RegistrationDb) -> Vec<Registration> {
        if !self.identified {
            return Vec::new();
        }
        self.identified = false;
        db.disconnect(&self.peer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookupd::codec::{decode_response, Reply, RESPONSE_BYTES_MAX};

    const BODY: &[u8] =
        br#"{"broadcast_address":"h","hostname":"hn","http_port":4151,"tcp_port":4150,"version":"1.3.0"}"#;

    fn options() -> LookupdOptions {
        LookupdOptions {
            broadcast_address: "lookupd-b".into(),
            hostname: "lookupd-h".into(),
            tcp_port: 4160,
            http_port: 4161,
            ..LookupdOptions::default()
        }
    }

    struct Fixture {
        db: RegistrationDb,
        session: TcpSession,
        clock: Clock,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                db: RegistrationDb::new(),
                session: TcpSession::new("127.0.0.1:5000".into()),
                clock: Clock::system(),
            }
        }

        /// Feeds `bytes`, returns the raw output and the closing reason.
        fn feed(&mut self, bytes: &[u8]) -> (Vec<u8>, Result<(), Closing>) {
            let mut input = BytesMut::from(bytes);
            let mut out = Vec::new();
            let r = self
                .session
                .on_input(&mut input, &mut self.db, &options(), self.clock, &mut out);
            (out, r)
        }

        fn replies(&mut self, bytes: &[u8]) -> Vec<Reply> {
            let (out, r) = self.feed(bytes);
            assert_eq!(r, Ok(()));
            let mut replies = Vec::new();
            let mut pos = 0;
            while let Some((reply, n)) = decode_response(&out[pos..], RESPONSE_BYTES_MAX).unwrap() {
                replies.push(reply);
                pos += n;
            }
            assert_eq!(pos, out.len());
            replies
        }
    }

    fn identify() -> Vec<u8> {
        let mut v = b"  V1IDENTIFY\n".to_vec();
        v.extend_from_slice(&(BODY.len() as u32).to_be_bytes());
        v.extend_from_slice(BODY);
        v
    }

    #[test]
    fn identify_answers_lookupds_own_addresses() {
        let mut f = Fixture::new();
        let (out, r) = f.feed(&identify());
        assert_eq!(r, Ok(()));
        let json = br#"{"broadcast_address":"lookupd-b","hostname":"lookupd-h","http_port":4161,"tcp_port":4160,"version":"1.3.0"}"#;
        assert_eq!(&out[..4], &(json.len() as u32).to_be_bytes());
        assert_eq!(&out[4..], json);
        let peer = f.db.peer("127.0.0.1:5000").unwrap();
        assert_eq!(peer.info.remote_address, "127.0.0.1:5000");
        assert_eq!(peer.info.hostname, "hn");
        assert!(f.session.is_identified());
    }

    #[test]
    fn bad_magic_is_answered_and_closed() {
        let mut f = Fixture::new();
        let (out, r) = f.feed(b"  V2PING\n");
        assert_eq!(out, b"\x00\x00\x00\x0eE_BAD_PROTOCOL");
        assert_eq!(
            r,
            Err(Closing::BadProtocol {
                magic: b"  V2".to_vec()
            })
        );
        let mut f = Fixture::new();
        assert_eq!(f.feed(b"  V"), (Vec::new(), Ok(())));
    }

    #[test]
    fn register_unregister_and_close() {
        let mut f = Fixture::new();
        assert_eq!(f.feed(&identify()).1, Ok(()));
        assert_eq!(
            f.replies(b"REGISTER t c\nREGISTER t c#ephemeral\nREGISTER u\nPING\n"),
            [Reply::Ok, Reply::Ok, Reply::Ok, Reply::Ok]
        );
        let id = "127.0.0.1:5000";
        let regs = f.db.lookup_registrations(id);
        assert_eq!(regs.len(), 5, "{regs:?}"); // client, topic t, channels c and c#ephemeral, topic u
        f.replies(b"UNREGISTER t c#ephemeral\nUNREGISTER t c\n");
        // The ephemeral channel's key is gone; the durable one stays with no producers.
        assert_eq!(
            f.db.find_registrations(Category::Channel, "t", "*"),
            [Registration::channel("t", "c")]
        );
        f.replies(b"REGISTER t c\nUNREGISTER t\n");
        assert_eq!(f.db.producers(&Registration::channel("t", "c")).len(), 0);
        assert_eq!(f.db.producers(&Registration::topic("t")).len(), 0);
        f.replies(b"REGISTER e#ephemeral\nUNREGISTER e#ephemeral\n");
        assert!(f
            .db
            .find_registrations(Category::Topic, "e#ephemeral", "")
            .is_empty());
        assert_eq!(f.session.on_closed(&mut f.db).len(), 2); // client and topic u
        assert!(f.db.peer(id).is_none());
        assert!(f.db.find_registrations(Category::Topic, "u", "").len() == 1);
    }

    #[test]
    fn errors_are_framed_and_fatal() {
        let mut f = Fixture::new();
        let (out, r) = f.feed(b"  V1PING\nREGISTER t\nPING\n");
        let mut want = Vec::new();
        encode_response(b"OK", &mut want);
        encode_response(b"E_INVALID client must IDENTIFY", &mut want);
        assert_eq!(out, want);
        assert!(matches!(r, Err(Closing::Error(e)) if e.code == "E_INVALID"));

        let mut f = Fixture::new();
        assert_eq!(f.feed(&identify()).1, Ok(()));
        let (out, r) = f.feed(b"IDENTIFY\n");
        assert_eq!(&out[4..], b"E_INVALID cannot IDENTIFY again");
        assert!(r.is_err());
    }

    #[test]
    fn ping_refreshes_last_update() {
        let mut f = Fixture::new();
        assert_eq!(f.feed(&identify()).1, Ok(()));
        let later = f.clock.after(std::time::Duration::from_secs(10));
        f.clock = later;
        f.replies(b"PING\n");
        assert_eq!(f.db.peer("127.0.0.1:5000").unwrap().last_update, later);
    }
}
