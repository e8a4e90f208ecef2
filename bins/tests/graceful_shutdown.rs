//! On shutdown the node stops accepting, consumers see CLOSE_WAIT, every connection is closed and
//! the node exits cleanly.

mod common;

use std::net::TcpStream;

use common::*;
use squall_core::options::Options;

#[test]
fn shutdown_sends_close_wait_to_consumers_and_closes_everyone() {
    let n = TestNode::start(Options::default());
    let addr = n.addr;
    let mut consumer = n.client();
    consumer.sub("drain", "ch");
    let mut producer = n.client();
    producer.publish("drain", b"x");
    producer.expect_ok();
    n.stop();
    consumer.expect_response(b"CLOSE_WAIT");
    consumer.expect_closed();
    producer.expect_closed();
    assert!(TcpStream::connect(addr).is_err(), "listener still open");
}
