//! The replay guard's table is mapped at start: no message pays the page
//! faults of its first touch. The tests beside it in this binary allocate
//! little, so they do not move the resident size it reads.

use mcp_engine::security::test_support::ReplayGuard;

/// Resident bytes of this process, from `/proc/self/statm`.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn the_default_table_is_resident_as_soon_as_it_is_built() {
    let before = resident_bytes();
    // The default capacity: 2^20 buckets of 64 bytes.
    let guard = ReplayGuard::new(1 << 22, 300, 0);
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown >= 63 << 20,
        "{} MiB resident after building a 64 MiB table",
        grown >> 20
    );
    drop(guard);
}
