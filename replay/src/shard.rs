//! Splitting a replay among processes (`--shard i/n`): each partition's offsets are cut at
//! fixed multiples of a stride into units, and unit `k` of partition `p` belongs to shard
//! `(p + k) mod n`. The cuts depend on offsets alone, not on any process's snapshot, so the
//! shards' units are disjoint whatever each read, and together cover every offset below the
//! earliest of their snapshots' ends.

use std::ops::Range;

use strato_metadata::model::Offset;

/// Shard `index` of `count` (`i/n` on the command line, 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole job in one process.
    pub const ALL: Shard = Shard { index: 0, count: 1 };
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected i/n, e.g. 0/3"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: bad shard index"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: bad shard count"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "{s:?}: the index must be below the count (0/3, 1/3, 2/3)"
            ));
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The ranges of `range` of partition `partition` that `shard` reads, in offset order:
/// units of `stride` offsets (the last one open to the range's end).
pub fn ranges(
    partition: i32,
    range: Range<Offset>,
    shard: Shard,
    stride: u64,
) -> Vec<Range<Offset>> {
    let stride = i64::try_from(stride.max(1)).unwrap_or(i64::MAX);
    let mut out: Vec<Range<Offset>> = Vec::new();
    if range.start >= range.end {
        return out;
    }
    let first_unit = range.start.max(0) / stride;
    let last_unit = (range.end - 1).max(0) / stride;
    let count = i64::from(shard.count);
    // The first unit that is ours, then every count-th.
    let offset = (i64::from(shard.index) - i64::from(partition) - first_unit).rem_euclid(count);
    let mut unit = first_unit + offset;
    while unit <= last_unit {
        let start = (unit.saturating_mul(stride)).max(range.start);
        let end = unit.saturating_add(1).saturating_mul(stride).min(range.end);
        match out.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => out.push(start..end),
        }
        unit += count;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        assert!("3/3".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("1".parse::<Shard>().is_err());
        assert_eq!(Shard { index: 2, count: 5 }.to_string(), "2/5");
    }

    #[test]
    fn shards_cover_every_offset_once() {
        for count in 1..=4u32 {
            for partition in 0..5 {
                for (from, to, stride) in [
                    (0, 100, 7),
                    (13, 14, 7),
                    (5, 1000, 100),
                    (0, 0, 3),
                    (90, 310, 1),
                ] {
                    let mut seen = vec![0u32; to as usize];
                    for index in 0..count {
                        let shard = Shard { index, count };
                        for r in ranges(partition, from..to, shard, stride) {
                            assert!(r.start < r.end && r.start >= from && r.end <= to);
                            for o in r {
                                seen[o as usize] += 1;
                            }
                        }
                    }
                    for (o, n) in seen.iter().enumerate() {
                        let inside = (from..to).contains(&(o as i64));
                        assert_eq!(
                            *n,
                            u32::from(inside),
                            "offset {o} of {from}..{to} / {count}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn cuts_do_not_depend_on_where_a_snapshot_ends() {
        let shard = Shard { index: 1, count: 2 };
        let short = ranges(0, 0..250, shard, 100);
        let long = ranges(0, 0..400, shard, 100);
        assert_eq!(short, vec![100..200]);
        assert_eq!(long, vec![100..200, 300..400]);
    }

    #[test]
    fn partitions_spread_over_shards() {
        // One unit per partition: partition p goes to shard p mod n.
        let owners: Vec<u32> = (0..6)
            .map(|p| {
                (0..3)
                    .find(|&i| !ranges(p, 0..10, Shard { index: i, count: 3 }, 100).is_empty())
                    .unwrap()
            })
            .collect();
        assert_eq!(owners, vec![0, 1, 2, 0, 1, 2]);
    }
}
