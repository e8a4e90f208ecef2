//! Message types generated from `rpc/proto` by `build.rs` (prost; `bytes` fields are `Bytes`).

#![allow(clippy::all, missing_docs)]

pub mod squall {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/squall.v1.rs"));
    }
}

pub mod health {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

/// `grpc.reflection.v1`; `v1alpha` has the same schema, so its calls use these types too.
pub mod reflection {
    include!(concat!(env!("OUT_DIR"), "/grpc.reflection.v1.rs"));
}

/// The encoded `FileDescriptorSet` of every served `.proto` file and its imports.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
