//! The deletion guards: a run that would delete more than `--max-delete` of either side's
//! files, or that finds a side empty where the index expects files, stops before deleting.

/// `--max-delete`: a share of a side's files, or a number of files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDelete {
    Percent(f64),
    Count(u64),
}

impl Default for MaxDelete {
    fn default() -> Self {
        MaxDelete::Percent(50.0)
    }
}

impl MaxDelete {
    pub fn parse(s: &str) -> Result<MaxDelete, String> {
        let bad = || format!("--max-delete {s}: give a share like 50% or a number of files like 100");
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(MaxDelete::Percent(v)),
                _ => Err(bad()),
            },
            None => s.trim().parse::<u64>().map(MaxDelete::Count).map_err(|_| bad()),
        }
    }
}
