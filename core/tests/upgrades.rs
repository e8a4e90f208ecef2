//! Claim: IDENTIFY asks the runtime for the layers it negotiated, in nsqd's order and only
//! after its JSON reply (never for a plain `OK` reply, never both compressions, never a layer
//! the server does not offer), and `--tls-required` refuses every other command until the
//! connection has upgraded (spec §2.2, §4.1).

mod common;

use common::*;
use squall_core::broker::Upgrade;
use squall_core::options::Options;

fn offering() -> Options {
    Options {
        snappy: true,
        deflate: true,
        tls_enabled: true,
        max_deflate_level: 5,
        ..Options::default()
    }
}

fn upgrades_after(opts: Options, json: &str) -> (Vec<Upgrade>, Vec<Frame>) {
    let mut c = Cluster::single(opts);
    let cl = c.connect_v2(0);
    c.send(cl, &identify_cmd(json));
    let frames = c.frames(cl);
    let upgrades = c.nets[0].upgrades.iter().map(|(_, u)| *u).collect();
    (upgrades, frames)
}

#[test]
fn negotiated_layers_are_asked_for_after_the_reply() {
    let (ups, frames) = upgrades_after(
        offering(),
        r#"{"feature_negotiation":true,"tls_v1":true,"deflate":true,"deflate_level":9}"#,
    );
    assert_eq!(
        ups,
        [Upgrade {
            tls: true,
            snappy: false,
            deflate_level: Some(5),
        }]
    );
    // The JSON reply, then the fake runtime's `OK` per layer.
    assert_eq!(frames.len(), 3);
    let Frame::Response(json) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert!(String::from_utf8_lossy(json).contains(r#""tls_v1":true,"deflate":true,"deflate_level":5"#));

    let (ups, _) = upgrades_after(offering(), r#"{"feature_negotiation":true,"snappy":true}"#);
    assert_eq!(
        ups,
        [Upgrade {
            tls: false,
            snappy: true,
            deflate_level: None,
        }]
    );
}

#[test]
fn nothing_is_asked_for_without_negotiation_or_an_offer() {
    let (ups, frames) = upgrades_after(offering(), r#"{"tls_v1":true,"snappy":true}"#);
    assert!(ups.is_empty());
    assert_eq!(frames, [ok()]);
    let (ups, _) = upgrades_after(
        Options::default(),
        r#"{"feature_negotiation":true,"tls_v1":true,"snappy":true}"#,
    );
    assert!(ups.is_empty());
    let (ups, frames) = upgrades_after(
        offering(),
        r#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#,
    );
    assert!(ups.is_empty());
    assert_eq!(
        frames,
        [Frame::error(
            b"E_IDENTIFY_FAILED cannot enable both deflate and snappy compression"
        )]
    );
}

#[test]
fn tls_required_refuses_commands_until_the_upgrade() {
    let opts = Options {
        tls_required: true,
        ..offering()
    };
    let mut c = Cluster::single(opts.clone());
    let cl = c.connect_v2(0);
    c.send(cl, b"NOP\n");
    assert_eq!(
        c.frames(cl),
        [Frame::error(
            b"E_INVALID cannot NOP in current state (TLS required)"
        )]
    );
    assert!(c.is_closed(cl));

    let mut c = Cluster::single(opts);
    let cl = c.connect_v2(0);
    c.send(cl, &identify_cmd(r#"{"feature_negotiation":true,"tls_v1":true}"#));
    assert_eq!(c.frames(cl).len(), 2);
    c.send(cl, &pub_cmd("t", b"x"));
    assert_eq!(c.frames(cl), [ok()]);
}
