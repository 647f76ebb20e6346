//! [`MemorySink`]: keeps every event in memory, for tests.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{AuditError, AuditEvent, AuditRecord, AuditSink};

/// A sink that keeps an owned [`AuditRecord`] of every event, for tests and
/// examples. [`set_failing`](Self::set_failing) makes it refuse events, to
/// test what fails closed.
#[derive(Debug, Default)]
pub struct MemorySink {
    records: Mutex<Vec<AuditRecord>>,
    failing: AtomicBool,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<AuditRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of every record so far, oldest first.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.lock().clone()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Removes every record and returns them.
    pub fn take(&self) -> Vec<AuditRecord> {
        core::mem::take(&mut *self.lock())
    }

    /// While `true`, every event is refused with an [`AuditError`] (and not kept).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Release);
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        if self.failing.load(Ordering::Acquire) {
            return Err(AuditError::new("memory sink set to fail"));
        }
        let r = event.to_record();
        self.lock().push(r);
        Ok(())
    }
}
