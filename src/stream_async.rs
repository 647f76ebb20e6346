//! Async streaming adapters (placeholder, filled in next).
#![allow(missing_docs)]
/// Placeholder.
pub struct AsyncEncryptor;
/// Placeholder.
pub struct AsyncDecryptor;
