//! A reshard of the source stream, as the scenario plans it: a split of an
//! open shard at the middle of its hash range, or a merge of two adjacent
//! open shards.

use crate::kinesis::KinesisService;
use crate::scenario::Reshard;

/// Applies `reshard` to `stream`; a plan that no longer fits (too few open
/// shards to merge) is left out.
pub fn apply(kinesis: &KinesisService, stream: &str, reshard: Reshard) {
    let Ok(mut open) = kinesis.shards(stream) else {
        return;
    };
    open.retain(|s| s.is_open());
    open.sort_by_key(|s| s.starting_hash_key);
    match reshard {
        Reshard::Split { shard, .. } => {
            let Some(target) = open.get(shard % open.len().max(1)) else {
                return;
            };
            let middle = target.starting_hash_key / 2 + target.ending_hash_key / 2;
            if middle > target.starting_hash_key {
                let _ = kinesis.split_shard(stream, &target.shard_id, middle);
            }
        }
        Reshard::Merge { shard, .. } if open.len() > 1 => {
            let at = shard % (open.len() - 1);
            let _ = kinesis.merge_shards(stream, &open[at].shard_id, &open[at + 1].shard_id);
        }
        Reshard::Merge { .. } => {}
    }
}
