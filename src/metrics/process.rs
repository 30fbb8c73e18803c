//! The broker process's own resource use, read from `/proc/self` at scrape time, as the
//! Prometheus client libraries' standard `process_*` metrics (so dashboards and `strato
//! bench --bootstrap` read them as from any exporter), plus the peak resident memory.
//! Off Linux, or when `/proc` is unreadable, the metrics are left out.

use strato_metrics::Encoder;

/// Unit of the CPU times in `/proc/<pid>/stat`: USER_HZ, 100 on every architecture Linux
/// runs Strato on (the kernel converts to it whatever its internal tick rate).
const USER_HZ: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSnapshot {
    /// User plus system CPU time of all threads, in seconds.
    pub cpu_seconds: f64,
    /// Start time, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    /// Highest resident memory so far (VmHWM).
    pub peak_resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

impl ProcessSnapshot {
    /// Reads this process's figures; `None` without a readable `/proc/self/stat`.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let fields = stat_fields(&stat)?;
        let ticks = |index: usize| fields.get(index)?.parse::<u64>().ok();
        // Field numbers of proc(5), counted from 3 (after "pid (comm)").
        let cpu_ticks = ticks(14 - 3)? + ticks(15 - 3)?;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time_seconds(&s));
        let start_time_seconds = boot_time
            .zip(ticks(22 - 3))
            .map(|(boot, start)| boot as f64 + start as f64 / USER_HZ);
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        Some(Self {
            cpu_seconds: cpu_ticks as f64 / USER_HZ,
            start_time_seconds,
            resident_bytes: status_kib(&status, "VmRSS:").map(|kib| kib * 1024),
            peak_resident_bytes: status_kib(&status, "VmHWM:").map(|kib| kib * 1024),
            virtual_bytes: status_kib(&status, "VmSize:").map(|kib| kib * 1024),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: max_open_files(&limits),
        })
    }

    /// Writes the `process_*` families.
    pub fn render(&self, out: &mut Encoder) {
        out.family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        out.sample("process_cpu_seconds_total", &[], self.cpu_seconds);
        let gauges = [
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                self.resident_bytes.map(|v| v as f64),
            ),
            (
                "strato_process_peak_resident_memory_bytes",
                "Highest resident memory size since the process started, in bytes (VmHWM).",
                self.peak_resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                self.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                self.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                self.max_fds.map(|v| v as f64),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                out.family(name, "gauge", help);
                out.sample(name, &[], value);
            }
        }
    }
}

/// The fields of `/proc/<pid>/stat` after `pid (comm)` (comm may hold spaces and
/// parentheses, so it ends at the last `)`).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    Some(after_comm.split_whitespace().collect())
}

/// A `Name:   1234 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(name))?;
    let mut words = line[name.len()..].split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time_seconds(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        let stat =
            "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 12345 1000 200";
        let fields = stat_fields(stat).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(fields[14 - 3], "250", "utime");
        assert_eq!(fields[15 - 3], "50", "stime");
        assert_eq!(fields[22 - 3], "12345", "starttime");
        let status = "Name:\tstrato\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\nVmSize:\t 9 MB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSize:"), None, "only kB is known");
        assert_eq!(
            boot_time_seconds("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    /// Goal: on Linux the broker's own figures are read and rendered as the standard
    /// families.
    #[test]
    fn this_process_is_measured() {
        let snapshot = ProcessSnapshot::read().expect("/proc/self is readable on Linux");
        assert!(snapshot.resident_bytes.is_some_and(|rss| rss > 0));
        assert!(snapshot.peak_resident_bytes >= snapshot.resident_bytes);
        assert!(snapshot.open_fds.is_some_and(|fds| fds > 0));
        assert!(snapshot.start_time_seconds.is_some_and(|t| t > 1.6e9));
        let mut out = Encoder::new();
        snapshot.render(&mut out);
        let text = out.finish();
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "strato_process_peak_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing"
            );
        }
    }
}
