//! The DynamoDB store's [`QuarantineStore`]: the list (one query), replay
//! claims, new failures and deletes on the quarantine items (`{consumer}#quarantine`), each one
//! conditional request (a delete also removes a large payload's parts).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;

use super::DynamoDbStore;
use super::items::quarantined_records;
use super::keys::{PK, SK, quarantine_key_sk, quarantine_pk};
use crate::aws::dynamodb::attr::{Attributes, get_n, item, n, s};
use crate::aws::dynamodb::{DynamoError, read};
use crate::quarantine::{QuarantineKey, QuarantineReason, QuarantinedRecord};
use crate::state::{QuarantineStore, StateError};

fn entry_key(consumer: &str, key: &QuarantineKey) -> Attributes {
    item([
        (PK, s(quarantine_pk(consumer))),
        (SK, s(quarantine_key_sk(key))),
    ])
}

#[async_trait]
impl QuarantineStore for DynamoDbStore {
    async fn list_quarantined(&self, consumer: &str) -> Result<Vec<QuarantinedRecord>, StateError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(quarantine_pk(consumer)))
            .consistent_read(true);
        let items = read::query_all(query, "list quarantined records").await?;
        quarantined_records(items)
    }

    async fn claim_replay(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        now_ms: u64,
        take_over_before: Option<u64>,
    ) -> Result<bool, StateError> {
        let (condition, values) = match take_over_before {
            None => (
                "attribute_exists(pk) AND attribute_not_exists(replay_started_at)",
                item([(":now", n(now_ms))]),
            ),
            Some(before) => (
                "attribute_exists(pk) AND \
                 (attribute_not_exists(replay_started_at) OR replay_started_at <= :before)",
                item([(":now", n(now_ms)), (":before", n(before))]),
            ),
        };
        self.update_if(
            entry_key(consumer, key),
            "SET replay_started_at = :now",
            condition,
            values,
            "claim a quarantined record for a replay",
        )
        .await
    }

    async fn requeue(
        &self,
        consumer: &str,
        key: &QuarantineKey,
        reason: QuarantineReason,
        detail: &str,
        attempts: u32,
    ) -> Result<(), StateError> {
        // A record deleted meanwhile (purged) stays deleted.
        self.update_if(
            entry_key(consumer, key),
            "SET reason = :reason, detail = :detail, attempts = :attempts REMOVE replay_started_at",
            "attribute_exists(pk)",
            item([
                (":reason", s(reason.name())),
                (":detail", s(detail)),
                (":attempts", n(attempts)),
            ]),
            "record a replay's failure",
        )
        .await?;
        Ok(())
    }

    async fn remove_quarantined(
        &self,
        consumer: &str,
        key: &QuarantineKey,
    ) -> Result<bool, StateError> {
        let operation = "delete a quarantined record";
        let old = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(entry_key(consumer, key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| DynamoError::service(operation, e))?;
        let Some(old) = old.attributes() else {
            return Ok(false);
        };
        // The parts of a large payload follow the entry: `{sk}#part#0001`...
        let parts: u64 = get_n(old, "parts").unwrap_or(1);
        let sk = quarantine_key_sk(key);
        for part in 1..parts {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(item([
                    (PK, s(quarantine_pk(consumer))),
                    (SK, s(format!("{sk}#part#{part:04}"))),
                ])))
                .send()
                .await
                .map_err(|e| DynamoError::service(operation, e))?;
        }
        Ok(true)
    }
}
