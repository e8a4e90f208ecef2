//! The shard's io_uring: set-up with the best flags this kernel takes, queueing SQEs, the one
//! blocking call of the loop (`submit_and_wait`), and reaping CQEs into plain values.
//!
//! It knows nothing about connections: callers tag each SQE with an [`op::OpTag`] and get the
//! tag back in the [`Completion`].

pub(crate) mod buffers;
pub(crate) mod op;

use std::io;
use std::time::Duration;

use io_uring::{cqueue, squeue, types, IoUring};

use op::OpTag;

/// Which set-up flags the ring got (the first that this kernel accepted).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RingFlags {
    /// `SINGLE_ISSUER | DEFER_TASKRUN`: completions are posted only when this thread enters the
    /// kernel, so no interrupts of the shard and no cross-CPU task work (6.1+).
    SingleIssuerDeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG`: no IPI to interrupt the shard for task work (5.19+).
    CoopTaskrun,
    /// No special flags (oldest kernels; up to ~35 % slower here).
    Plain,
}

/// One reaped completion.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completion {
    pub tag: OpTag,
    pub result: i32,
    pub flags: u32,
}

impl Completion {
    /// Whether the operation stays in the kernel (a multishot op that will post more CQEs).
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }
}

/// Applies one set of set-up flags to a ring builder.
type Configure = fn(&mut io_uring::Builder);

pub(crate) struct Ring {
    uring: IoUring,
    flags: RingFlags,
    /// Operations submitted (or queued) whose final CQE has not been reaped yet.
    in_kernel: usize,
    /// SQEs queued since start (each is submitted by the next `enter`).
    submitted: u64,
    /// CQEs reaped since start (multishot ops post many).
    completed: u64,
}

impl Ring {
    pub fn new(entries: u32) -> io::Result<Ring> {
        // A bigger CQ than SQ: multishot ops post many CQEs per SQE.
        let cq_entries = entries.saturating_mul(4);
        let attempts: [(RingFlags, Configure); 3] = [
            (RingFlags::SingleIssuerDeferTaskrun, |b| {
                b.setup_single_issuer().setup_defer_taskrun();
            }),
            (RingFlags::CoopTaskrun, |b| {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }),
            (RingFlags::Plain, |_| {}),
        ];
        let mut last_err = None;
        for (flags, configure) in attempts {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(cq_entries);
            configure(&mut builder);
            match builder.build(entries) {
                Ok(uring) => {
                    return Ok(Ring {
                        uring,
                        flags,
                        in_kernel: 0,
                        submitted: 0,
                        completed: 0,
                    })
                }
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no io_uring set-up worked")))
    }

    pub fn flags(&self) -> RingFlags {
        self.flags
    }

    pub fn submitter(&self) -> io_uring::Submitter<'_> {
        self.uring.submitter()
    }

    /// Operations whose final completion has not been reaped.
    pub fn in_kernel(&self) -> usize {
        self.in_kernel
    }

    /// SQEs queued since start.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// CQEs reaped since start.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Queues one SQE tagged with `tag`, submitting early (without waiting) if the SQ is full.
    ///
    /// # Safety
    /// Every buffer and fd the SQE points at must stay valid until its final CQE is reaped.
    pub unsafe fn push(&mut self, sqe: squeue::Entry, tag: OpTag) -> io::Result<()> {
        let sqe = sqe.user_data(tag.to_user_data());
        loop {
            // SAFETY: forwarded from the caller.
            if unsafe { self.uring.submission().push(&sqe) }.is_ok() {
                self.in_kernel += 1;
                self.submitted += 1;
                return Ok(());
            }
            self.enter(false, None)?;
        }
    }

    /// Phase 1 of a turn: submits what is queued and collects completions; blocks until one
    /// completion arrives (or `timeout` passes) only when `wait` is set.
    pub fn enter(&mut self, wait: bool, timeout: Option<Duration>) -> io::Result<()> {
        let to_submit = self.uring.submission().len() as u32;
        let submitter = self.uring.submitter();
        let result = if !wait {
            // GETEVENTS even without waiting: with DEFER_TASKRUN, completions are only posted
            // by an enter that asks for events.
            // SAFETY: no argument pointer is passed.
            unsafe {
                submitter.enter::<libc::sigset_t>(to_submit, 0, io_uring::EnterFlags::GETEVENTS.bits(), None)
            }
        } else if let Some(timeout) = timeout {
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            submitter.submit_with_args(1, &args)
        } else {
            submitter.submit_and_wait(1)
        };
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.raw_os_error() {
                // Timeout passed, a signal arrived, or the CQ is full: all mean "go reap".
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => Ok(()),
                _ => Err(err),
            },
        }
    }

    /// Whether a completion is waiting to be reaped (after an `enter` that asked for events).
    pub fn has_completions(&mut self) -> bool {
        let mut cq = self.uring.completion();
        cq.sync();
        !cq.is_empty()
    }

    /// Phase 2 of a turn: moves every available CQE into `out`. Nothing else runs here.
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        let mut cq = self.uring.completion();
        cq.sync();
        for cqe in &mut cq {
            let Some(tag) = OpTag::from_user_data(cqe.user_data()) else {
                debug_assert!(false, "completion with unknown user_data {:#x}", cqe.user_data());
                continue;
            };
            let completion = Completion {
                tag,
                result: cqe.result(),
                flags: cqe.flags(),
            };
            self.completed += 1;
            if !completion.more() {
                debug_assert!(self.in_kernel > 0);
                self.in_kernel = self.in_kernel.saturating_sub(1);
            }
            out.push(completion);
        }
    }
}
