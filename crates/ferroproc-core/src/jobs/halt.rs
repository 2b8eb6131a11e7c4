//! GNU parallel's `--halt when,why=X|Y%`: when enough jobs have failed,
//! succeeded or ended, stop starting jobs (`soon`), or also stop the running
//! ones (`now`).

/// Whether the running jobs are stopped too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltWhen {
    /// Stop the running jobs too.
    Now,
    /// Let the running jobs finish; start no more.
    Soon,
}

/// Which jobs count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltOn {
    Fail,
    Success,
    Done,
}

/// How many jobs it takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// This many jobs.
    Count(u64),
    /// This percentage of all the jobs (known once the total is).
    Percent(f64),
}

/// A halt policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HaltPolicy {
    pub when: HaltWhen,
    pub on: HaltOn,
    pub threshold: Threshold,
}

/// Jobs that have ended for good (retried jobs once, after their last attempt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub succeeded: u64,
    pub failed: u64,
}

impl Counts {
    /// Every job that ended.
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed
    }
}

impl HaltPolicy {
    /// Whether `counts` reach the policy's threshold, `total` being the
    /// number of jobs when known (a percentage waits for it). As GNU
    /// parallel: the count is compared with `total × percent` unrounded, so
    /// 3% of 10 jobs is reached by the first.
    pub fn reached(&self, counts: &Counts, total: Option<u64>) -> bool {
        let limit = match self.on {
            HaltOn::Fail => counts.failed,
            HaltOn::Success => counts.succeeded,
            HaltOn::Done => counts.done(),
        };
        if limit == 0 {
            return false;
        }
        match self.threshold {
            Threshold::Count(n) => limit >= n,
            Threshold::Percent(p) => total.is_some_and(|t| limit as f64 >= t as f64 * p / 100.0),
        }
    }
}
