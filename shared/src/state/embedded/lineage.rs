//! The embedded store's lineage: a shard's parents and its end, on its row.

use async_trait::async_trait;
use rusqlite::params;

use super::EmbeddedStore;
use super::rows::lineage_columns;
use crate::state::{ConsumerShard, Lineage, LineageStore, StateError};

#[async_trait]
impl LineageStore for EmbeddedStore {
    async fn write_lineage(
        &self,
        key: &ConsumerShard,
        lineage: &Lineage,
    ) -> Result<(), StateError> {
        let (name, rank, parents) = lineage_columns(lineage);
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO shard (consumer, stream_arn, shard_id, version, lineage, parents)
                 VALUES (?1, ?2, ?3, 0, ?4, ?5)
                 ON CONFLICT (consumer, stream_arn, shard_id) DO UPDATE SET
                    lineage = excluded.lineage, parents = excluded.parents
                 WHERE (CASE shard.lineage WHEN 'cleared' THEN 2 WHEN 'pending' THEN 1 ELSE 0 END) <= ?6",
                params![
                    key.consumer,
                    &*key.shard.stream_arn,
                    &*key.shard.shard_id,
                    name,
                    parents,
                    rank
                ],
            )
            .map(drop)
        })
    }

    async fn write_shard_end(
        &self,
        key: &ConsumerShard,
        children: &[String],
    ) -> Result<(), StateError> {
        let children = serde_json::to_string(children).unwrap_or_else(|_| "[]".into());
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO shard (consumer, stream_arn, shard_id, version, ended, children)
                 VALUES (?1, ?2, ?3, 0, 1, ?4)
                 ON CONFLICT (consumer, stream_arn, shard_id) DO UPDATE SET
                    ended = 1, children = excluded.children",
                params![
                    key.consumer,
                    &*key.shard.stream_arn,
                    &*key.shard.shard_id,
                    children
                ],
            )
            .map(drop)
        })
    }
}
