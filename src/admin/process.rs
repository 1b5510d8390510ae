//! The process's own figures, read from `/proc` as Prometheus's client
//! libraries read them, under the names dashboards already know
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`, ...).
//! Off Linux, or where `/proc` is not mounted, nothing is written.

use super::Exposition;

/// One reading of the process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Virtual memory, bytes.
    pub virtual_bytes: u64,
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    /// When the process started, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Open file descriptors (connections among them).
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: u64,
    /// Threads.
    pub threads: u64,
}

impl ProcessStats {
    /// Reads this process's figures; `None` without `/proc`.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| field_after(&text, "btime"))
            .unwrap_or(0);
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|text| field_after(&text, "Max open files"))
            .unwrap_or(0);
        ProcessStats::from_stat(
            &stat,
            rustix::param::clock_ticks_per_second(),
            rustix::param::page_size() as u64,
            boot_time,
        )
        .map(|stats| ProcessStats {
            open_fds,
            max_fds,
            ..stats
        })
    }

    /// The figures of `/proc/self/stat` (see proc(5)): the fields after the
    /// command name, which is in parentheses and may hold spaces.
    fn from_stat(stat: &str, ticks: u64, page: u64, boot_time: u64) -> Option<ProcessStats> {
        let after_name = &stat[stat.rfind(')')? + 1..];
        // Field 3 (state) is the first after the name; proc(5) numbers
        // fields from 1.
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
        let ticks = ticks.max(1) as f64;
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            threads: field(20)?,
            start_time_seconds: boot_time as f64 + field(22)? as f64 / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)?.saturating_mul(page),
            ..ProcessStats::default()
        })
    }
}

/// The first number on the line that starts with `name`.
fn field_after(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .find_map(|word| word.parse().ok())
}

/// The process's figures, if they can be read.
pub fn write_process(exposition: &mut Exposition<'_>) {
    let Some(stats) = ProcessStats::read() else {
        return;
    };
    exposition
        .single(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            stats.resident_bytes as f64,
        )
        .single(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stats.virtual_bytes as f64,
        )
        .single(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stats.cpu_seconds,
        )
        .single(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            stats.start_time_seconds,
        )
        .single(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            stats.open_fds as f64,
        )
        .single(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            stats.max_fds as f64,
        )
        .single(
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            stats.threads as f64,
        );
}

#[cfg(test)]
mod tests {
    use super::ProcessStats;

    #[test]
    fn a_stat_line_is_read_past_a_name_with_spaces_and_parentheses() {
        // proc(5): pid (comm) state ppid ... utime(14) stime(15) ...
        // num_threads(20) ... starttime(22) vsize(23) rss(24) ...
        let stat = "4242 (mcp (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 9 0 1000 123456789 300 18446744073709551615 0";
        let stats = ProcessStats::from_stat(stat, 100, 4096, 1_700_000_000).unwrap();
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.threads, 9);
        assert_eq!(stats.start_time_seconds, 1_700_000_010.0);
        assert_eq!(stats.virtual_bytes, 123_456_789);
        assert_eq!(stats.resident_bytes, 300 * 4096);
        assert_eq!(
            ProcessStats::from_stat("4242 (cut short", 100, 4096, 0),
            None
        );
        assert_eq!(
            ProcessStats::from_stat("4242 (x) S 1 2", 100, 4096, 0),
            None
        );
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let stats = ProcessStats::read().expect("/proc is mounted on the machines we test on");
        assert!(stats.resident_bytes > 0);
        assert!(stats.threads >= 1);
        assert!(stats.open_fds >= 3, "{stats:?}");
        assert!(stats.max_fds >= stats.open_fds, "{stats:?}");
        assert!(stats.start_time_seconds > 1_600_000_000.0, "{stats:?}");
    }
}
