//! Wycheproof AEAD vectors through lockbox's suite layer (placeholder, filled in next).
