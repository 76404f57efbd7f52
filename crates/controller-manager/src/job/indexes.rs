//! Completion indexes of Indexed Jobs as ordered, disjoint intervals, the
//! form `status.completedIndexes` takes ("1,3-5"), and the choice of which
//! indexes to start next (upstream's `orderedIntervals`, `firstPendingIndexes`).

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// The annotation (and label) carrying a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// Sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(i32, i32)>);

impl Intervals {
    /// Parses "1,3-5", dropping what is malformed or not below `completions`,
    /// as upstream's `parseIndexesFromString` does.
    pub fn parse(text: &str, completions: i32) -> Intervals {
        let mut indexes = BTreeSet::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let bounds = match part.split_once('-') {
                Some((first, last)) => first.parse::<i32>().ok().zip(last.parse::<i32>().ok()),
                None => part.parse::<i32>().ok().map(|i| (i, i)),
            };
            if let Some((first, last)) = bounds.filter(|(f, l)| *f >= 0 && f <= l) {
                indexes.extend(first..=last.min(completions - 1));
            }
        }
        Intervals::from_sorted(indexes)
    }

    fn from_sorted(indexes: impl IntoIterator<Item = i32>) -> Intervals {
        let mut out: Vec<(i32, i32)> = Vec::new();
        for ix in indexes {
            match out.last_mut() {
                Some((_, last)) if *last + 1 >= ix => *last = (*last).max(ix),
                _ => out.push((ix, ix)),
            }
        }
        Intervals(out)
    }

    /// These intervals plus `indexes`.
    pub fn with(&self, indexes: impl IntoIterator<Item = i32>) -> Intervals {
        let all: BTreeSet<i32> = self.iter().chain(indexes).collect();
        Intervals::from_sorted(all)
    }

    pub fn has(&self, ix: i32) -> bool {
        self.0.iter().any(|(first, last)| (*first..=*last).contains(&ix))
    }

    pub fn total(&self) -> i32 {
        self.0.iter().map(|(first, last)| last - first + 1).sum()
    }

    fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        self.0.iter().flat_map(|(first, last)| *first..=*last)
    }
}

impl fmt::Display for Intervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(first, last)| match last - first {
                0 => first.to_string(),
                _ => format!("{first}-{last}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A pod's completion index: the annotation, else the label; `None` when
/// absent or not a non-negative number.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let value = pod
        .annotations()
        .get(COMPLETION_INDEX)
        .or_else(|| pod.labels().get(COMPLETION_INDEX))?;
    value.parse::<i32>().ok().filter(|ix| *ix >= 0)
}

/// The lowest `count` indexes below `completions` that neither succeeded
/// nor have an active pod.
pub fn first_pending(succeeded: &Intervals, active: &[Pod], count: usize, completions: i32) -> Vec<i32> {
    let busy = succeeded.with(active.iter().filter_map(completion_index));
    (0..completions).filter(|ix| !busy.has(*ix)).take(count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    #[test]
    fn compresses_to_ranges() {
        let ix = Intervals::default().with([5, 1, 3, 4]);
        assert_eq!(ix.to_string(), "1,3-5");
        assert_eq!(ix.total(), 4);
        assert_eq!(Intervals::default().with([0, 1, 2]).to_string(), "0-2");
        assert_eq!(Intervals::default().to_string(), "");
    }

    #[test]
    fn parses_what_it_prints_and_drops_the_rest() {
        let ix = Intervals::parse("1,3-5,9", 8);
        assert_eq!(ix.to_string(), "1,3-5");
        assert!(ix.has(4) && !ix.has(2));
        assert_eq!(Intervals::parse("x,2-1,-3,2", 5).to_string(), "2");
        assert_eq!(Intervals::parse("0-1", 5).with([2, 4]).to_string(), "0-2,4");
    }

    fn pod_with_index(ix: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                annotations: Some([(COMPLETION_INDEX.to_string(), ix.to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn pending_skips_succeeded_and_active_indexes() {
        let succeeded = Intervals::parse("0,2", 6);
        let active = [pod_with_index("1"), pod_with_index("bad")];
        assert_eq!(first_pending(&succeeded, &active, 2, 6), [3, 4]);
        assert_eq!(first_pending(&succeeded, &active, 9, 6), [3, 4, 5]);
        assert_eq!(completion_index(&active[1]), None);
    }
}
