//! gRPC on the shard loop: h2 connections from `squall_rpc::grpc` run as tasks on this shard's
//! local executor; this front moves bytes between the runtime and their in-memory transports,
//! submits the calls' broker requests with `Broker::submit` (as the HTTP front does) and wakes
//! calls when answers or deadlines arrive. Every event ends with `pump`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use futures::executor::{LocalPool, LocalSpawner};
use futures::task::LocalSpawnExt;

use crate::engine::Handoff;
use crate::engine::IoNet;
use squall_core::broker::{Broker, Net, Origin, Response as BrokerResponse};
use squall_core::options::Options;
use squall_rpc::grpc::health::Health;
use squall_rpc::grpc::local::{Bridge, Timers};
use squall_rpc::grpc::server::{serve_connection, Ctx, Limits};
use squall_rpc::grpc::subscribe::SubHub;
use squall_rpc::grpc::transport::{Pipe, Ready};

/// Timer token of the front's one deadline timer (broker tokens use kinds 1-5 in the top bits).
pub const GRPC_TIMER_TOKEN: u64 = 0xf << 60;
/// The `Origin::conn` of broker requests made by gRPC calls; no runtime connection has it.
pub const GRPC_ORIGIN_CONN: u64 = u64::MAX;
/// Rounds of "feed input, run tasks, submit requests" per event before yielding to the loop.
const PUMP_ROUNDS_MAX: usize = 64;

pub struct GrpcFront {
    pool: LocalPool,
    spawner: LocalSpawner,
    ctx: Rc<Ctx>,
    conns: HashMap<u64, Pipe>,
    /// Connections whose pipes have output or whose task ended (the pipes list themselves).
    ready: Ready,
    /// Connections whose runtime input is not all handed to h2 yet.
    hungry: Vec<u64>,
    /// When the runtime timer is armed for, if it is.
    armed: Option<Instant>,
}

impl GrpcFront {
    pub fn new(options: &Options, start_time_ns: i64) -> GrpcFront {
        let pool = LocalPool::new();
        let spawner = pool.spawner();
        let ctx = Rc::new(Ctx {
            bridge: Rc::new(RefCell::new(Bridge::default())),
            timers: Rc::new(RefCell::new(Timers::default())),
            health: Rc::new(RefCell::new(Health::default())),
            subs: Rc::new(RefCell::new(SubHub::default())),
            limits: Limits::from_options(options),
            start_time_ns,
        });
        GrpcFront {
            pool,
            spawner,
            ctx,
            conns: HashMap::new(),
            ready: Ready::default(),
            hungry: Vec::new(),
            armed: None,
        }
    }

    /// The subscriptions whose streams this shard serves.
    pub fn hub(&self) -> Rc<RefCell<SubHub>> {
        self.ctx.subs.clone()
    }

    /// Runs the calls after something outside them changed (subscription output arrived).
    pub fn run(&mut self, broker: &mut Broker<Handoff>, net: &mut IoNet<'_>) {
        self.pump(broker, net);
    }

    pub fn owns(&self, conn: u64) -> bool {
        self.conns.contains_key(&conn)
    }

    pub fn on_accept(
        &mut self,
        broker: &mut Broker<Handoff>,
        net: &mut IoNet<'_>,
        conn: u64,
        peer: Option<std::net::SocketAddr>,
    ) {
        let pipe = Pipe::listed(conn, self.ready.clone(), peer);
        if self.ctx.health.borrow().is_draining() {
            pipe.start_drain();
        }
        let task = serve_connection(pipe.clone(), self.ctx.clone(), self.spawner.clone());
        if self.spawner.spawn_local(task).is_err() {
            net.close(conn);
            return;
        }
        self.conns.insert(conn, pipe);
        self.hungry.push(conn);
        self.pump(broker, net);
    }

    pub fn on_input(&mut self, broker: &mut Broker<Handoff>, net: &mut IoNet<'_>, conn: u64) {
        self.hungry.push(conn);
        self.pump(broker, net);
    }

