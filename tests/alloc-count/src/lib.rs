//! Empty: the checks are in `tests/allocations.rs`.
