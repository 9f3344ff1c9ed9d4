//! Reading kfdb's log file: the lines worth reporting and the tail shown after a failure. Pure
//! text functions; the file itself belongs to `process`.

use std::path::Path;

/// The whole log, invalid UTF-8 replaced; empty if the file cannot be read.
pub(crate) fn read(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Lines at WARN or ERROR level, and panic messages.
pub(crate) fn problem_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
        .map(str::to_string)
        .collect()
}

/// The last `lines` lines, each ending in a newline, after a note of how many were cut.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("... ({skip} earlier lines cut)\n"));
    }
    for l in &all[skip..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-01-01T00:00:00Z  INFO kfdb: listening
2026-01-01T00:00:01Z  WARN kfdb_broker: slow commit
2026-01-01T00:00:02Z ERROR kfdb_log: oops
thread 'main' panicked at src/main.rs:1:1:
a WARNING without the level's spacing
";

    #[test]
    fn problems_are_warn_error_and_panic_lines() {
        let p = problem_lines(LOG);
        assert_eq!(p.len(), 3);
        assert!(p[0].contains("slow commit"));
        assert!(p[1].contains("oops"));
        assert!(p[2].contains("panicked"));
    }

    #[test]
    fn tail_notes_the_cut_lines() {
        assert_eq!(
            tail(LOG, 2),
            "... (3 earlier lines cut)\nthread 'main' panicked at src/main.rs:1:1:\na WARNING without the level's spacing\n"
        );
        assert_eq!(tail("a\nb\n", 5), "a\nb\n");
        assert_eq!(tail("", 5), "");
    }
}
