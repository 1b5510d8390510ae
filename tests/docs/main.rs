//! The documents: every link resolves, the README's layout names every
//! module, and docs/protocol.md's examples are what the engine does.

mod import_cycles;
mod links;
mod protocol_examples;
