//! Archive-set decisions as pure functions: which sets `prune` deletes.
//!
//! As Deltaic: keep the newest `keep-count` complete sets; delete older
//! complete ones and every incomplete set but the newest set of all (it may
//! be a run in progress or one to resume); never delete a protected set.

use super::SetInfo;
use serde::Serialize;
use std::collections::BTreeMap;

/// What prune does with one set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetMark {
    Keep,
    Remove,
    /// Would be removed, but the archiver protects it.
    Protected,
}

/// The prune plan for `sets` (names sort oldest first, as snapshot names do).
#[must_use]
pub fn plan_prune(sets: &BTreeMap<String, SetInfo>, keep_count: u32) -> Vec<(String, SetMark)> {
    let newest = sets.keys().next_back().cloned();
    let complete: Vec<&String> = sets
        .iter()
        .filter(|(_, s)| s.complete)
        .map(|(n, _)| n)
        .collect();
    let keep_from = complete.len().saturating_sub(keep_count as usize);
    let kept_complete: Vec<&String> = complete[keep_from..].to_vec();
    sets.iter()
        .map(|(name, info)| {
            let remove = if info.complete {
                !kept_complete.contains(&name)
            } else {
                Some(name) != newest.as_ref()
            };
            let mark = match (remove, info.protected) {
                (false, _) => SetMark::Keep,
                (true, true) => SetMark::Protected,
                (true, false) => SetMark::Remove,
            };
            (name.clone(), mark)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(complete: bool, protected: bool) -> SetInfo {
        SetInfo {
            count: 1,
            size: 1,
            complete,
            protected,
        }
    }

    #[test]
    fn prune_keeps_newest_complete_and_newest_incomplete_and_protected() {
        let sets: BTreeMap<String, SetInfo> = [
            ("20260101-1", set(true, false)),
            ("20260102-1", set(false, false)),
            ("20260103-1", set(true, true)),
            ("20260104-1", set(true, false)),
            ("20260105-1", set(true, false)),
            ("20260106-1", set(false, false)),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s))
        .collect();
        let plan: Vec<SetMark> = plan_prune(&sets, 2).into_iter().map(|(_, m)| m).collect();
        assert_eq!(
            plan,
            [
                SetMark::Remove,
                SetMark::Remove,
                SetMark::Protected,
                SetMark::Keep,
                SetMark::Keep,
                SetMark::Keep
            ]
        );
        assert!(plan_prune(&BTreeMap::new(), 1).is_empty());
    }
}
