//! Sticky, balanced assignment of partitions to group members.
//!
//! Members keep the partitions they already had as long as they still
//! subscribe to them and hold no more than their fair share; only the
//! surplus and unowned partitions move, each to the eligible member with
//! the fewest. A final pass evens out counts one partition at a time.

use std::collections::{BTreeMap, BTreeSet};

use super::offsets::Tp;

/// Input for one member.
#[derive(Debug, Clone)]
pub struct MemberInput {
    /// Subscribed topics.
    pub topics: BTreeSet<String>,
    /// Its previous target assignment.
    pub previous: BTreeSet<Tp>,
}

/// Computes the target assignment. `partitions` maps each existing topic
/// to its partition count.
pub fn assign(
    members: &BTreeMap<String, MemberInput>,
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut out: BTreeMap<String, BTreeSet<Tp>> = members
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    if members.is_empty() {
        return out;
    }
    let eligible = |m: &str, tp: &Tp| members.get(m).is_some_and(|i| i.topics.contains(&tp.0));
    // Every partition of every subscribed, existing topic.
    let all: BTreeSet<Tp> = members
        .values()
        .flat_map(|m| m.topics.iter())
        .filter_map(|t| partitions.get(t).map(|n| (t, *n)))
        .flat_map(|(t, n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    let quota = all.len().div_ceil(members.len()).max(1);
    // Keep what each member had, up to its quota.
    let mut taken = BTreeSet::new();
    for (m, input) in members {
        let keep = out.entry(m.clone()).or_default();
        for tp in &input.previous {
            if keep.len() >= quota {
                break;
            }
            if all.contains(tp) && eligible(m, tp) && !taken.contains(tp) {
                keep.insert(tp.clone());
                taken.insert(tp.clone());
            }
        }
    }
    // Hand out the rest, each to the least-loaded eligible member.
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let target = out
            .iter()
            .filter(|(m, _)| eligible(m, tp))
            .min_by_key(|(m, set)| (set.len(), (*m).clone()))
            .map(|(m, _)| m.clone());
        if let Some(m) = target {
            out.entry(m).or_default().insert(tp.clone());
        }
    }
    // Even out: move single partitions from the fullest to the emptiest
    // eligible member until no move narrows the gap.
    loop {
        let mut moved = false;
        let order: Vec<(String, usize)> = out.iter().map(|(m, s)| (m.clone(), s.len())).collect();
        'outer: for (big, big_n) in order.iter().rev() {
            for (small, small_n) in &order {
                if big_n <= &(small_n + 1) {
                    continue;
                }
                let candidate = out[big]
                    .iter()
                    .rev()
                    .find(|tp| eligible(small, tp))
                    .cloned();
                if let Some(tp) = candidate {
                    if let Some(s) = out.get_mut(big) {
                        s.remove(&tp);
                    }
                    out.entry(small.clone()).or_default().insert(tp);
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(
        ids: &[&str],
        topics: &[&str],
        prev: &BTreeMap<String, BTreeSet<Tp>>,
    ) -> BTreeMap<String, MemberInput> {
        ids.iter()
            .map(|m| {
                (
                    m.to_string(),
                    MemberInput {
                        topics: topics.iter().map(|t| t.to_string()).collect(),
                        previous: prev.get(*m).cloned().unwrap_or_default(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn balanced_and_sticky() {
        let parts = BTreeMap::from([("t".to_string(), 6)]);
        let a = assign(&members(&["a", "b", "c"], &["t"], &BTreeMap::new()), &parts);
        assert!(a.values().all(|s| s.len() == 2), "{a:?}");
        let union: BTreeSet<_> = a.values().flatten().cloned().collect();
        assert_eq!(union.len(), 6);
        // c leaves: only c's partitions move.
        let b = assign(&members(&["a", "b"], &["t"], &a), &parts);
        assert!(
            a["a"].is_subset(&b["a"]) && a["b"].is_subset(&b["b"]),
            "{a:?} -> {b:?}"
        );
        assert_eq!(b["a"].len() + b["b"].len(), 6);
        assert_eq!(b["a"].len(), 3);
        // d joins: each of a and b gives up exactly one.
        let c = assign(&members(&["a", "b", "d"], &["t"], &b), &parts);
        assert!(c.values().all(|s| s.len() == 2), "{c:?}");
        assert!(c["a"].is_subset(&b["a"]) && c["b"].is_subset(&b["b"]));
    }

    #[test]
    fn respects_subscriptions_and_missing_topics() {
        let parts = BTreeMap::from([("x".to_string(), 2), ("y".to_string(), 2)]);
        let mut m = members(&["a"], &["x"], &BTreeMap::new());
        m.extend(members(&["b"], &["y", "nope"], &BTreeMap::new()));
        let a = assign(&m, &parts);
        assert!(a["a"].iter().all(|tp| tp.0 == "x") && a["a"].len() == 2);
        assert!(a["b"].iter().all(|tp| tp.0 == "y") && a["b"].len() == 2);
    }
}
