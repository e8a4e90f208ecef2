//! What an SQE is for, packed into its `user_data`, and the lifecycle states of the operations a
//! connection (or an engine's fsync) keeps in the kernel.
//!
//! Layout of `user_data` (64 bits): `kind:8 | generation:24 | index:32`. The index names a
//! connection slot, a listener or an fsync slot; the generation catches a completion for a
//! connection slot that was reused, which the lifecycle rule (a slot is freed only when none of
//! its ops is in the kernel) makes impossible, so a mismatch is a bug and is asserted in debug
//! builds. Fsync slots hold one op each and are freed when it is reaped: their generation is 0.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use crate::limits::RECV_BUFFER_SIZE_BYTES;

/// Which operation a completion belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum OpKind {
    /// Multishot accept on listener `index`.
    Accept,
    /// Multishot recv on connection `index`.
    Recv,
    /// The one send (sendmsg with an iovec array) in flight on connection `index`.
    Send,
    /// AsyncCancel of connection `index`'s recv.
    CancelRecv,
    /// Read of the shard's wake eventfd.
    Wake,
    /// Exit-time cancellation of everything; no owner.
    CancelAll,
    /// An engine's fsync, in slot `index` of the shard's fsync slab.
    Fsync,
    /// AsyncCancel of listener `index`'s accept (at shutdown).
    CancelAccept,
}

impl OpKind {
    const fn code(self) -> u64 {
        match self {
            OpKind::Accept => 1,
            OpKind::Recv => 2,
            OpKind::Send => 3,
            OpKind::CancelRecv => 4,
            OpKind::Wake => 5,
            OpKind::CancelAll => 6,
            OpKind::Fsync => 7,
            OpKind::CancelAccept => 8,
        }
    }

    const fn from_code(code: u64) -> Option<OpKind> {
        Some(match code {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::CancelRecv,
            5 => OpKind::Wake,
            6 => OpKind::CancelAll,
            7 => OpKind::Fsync,
            8 => OpKind::CancelAccept,
            _ => return None,
        })
    }
}

const GENERATION_MASK: u32 = 0x00FF_FFFF;

/// Decoded `user_data`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct OpTag {
    pub kind: OpKind,
    pub index: u32,
    /// Low 24 bits of the owner's generation.
    pub generation: u32,
}

impl OpTag {
    pub fn new(kind: OpKind, index: u32, generation: u32) -> OpTag {
        OpTag {
            kind,
            index,
            generation: generation & GENERATION_MASK,
        }
    }

    pub fn to_user_data(self) -> u64 {
        (self.kind.code() << 56) | (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub fn from_user_data(user_data: u64) -> Option<OpTag> {
        Some(OpTag {
            kind: OpKind::from_code(user_data >> 56)?,
            generation: ((user_data >> 32) as u32) & GENERATION_MASK,
            index: user_data as u32,
        })
    }

    /// Whether this tag was made for an owner of generation `generation`.
    pub fn matches(self, generation: u32) -> bool {
        self.generation == generation & GENERATION_MASK
    }
}

/// Offset of `optlen` (a union with `file_index`) in the 64-byte SQE.
const SQE_OPTLEN_OFFSET: usize = 44;
const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);

/// A multishot recv into provided-buffer group `group` that stops by itself (final CQE without
/// `IORING_CQE_F_MORE`) once `total_cap_bytes` have been received — the kernel's byte cap for
/// multishot recv (`sqe->optlen`, Linux 6.17+). Without a cap, one enter can deliver many
/// completions to one socket before a cancel lands, and input would overshoot its bound.
/// Each completion also carries at most `min(total_cap_bytes, buffer size)` (via `len`), so the
/// cap is exceeded by less than one completion. Kernels without the feature fail it with `EINVAL`; then pass
/// `None` (uncapped).
pub(crate) fn recv_multishot(fd: RawFd, group: u16, total_cap_bytes: Option<u32>) -> squeue::Entry {
    let mut recv = opcode::RecvMulti::new(types::Fd(fd), group);
    let Some(cap) = total_cap_bytes else {
        return recv.build();
    };
    recv = recv.len(cap.min(RECV_BUFFER_SIZE_BYTES as u32));
    let sqe = recv.build();
    // SAFETY: `Entry` is `repr(C)` around the kernel's 64-byte `io_uring_sqe` (asserted above);
    // byte 44 starts the `optlen` field, which the crate's builder does not expose.
    let mut raw: [u8; 64] = unsafe { std::mem::transmute(sqe) };
    raw[SQE_OPTLEN_OFFSET..SQE_OPTLEN_OFFSET + 4].copy_from_slice(&cap.to_ne_bytes());
    unsafe { std::mem::transmute::<[u8; 64], squeue::Entry>(raw) }
}

/// Lifecycle of a connection's multishot recv.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RecvState {
    /// Not in the kernel: arm it when reading is wanted.
    Idle,
    /// In the kernel, posting a CQE per received chunk.
    Armed,
    /// An AsyncCancel was submitted; the recv is still in the kernel until its final CQE
    /// (one without `IORING_CQE_F_MORE`) arrives.
    Cancelling,
}

/// Lifecycle of one fsync an engine asked for with `Io::fsync`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FsyncState {
    /// Asked for this turn; the flush phase queues its SQE. The engine keeps the fd open.
    Queued(RawFd),
    /// In the kernel until its one CQE; then the slot is freed and `on_fsync` is queued.
    InKernel,
}

/// One engine fsync: the engine's token and where the op is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingFsync {
    pub token: u64,
    pub state: FsyncState,
}

/// `IORING_OP_FSYNC` of `fd` (a full fsync, not datasync). It points at no memory.
pub(crate) fn fsync(fd: RawFd) -> squeue::Entry {
    opcode::Fsync::new(types::Fd(fd)).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for kind in [
            OpKind::Accept,
            OpKind::Recv,
            OpKind::Send,
            OpKind::CancelRecv,
            OpKind::Wake,
            OpKind::CancelAll,
            OpKind::Fsync,
            OpKind::CancelAccept,
        ] {
            let tag = OpTag::new(kind, u32::MAX, 0xABCD_EF12);
            let back = OpTag::from_user_data(tag.to_user_data()).expect("valid tag");
            assert_eq!(back, tag);
            assert!(back.matches(0xABCD_EF12));
            assert!(!back.matches(0xABCD_EF13));
        }
        assert_eq!(OpTag::from_user_data(0), None);
    }
}
