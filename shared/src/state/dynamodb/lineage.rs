//! The DynamoDB store's lineage: a shard's parents and its end, on its item.

use async_trait::async_trait;

use super::DynamoDbStore;
use crate::aws::dynamodb::attr::{item, list, n, s};
use crate::state::{ConsumerShard, Lineage, LineageStore, StateError};

#[async_trait]
impl LineageStore for DynamoDbStore {
    async fn write_lineage(
        &self,
        key: &ConsumerShard,
        lineage: &Lineage,
    ) -> Result<(), StateError> {
        let (name, rank, parents) = match lineage {
            Lineage::Unknown => return Ok(()),
            Lineage::Pending { parents } => ("pending", 1, parents),
            Lineage::Cleared { parents } => ("cleared", 2, parents),
        };
        // A failed condition: another invocation got further already.
        self.update_shard(
            key,
            "SET lineage = :name, lineage_rank = :rank, parents = :parents",
            Some("attribute_not_exists(lineage_rank) OR lineage_rank <= :rank"),
            &[],
            item([
                (":name", s(name)),
                (":rank", n(rank)),
                (":parents", list(parents)),
            ]),
            "record a shard's lineage",
        )
        .await
    }

    async fn write_shard_end(
        &self,
        key: &ConsumerShard,
        children: &[String],
    ) -> Result<(), StateError> {
        self.update_shard(
            key,
            "SET #status = :ended, children = :children",
            None,
            &[("#status", "status")],
            item([(":ended", s("ended")), (":children", list(children))]),
            "record a shard's end",
        )
        .await
    }
}
