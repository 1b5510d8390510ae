//! The security layer: admission in the protocol's order, hostile tokens,
//! published test vectors (Wycheproof, the JOSE cookbook) and key files.

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod crypto_vectors;
mod hostile_tokens;
mod key_files;
