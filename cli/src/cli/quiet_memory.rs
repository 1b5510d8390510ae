//! Gives the allocator's freed pages back to the system once the server
//! goes quiet.
//!
//! jemalloc keeps pages it has freed, for the next allocation, and returns
//! them on a decay schedule that advances only while the process allocates:
//! a server that served large frames and then went idle would hold them for
//! ever. Its background thread returns them on time, but cost a tenth of the
//! soak test's throughput here; a purge once the server has been quiet for
//! two seconds costs nothing while it is busy.

use std::time::Duration;

use mcp_engine::server::Server;

/// How often the server's activity is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Looks at `server` every second until `stop` says so (unpark the thread
/// to stop it at once); after two looks with no connection accepted and no
/// request read, returns the allocator's free pages, once per quiet spell.
pub(crate) fn return_while_quiet(server: &Server, stop: &std::sync::atomic::AtomicBool) {
    let activity = || {
        let stats = server.stats();
        (stats.accepted, stats.requests_read)
    };
    let mut last = activity();
    let mut quiet_looks = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        std::thread::park_timeout(LOOK_EVERY);
        let now = activity();
        if now != last {
            last = now;
            quiet_looks = 0;
            continue;
        }
        quiet_looks = quiet_looks.saturating_add(1);
        if quiet_looks == 2 && !purge() {
            tracing::debug!("the allocator did not purge");
        }
    }
}

/// Returns every arena's free pages to the system; whether the allocator
/// did.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code)]
fn purge() -> bool {
    // `arena.<i>.purge` with i = MALLCTL_ARENAS_ALL (4096): every arena.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: the name is a NUL-terminated string that lives for the call;
    // `arena.<i>.purge` reads and writes no value, so null old and new
    // pointers with lengths 0 are what jemalloc expects of it.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    status == 0
}

/// Without jemalloc there is nothing of ours to purge.
#[cfg(not(feature = "jemalloc"))]
fn purge() -> bool {
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_allocator_purges_its_free_pages() {
        // Large enough to come from the arenas, not a thread cache.
        let block = vec![1u8; 64 << 20];
        drop(std::hint::black_box(block));
        assert!(super::purge());
    }
}
