//! What the calls of one shard share: timers for deadlines and the queue of broker requests.
//! Everything here lives on the shard's thread (`Rc`, no locks).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use squall_core::broker::{Request, Response};

/// Deadlines of the shard's calls; the front arms one runtime timer for the earliest.
#[derive(Default)]
pub struct Timers {
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: HashMap<u64, Waker>,
    next_id: u64,
}

impl Timers {
    /// Wakes the sleepers whose time has come.
    pub fn fire(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.due.peek() {
            if at > now {
                break;
            }
            self.due.pop();
            if let Some(w) = self.wakers.remove(&id) {
                w.wake();
            }
        }
    }

    /// The earliest deadline still awaited.
    pub fn next_due(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.due.peek() {
            if self.wakers.contains_key(&id) {
                return Some(at);
            }
            self.due.pop(); // its sleeper is gone
        }
        None
    }
}

/// Resolves at `at` (checked against the clock, so never early).
pub struct Sleep {
    at: Instant,
    id: Option<u64>,
    timers: Rc<RefCell<Timers>>,
}

pub fn sleep_until(timers: &Rc<RefCell<Timers>>, at: Instant) -> Sleep {
    Sleep {
        at,
        id: None,
        timers: timers.clone(),
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            if let Some(id) = self.id.take() {
                self.timers.borrow_mut().wakers.remove(&id);
            }
            return Poll::Ready(());
        }
        let at = self.at;
        let mut t = self.timers.borrow_mut();
        let id = match self.id {
            Some(id) => id,
            None => {
                t.next_id += 1;
                let id = t.next_id;
                t.due.push(Reverse((at, id)));
                id
            }
        };
        t.wakers.insert(id, cx.waker().clone());
        drop(t);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.timers.borrow_mut().wakers.remove(&id);
        }
    }
}

enum Slot {
    Waiting(Option<Waker>),
    Done(Response),
}

/// Broker requests from calls, waiting for the front to submit them, and their answers.
#[derive(Default)]
pub struct Bridge {
    queued: Vec<(u64, Request)>,
    slots: HashMap<u64, Slot>,
    next_seq: u64,
}

impl Bridge {
    /// Requests to submit to the broker, each with the number its answer will carry.
    pub fn take_queued(&mut self) -> Vec<(u64, Request)> {
        std::mem::take(&mut self.queued)
    }

    /// The broker answered request `seq`; a call that gave up meanwhile drops the answer.
    pub fn complete(&mut self, seq: u64, resp: Response) {
        if let Some(slot) = self.slots.get_mut(&seq) {
            if let Slot::Waiting(Some(w)) = std::mem::replace(slot, Slot::Done(resp)) {
                w.wake();
            }
        }
    }
}

/// A request on its way through the broker.
pub struct BrokerCall {
    seq: u64,
    bridge: Rc<RefCell<Bridge>>,
}

pub fn call(bridge: &Rc<RefCell<Bridge>>, req: Request) -> BrokerCall {
    let mut b = bridge.borrow_mut();
    b.next_seq += 1;
    let seq = b.next_seq;
    b.queued.push((seq, req));
    b.slots.insert(seq, Slot::Waiting(None));
    BrokerCall {
        seq,
        bridge: bridge.clone(),
    }
}

impl Future for BrokerCall {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let mut b = self.bridge.borrow_mut();
        match b.slots.remove(&self.seq) {
            Some(Slot::Done(resp)) => Poll::Ready(resp),
            Some(Slot::Waiting(_)) | None => {
                b.slots.insert(self.seq, Slot::Waiting(Some(cx.waker().clone())));
                Poll::Pending
            }
        }
    }
}

impl Drop for BrokerCall {
    fn drop(&mut self) {
        self.bridge.borrow_mut().slots.remove(&self.seq);
    }
}