    pub fn on_drained(&mut self, broker: &mut Broker<Handoff>, net: &mut IoNet<'_>, conn: u64) {
        if let Some(pipe) = self.conns.get(&conn) {
            pipe.set_kernel_pending(net.pending_output(conn));
        }
        self.pump(broker, net);
    }

    pub fn on_closed(&mut self, broker: &mut Broker<Handoff>, net: &mut IoNet<'_>, conn: u64) {
        if let Some(pipe) = self.conns.remove(&conn) {
            pipe.set_eof();
        }
        self.pump(broker, net);
    }

    pub fn on_timer(&mut self, broker: &mut Broker<Handoff>, net: &mut IoNet<'_>) {
        self.armed = None;
        self.ctx.timers.borrow_mut().fire(Instant::now());
        self.pump(broker, net);
    }

    /// Answers for calls' broker requests.
    pub fn on_responses(
        &mut self,
        broker: &mut Broker<Handoff>,
        net: &mut IoNet<'_>,
        responses: Vec<(Origin, BrokerResponse)>,
    ) {
        {
            let mut bridge = self.ctx.bridge.borrow_mut();
            for (origin, resp) in responses {
                bridge.complete(origin.seq, resp);
            }
        }
        self.pump(broker, net);
    }

    /// Shutdown: health turns NOT_SERVING and every connection gets GOAWAY; calls in progress
    /// may finish until the runtime's drain timeout.
    pub fn on_shutdown(&mut self, broker: &mut Broker<Handoff>, net: &mut IoNet<'_>) {
        self.ctx.health.borrow_mut().set_draining();
        for pipe in self.conns.values() {
            pipe.start_drain();
        }
        self.pump(broker, net);
    }

    /// Runs the tasks until none can move: feeds them input, submits their broker requests,
    /// hands their output to the runtime, closes the connections whose task ended.
    fn pump(&mut self, broker: &mut Broker<Handoff>, net: &mut IoNet<'_>) {
        for round in 0.. {
            let mut moved = false;
            // Feed the connections that have input; keep those h2 has no room for yet.
            let mut hungry = std::mem::take(&mut self.hungry);
            hungry.sort_unstable();
            hungry.dedup();
            for conn in hungry {
                let (Some(pipe), Some(input)) = (self.conns.get(&conn), net.input(conn)) else {
                    continue;
                };
                moved |= pipe.feed(input);
                if !input.is_empty() {
                    self.hungry.push(conn);
                }
            }
            self.pool.run_until_stalled();
            let queued = self.ctx.bridge.borrow_mut().take_queued();
            moved |= !queued.is_empty();
            for (seq, req) in queued {
                let origin = Origin {
                    conn: GRPC_ORIGIN_CONN,
                    seq,
                };
                broker.submit(net, origin, req);
            }
            // Subscribe streams' commands go to their owner shards.
            let changes = self.ctx.subs.borrow_mut().take_changes();
            net.subs
                .route_stream_changes(changes, &mut self.ctx.subs.borrow_mut());
            let ready = std::mem::take(&mut *self.ready.borrow_mut());
            for conn in ready {
                let Some(pipe) = self.conns.get(&conn) else {
                    continue;
                };
                if let Some(out) = pipe.take_output() {
                    net.write_bytes(conn, out);
                    net.flush(conn);
                    moved = true;
                }
                pipe.set_kernel_pending(net.pending_output(conn));
                if pipe.is_finished() {
                    net.close(conn);
                    self.conns.remove(&conn);
                }
            }
            if !moved {
                break;
            }
            if round == PUMP_ROUNDS_MAX {
                net.poll_soon();
                break;
            }
        }
        let due = self.ctx.timers.borrow_mut().next_due();
        if let Some(due) = due {
            if self.armed.is_none_or(|at| due < at) {
                self.armed = Some(due);
                net.timer_at(due, GRPC_TIMER_TOKEN);
            }
        }
    }
}
