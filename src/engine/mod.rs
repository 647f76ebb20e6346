//! The sans-IO core: everything an envelope operation decides, computes and
//! checks, written once. It never calls a provider and never does I/O.
//!
//! The front ends (`Sealer` / `AsyncSealer`, `Opener` / `AsyncOpener`,
//! `Rewrapper` / `AsyncRewrapper`, the `std::io` and tokio streams) are thin
//! drivers: they make the provider calls or the I/O calls the core asks for,
//! with or without `.await`, and hand the results back.
//!
//! - [`seal`]: the key phase of a seal ([`seal::SealPlan`]: limits, binding,
//!   data-key request, wraps, commitment) and the one-shot payload;
//! - [`open`]: the key phase of an open ([`open::Unlock`]: context
//!   reconciliation, which entries to try with which provider, commitment,
//!   header tag, attempt counting and error precedence) and the one-shot
//!   payload;
//! - [`rewrap`]: a rewrap's plan (kept entries, new wraps, new header);
//! - [`stream`]: segment framing for streams ([`stream::HeaderBuf`],
//!   [`stream::SegmentSealer`], [`stream::SegmentOpener`], seeking included),
//!   pumped by `io.rs` and `tokio.rs`;
//! - [`parallel`]: scoped threads over runs of whole segments.

pub(crate) mod open;
pub(crate) mod parallel;
pub(crate) mod rewrap;
pub(crate) mod seal;
#[cfg(feature = "std")]
pub(crate) mod stream;
