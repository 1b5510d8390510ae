//! What this process costs, from `/proc`: CPU time per thread, peak
//! resident memory, thread count.

/// User + system CPU seconds in a `/proc/.../stat` line.
pub fn cpu_of(stat: &str) -> f64 {
    // Fields after the command name (which is in parentheses).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 overall: 12 and 13 after ")".
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// User + system CPU seconds of this process.
pub fn cpu_seconds() -> f64 {
    cpu_of(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU seconds per thread name (digits at the end dropped, so that
/// `mcp-worker-0` and `mcp-worker-1` add up), summed over threads of that
/// name.
pub fn cpu_by_thread() -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let seconds = cpu_of(&std::fs::read_to_string(path.join("stat")).unwrap_or_default());
        let name = name.trim().trim_end_matches(char::is_numeric).to_owned();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += seconds,
            None => out.push((name, seconds)),
        }
    }
    out
}

/// CPU seconds of the threads whose name starts with one of `prefixes`.
pub fn cpu_of_threads(prefixes: &[&str]) -> f64 {
    cpu_by_thread()
        .iter()
        .filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p)))
        .map(|(_, seconds)| seconds)
        .sum()
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Peak resident memory of process `pid` (`self` for this one), bytes.
pub fn peak_rss_bytes(pid: &str) -> u64 {
    status_bytes(pid, "VmHWM:")
}

/// Resident memory of process `pid` now, bytes.
pub fn rss_bytes(pid: &str) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// Threads of process `pid`.
pub fn threads(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0)
}
