//! The options sealers, openers and rewrappers share, written once: the AEAD
//! backend, the limits and (sealers and openers) the number of threads.

/// Adds `backend` and `limits` setters to `$ty`, whose options live in
/// `self.$($field).+` (a struct with `backend` and `limits` fields).
macro_rules! shared_options {
    ($ty:ident, $($field:ident).+) => {
        impl $ty<'_> {
            /// Sets the AEAD implementation (default [`Backend::default`](crate::Backend::default)):
            /// every backend seals and opens the same bytes.
            #[must_use]
            pub fn backend(mut self, backend: $crate::Backend) -> Self {
                self.$($field).+.backend = backend;
                self
            }

            /// Sets the limits: the envelopes read must respect them, and so
            /// must the headers written (so that an opener with the same limits
            /// accepts them). Default [`Limits::default`](crate::Limits::default).
            #[must_use]
            pub fn limits(mut self, limits: $crate::Limits) -> Self {
                self.$($field).+.limits = limits;
                self
            }

            /// The limits in force.
            pub fn limits_ref(&self) -> &$crate::Limits {
                &self.$($field).+.limits
            }
        }
    };
}

/// Adds a `threads` setter to `$ty`, whose options live in `self.$field`.
macro_rules! thread_option {
    ($ty:ident, $field:ident) => {
        impl $ty<'_> {
            /// Processes the segments of one-shot calls, and of streams, on up
            /// to `threads` threads (scoped, spawned per call or per batch, and
            /// only with at least 128 KiB of payload per thread). The bytes are
            /// the same as with one thread; on failure nothing is released, as
            /// with one thread. A parallel stream buffers a batch (at least 8
            /// segments and 128 KiB per thread) instead of one segment. Default 1.
            #[cfg(feature = "std")]
            #[must_use]
            pub fn threads(mut self, threads: usize) -> Self {
                self.$field.threads = threads.max(1);
                self
            }
        }
    };
}

pub(crate) use {shared_options, thread_option};
