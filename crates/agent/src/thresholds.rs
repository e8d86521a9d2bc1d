//! The hard eviction thresholds (the kubelet's `--eviction-hard`): below
//! one the node reports memory, disk or PID pressure, and the amount of
//! memory and disk it names is held back from what pods may be given
//! (allocatable), as the kubelet does.
//!
//! The syntax is the kubelet's, `memory.available<100Mi,nodefs.available<10%`:
//! each signal below a quantity or a percentage of its capacity. As with the
//! kubelet's flag, the thresholds given replace the defaults whole: a signal
//! left out has no threshold, and `0%` or `100%` turns a signal off.

use std::str::FromStr;

use tugboat_api::quantity;

/// The default: the kubelet's memory and disk thresholds, and PID pressure
/// once less than a tenth of `pid_max` is left.
pub const DEFAULT: &str = "memory.available<100Mi,nodefs.available<10%,pid.available<10%";

/// The signals the agent watches; the kubelet's others (inodes, a separate
/// image file system) have nothing to measure here.
const SIGNALS: [&str; 3] = ["memory.available", "nodefs.available", "pid.available"];

/// One threshold: an amount (bytes; process ids for `pid.available`) or a
/// percentage of the signal's capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    Quantity(u64),
    Percent(f64),
}

impl Threshold {
    /// The threshold as an amount, for a resource of `capacity`; a share is
    /// rounded down, as the kubelet's `GetThresholdQuantity` does.
    pub fn of(self, capacity: u64) -> u64 {
        match self {
            Threshold::Quantity(amount) => amount,
            // Multiplying before dividing keeps a whole percentage of a
            // whole number exact (`1%` of 300 is 3, not 2.9999).
            Threshold::Percent(percent) => (capacity as f64 * percent / 100.0) as u64,
        }
    }
}

/// The thresholds of the signals the agent watches; `None`: no threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvictionThresholds {
    pub memory_available: Option<Threshold>,
    pub nodefs_available: Option<Threshold>,
    pub pid_available: Option<Threshold>,
}

impl EvictionThresholds {
    /// Whether `available` of `capacity` is below the signal's threshold.
    pub fn met(threshold: Option<Threshold>, available: u64, capacity: u64) -> bool {
        threshold.is_some_and(|t| available < t.of(capacity))
    }

    /// What the threshold holds back of `capacity` from pods.
    pub fn reserved(threshold: Option<Threshold>, capacity: u64) -> u64 {
        threshold.map_or(0, |t| t.of(capacity).min(capacity))
    }
}

impl Default for EvictionThresholds {
    fn default() -> EvictionThresholds {
        DEFAULT.parse().expect("the default thresholds parse")
    }
}

impl FromStr for EvictionThresholds {
    type Err = String;

    /// Reads the kubelet's syntax, refusing what the kubelet refuses with
    /// its words, and the signals it knows that the agent does not watch.
    fn from_str(text: &str) -> Result<EvictionThresholds, String> {
        let mut thresholds = EvictionThresholds {
            memory_available: None,
            nodefs_available: None,
            pid_available: None,
        };
        for statement in text.split(',').filter(|s| !s.is_empty()) {
            let (signal, value) = statement
                .split_once('<')
                .ok_or_else(|| format!("malformed pair, expect string<string: {statement:?}"))?;
            let (signal, value) = (signal.trim(), value.trim());
            let slot = match signal {
                "memory.available" => &mut thresholds.memory_available,
                "nodefs.available" => &mut thresholds.nodefs_available,
                "pid.available" => &mut thresholds.pid_available,
                _ => {
                    return Err(format!(
                        "unsupported eviction signal {signal} (supported: {})",
                        SIGNALS.join(", ")
                    ));
                }
            };
            *slot = threshold(signal, value)?;
        }
        Ok(thresholds)
    }
}

