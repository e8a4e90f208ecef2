//! Squall's durable disk queue on mmap'd segment files.
//!
//! Not built yet: until it lands, topics and channels are memory-only and a full memory queue
//! refuses publishes with `E_PUB_FAILED` (see the README's "Not implemented yet").
