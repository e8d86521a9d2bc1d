//! Image garbage collection, as the kubelet does it: when the disk holding
//! the store is fuller than the high threshold, unused images are removed,
//! oldest first, until it is below the low threshold.

use std::collections::HashSet;
use std::path::Path;

use rustix::fs::statvfs;

use crate::digest::ImageId;
use crate::error::{IoContext, Result};
use crate::store::ImageStore;

/// Disk usage thresholds in percent of the store's file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcThresholds {
    /// Collection starts above this (the kubelet's `imageGCHighThresholdPercent`).
    pub high_percent: u8,
    /// and stops at or below this (`imageGCLowThresholdPercent`).
    pub low_percent: u8,
}

impl Default for GcThresholds {
    /// The kubelet's defaults.
    fn default() -> GcThresholds {
        GcThresholds {
            high_percent: 85,
            low_percent: 80,
        }
    }
}

/// What a collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Disk usage when the collection started, in percent.
    pub usage_percent: u8,
    pub removed: Vec<ImageId>,
    /// Bytes the file system gained.
    pub freed_bytes: u64,
}

impl ImageStore {
    /// How full the store's file system is, in percent, as `df` counts it
    /// and as [`GcThresholds`] are compared with.
    pub fn disk_usage_percent(&self) -> Result<u8> {
        disk_usage(self.root()).map(|(percent, _)| percent)
    }

    /// Removes images not in `in_use`, oldest first, while the disk is fuller
    /// than the thresholds allow, with the blobs and layers only they used.
    /// Blob deletion waits for running pulls and imports to end: when one
    /// runs, the collection stops after removing one image.
    pub fn gc(&self, in_use: &HashSet<ImageId>, thresholds: GcThresholds) -> Result<GcReport> {
        let (usage_percent, available_before) = disk_usage(self.root())?;
        let mut report = GcReport {
            usage_percent,
            ..GcReport::default()
        };
        if usage_percent < thresholds.high_percent {
            return Ok(report);
        }
        let mut candidates: Vec<_> = self
            .list()?
            .into_iter()
            .filter(|image| !in_use.contains(&image.id))
            .collect();
        candidates.sort_by_key(|image| image.added);
        for image in candidates {
            self.remove(image.id.as_str())?;
            report.removed.push(image.id);
            let pruned = self.prune()?;
            let (usage, _) = disk_usage(self.root())?;
            if !pruned || usage <= thresholds.low_percent {
                break;
            }
        }
        let (_, available_after) = disk_usage(self.root())?;
        report.freed_bytes = available_after.saturating_sub(available_before);
        Ok(report)
    }
}

/// Percent used (as `df` counts it, against what is available to us) and
/// bytes available.
fn disk_usage(path: &Path) -> Result<(u8, u64)> {
    let stat = statvfs(path).context(|| format!("statvfs {}", path.display()))?;
    let used = stat.f_blocks.saturating_sub(stat.f_bfree);
    let usable = used + stat.f_bavail;
    let percent = if usable == 0 {
        0
    } else {
        (used * 100).div_ceil(usable)
    };
    Ok((
        u8::try_from(percent).unwrap_or(100),
        stat.f_bavail * stat.f_frsize,
    ))
}
