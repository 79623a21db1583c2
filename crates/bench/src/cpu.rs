//! CPU time the processes under test spend during a timed loop, read from `/proc` (Linux).
//!
//! A requests-per-second figure on a shared machine says little about scaling: it matters
//! whether the node, the database or the load generator burned the cycles. `--cpu NAME=SPEC`
//! names a group of processes; the report gives each group's CPU microseconds per operation
//! and the cores it kept busy, beside the load generator's own.

use std::collections::HashMap;
use std::time::Duration;

/// Which processes a group holds.
#[derive(Debug, Clone)]
pub enum Selector {
    /// These process ids.
    Pids(Vec<u32>),
    /// Every process whose `comm` is this name, looked up at both ends of the loop (database
    /// backends come and go with connections).
    Comm(String),
}

#[derive(Debug, Clone)]
pub struct Watch {
    pub name: String,
    pub selector: Selector,
}

impl Watch {
    /// `NAME=PID[,PID...]` or `NAME=comm:PROCESS_NAME`.
    pub fn parse(spec: &str) -> Result<Watch, String> {
        let (name, sel) = spec
            .split_once('=')
            .ok_or_else(|| format!("--cpu {spec}: expected NAME=PIDS or NAME=comm:NAME"))?;
        let selector = match sel.strip_prefix("comm:") {
            Some(comm) if !comm.is_empty() => Selector::Comm(comm.to_string()),
            Some(_) => return Err(format!("--cpu {spec}: comm: needs a process name")),
            None => Selector::Pids(
                sel.split(',')
                    .map(|p| {
                        p.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("--cpu {spec}: {p:?} is not a process id"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Watch {
            name: name.to_string(),
            selector,
        })
    }

    /// The load generator itself.
    pub fn this_process() -> Watch {
        Watch {
            name: "client".into(),
            selector: Selector::Pids(vec![std::process::id()]),
        }
    }
}

/// Clock ticks (user + system) per process of each group at one instant.
pub struct Snapshot(Vec<HashMap<u32, u64>>);

/// CPU seconds each group spent between two snapshots, in the order of the watches.
pub type Spent = Vec<(String, Duration)>;

pub fn snapshot(watches: &[Watch]) -> Snapshot {
    Snapshot(watches.iter().map(|w| ticks_of(&w.selector)).collect())
}

/// /proc reports times in USER_HZ, which the kernel ABI fixes at 100 on the architectures we
/// run on (x86_64, aarch64), whatever the kernel's internal tick rate.
const USER_HZ: f64 = 100.0;

pub fn since(watches: &[Watch], before: &Snapshot) -> Spent {
    watches
        .iter()
        .zip(&before.0)
        .map(|(w, then)| {
            let now = ticks_of(&w.selector);
            // A process that started meanwhile counts from zero; one that ended is lost
            // (its ticks went with it), which only undercounts.
            let ticks: u64 = now
                .iter()
                .map(|(pid, t)| t.saturating_sub(then.get(pid).copied().unwrap_or(0)))
                .sum();
            (
                w.name.clone(),
                Duration::from_secs_f64(ticks as f64 / USER_HZ),
            )
        })
        .collect()
}

fn ticks_of(selector: &Selector) -> HashMap<u32, u64> {
    let pids: Vec<u32> = match selector {
        Selector::Pids(p) => p.clone(),
        Selector::Comm(name) => processes_named(name),
    };
    pids.into_iter()
        .filter_map(|pid| process_ticks(pid).map(|t| (pid, t)))
        .collect()
}

fn processes_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .collect()
}

/// utime + stime of a whole process (all its threads) from `/proc/PID/stat`.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&stat)
}

fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count fields after
    // the last ')'. There, index 0 is field 3 (state), so utime (14) and stime (15) are 11, 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (w) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0";
        assert_eq!(parse_stat_ticks(stat), Some(1234 + 567));
    }

    #[test]
    fn watch_specs() {
        let w = Watch::parse("node=12,34").expect("pids");
        assert!(matches!(w.selector, Selector::Pids(ref p) if p == &[12, 34]));
        let w = Watch::parse("postgres=comm:postgres").expect("comm");
        assert!(matches!(w.selector, Selector::Comm(ref c) if c == "postgres"));
        assert!(Watch::parse("node").is_err());
        assert!(Watch::parse("node=x").is_err());
    }

    #[test]
    fn this_process_burns_measurable_cpu() {
        let watches = [Watch::this_process()];
        let before = snapshot(&watches);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let spent = since(&watches, &before);
        assert!(spent[0].1 >= Duration::from_millis(50), "{spent:?}");
    }
}
