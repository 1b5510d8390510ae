//! Memory the hot paths use: no allocation per message once warm (counted
//! by this binary's global allocator), and the replay table resident from
//! the start. Tests here allocate little, so they do not move the resident
//! size the table's test reads.

mod allocations;
mod replay_table_resident;
