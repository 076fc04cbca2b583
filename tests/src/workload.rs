//! What the fault tests produce: records put in chunks, and a stream resharded
//! while records keep coming (a split, then a merge of the split's children).

use std::collections::HashMap;

use aws_sdk_kinesis::Client;

use crate::kinesis;

/// Puts `(partition key, payload)` records, 500 a request.
pub async fn put(client: &Client, stream: &str, records: &[(String, String)]) {
    for chunk in records.chunks(500) {
        kinesis::put_records(
            client,
            stream,
            chunk.iter().map(|(k, d)| (k.as_str(), d.as_bytes())),
        )
        .await;
    }
}

/// With the first records already in the stream (a consumer that is behind),
/// splits the first shard, puts the first half of `rest`, merges the split's
/// two children, puts the second half; returns each shard's parents.
///
/// # Panics
/// When the emulator refuses a step.
pub async fn put_while_resharding(
    client: &Client,
    stream: &str,
    rest: &[(String, String)],
) -> HashMap<String, Vec<String>> {
    let first = kinesis::list_shards(client, stream).await[0].clone();
    kinesis::split_shard(client, stream, &first.shard_id).await;
    let (second, third) = rest.split_at(rest.len() / 2);
    put(client, stream, second).await;
    let children: Vec<_> = kinesis::list_shards(client, stream)
        .await
        .into_iter()
        .filter(|s| !s.is_closed() && s.parent_shard_id.is_some())
        .collect();
    kinesis::merge_shards(client, stream, &children[0].shard_id, &children[1].shard_id).await;
    put(client, stream, third).await;
    lineage(client, stream).await
}

/// Each shard of `stream` and its parents.
pub async fn lineage(client: &Client, stream: &str) -> HashMap<String, Vec<String>> {
    kinesis::list_shards(client, stream)
        .await
        .into_iter()
        .map(|s| {
            let parents = [s.parent_shard_id, s.adjacent_parent_shard_id]
                .into_iter()
                .flatten()
                .collect();
            (s.shard_id, parents)
        })
        .collect()
}

/// Whether `lineage` shows a split and a merge (three shards with parents).
pub fn resharded(lineage: &HashMap<String, Vec<String>>) -> bool {
    lineage.values().filter(|p| !p.is_empty()).count() >= 3
}