/// One signal's value, checked as the kubelet's `parseThresholdStatement`
/// checks it.
fn threshold(signal: &str, value: &str) -> Result<Option<Threshold>, String> {
    if let Some(number) = value.strip_suffix('%') {
        // The kubelet drops these two: nothing is below 0 %, and everything
        // but an empty resource is below 100 %.
        if value == "0%" || value == "100%" {
            return Ok(None);
        }
        let percent = number
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite())
            .ok_or_else(|| {
                format!("eviction percentage threshold {signal} is not a number: {value}")
            })?;
        if percent < 0.0 {
            return Err(format!(
                "eviction percentage threshold {signal} must be >= 0%: {value}"
            ));
        }
        if percent > 100.0 {
            return Err(format!(
                "eviction percentage threshold {signal} must be <= 100%: {value}"
            ));
        }
        return Ok(Some(Threshold::Percent(percent)));
    }
    let amount = quantity::value(value).ok_or_else(|| {
        format!(
            "eviction threshold {signal}: quantities must match the regular expression \
             '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value:?}"
        )
    })?;
    if amount <= 0 {
        return Err(format!(
            "eviction threshold {signal} must be positive: {value}"
        ));
    }
    Ok(Some(Threshold::Quantity(
        u64::try_from(amount).unwrap_or(u64::MAX),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EvictionThresholds, String> {
        text.parse()
    }

    #[test]
    fn the_default_is_the_kubelets_memory_and_disk_and_a_tenth_of_the_pids() {
        let default = EvictionThresholds::default();
        assert_eq!(
            default.memory_available,
            Some(Threshold::Quantity(100 << 20))
        );
        assert_eq!(default.nodefs_available, Some(Threshold::Percent(10.0)));
        assert_eq!(default.pid_available, Some(Threshold::Percent(10.0)));
    }

    #[test]
    fn quantities_and_percentages_are_read_and_the_rest_left_without_threshold() {
        let thresholds = parse(" nodefs.available < 1% ,memory.available<1.5Gi,").unwrap();
        assert_eq!(
            thresholds,
            EvictionThresholds {
                memory_available: Some(Threshold::Quantity(3 << 29)),
                nodefs_available: Some(Threshold::Percent(1.0)),
                pid_available: None,
            }
        );
        let pids = parse("pid.available<1k").unwrap();
        assert_eq!(pids.pid_available, Some(Threshold::Quantity(1000)));
        assert_eq!(pids.memory_available, None);
        // The last word on a signal counts, as in the kubelet's map.
        let twice = parse("nodefs.available<5%,nodefs.available<2Gi").unwrap();
        assert_eq!(twice.nodefs_available, Some(Threshold::Quantity(2 << 30)));
        for off in ["nodefs.available<0%", "nodefs.available<100%"] {
            assert_eq!(parse(off).unwrap().nodefs_available, None, "{off}");
        }
        assert_eq!(
            parse("").unwrap(),
            EvictionThresholds {
                memory_available: None,
                nodefs_available: None,
                pid_available: None,
            }
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_kubelets_words() {
        let refusals = [
            ("nodefs.available", "malformed pair, expect string<string"),
            (
                "imagefs.available<15%",
                "unsupported eviction signal imagefs.available (supported: memory.available, nodefs.available, pid.available)",
            ),
            ("memory<100Mi", "unsupported eviction signal memory"),
            (
                "nodefs.available<101%",
                "eviction percentage threshold nodefs.available must be <= 100%: 101%",
            ),
            (
                "nodefs.available<-1%",
                "eviction percentage threshold nodefs.available must be >= 0%: -1%",
            ),
            (
                "nodefs.available<ten%",
                "eviction percentage threshold nodefs.available is not a number: ten%",
            ),
            (
                "memory.available<100Mb",
                "eviction threshold memory.available: quantities must match",
            ),
            (
                "memory.available<0",
                "eviction threshold memory.available must be positive: 0",
            ),
            (
                "pid.available<-5",
                "eviction threshold pid.available must be positive: -5",
            ),
        ];
        for (text, wanted) in refusals {
            let error = parse(text).expect_err(text);
            assert!(error.starts_with(wanted), "{text}: {error}");
        }
    }

    #[test]
    fn a_threshold_is_met_below_its_amount_or_its_share_of_the_capacity() {
        let tenth = Some(Threshold::Percent(10.0));
        assert!(EvictionThresholds::met(tenth, 99, 1000));
        assert!(!EvictionThresholds::met(tenth, 100, 1000));
        let amount = Some(Threshold::Quantity(100));
        assert!(EvictionThresholds::met(amount, 99, 1_000_000));
        assert!(!EvictionThresholds::met(amount, 100, 10));
        assert!(!EvictionThresholds::met(None, 0, 1000));
        // A whole percentage of a whole amount is exact.
        assert_eq!(
            EvictionThresholds::reserved(Some(Threshold::Percent(1.0)), 300),
            3
        );
        assert_eq!(
            EvictionThresholds::reserved(Some(Threshold::Percent(1.0)), 270_553_174_000),
            2_705_531_740
        );
        assert_eq!(EvictionThresholds::reserved(amount, 10), 10, "at most all");
        assert_eq!(EvictionThresholds::reserved(None, 10), 0);
    }
}
