//! CPU time and memory of a process from Linux's /proc (`stat`, `status`): kfdb's, to show how
//! busy it was during a run, and this process's own.

/// A process's CPU time so far (user + system), 0 if it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// This process's CPU time so far (user + system).
pub fn self_cpu_seconds() -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// A field of a process's /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`), 0 if absent.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status_field_kib(&text, field)
}

/// utime + stime of a /proc/<pid>/stat line, at 100 ticks per second.
fn stat_cpu_seconds(text: &str) -> f64 {
    // Fields after the command name (which is in parentheses): state is field 3; utime 14, stime 15.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn status_field_kib(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_the_command() {
        let line = "42 (kfdb (x) y) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 8 0 1 2 3";
        assert_eq!(stat_cpu_seconds(line), 3.0);
        assert_eq!(stat_cpu_seconds(""), 0.0);
    }

    #[test]
    fn status_fields() {
        let text = "Name:\tkfdb\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_field_kib(text, "VmRSS"), 10240);
        assert_eq!(status_field_kib(text, "VmHWM"), 20480);
        assert_eq!(status_field_kib(text, "VmSwap"), 0);
    }

    #[test]
    fn this_process_has_a_stat() {
        assert!(self_cpu_seconds() >= 0.0);
        assert!(status_kib(std::process::id(), "VmRSS") > 0);
    }
}
