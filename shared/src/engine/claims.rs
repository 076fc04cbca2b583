//! Dedup claims of a batch: one store call claims the keys of every record
//! that may be handled; the records that lost are duplicates.

use std::collections::HashMap;

use super::EngineError;
use super::run::ShardRun;
use super::units::Units;
use crate::decode::Item;
use crate::handler::Handler;
use crate::record::{Position, Record};
use crate::state::{ClaimOutcome, DedupClaim};

/// The dedup claims of a batch: records that lost theirs, and those won.
#[derive(Default)]
pub(super) struct Claims {
    pub duplicates: HashMap<Position, String>,
    pub won: HashMap<Position, DedupClaim>,
}

impl<H: Handler> ShardRun<'_, H> {
    /// Claims the dedup keys of the records that may be handled, in one store
    /// call: records that lost (duplicates, with the holder) and the claims won.
    pub(super) async fn claim_dedup_keys(
        &self,
        items: &[Item],
        units: &Units,
    ) -> Result<Claims, EngineError> {
        let mut claims = Claims::default();
        let Some(rule) = &self.config.skip.dedup else {
            return Ok(claims);
        };
        let mut wanted: Vec<(Position, DedupClaim)> = Vec::new();
        let mut first_owner: HashMap<String, String> = HashMap::new();
        for item in items {
            let Item::Ready(record) = item else { continue };
            let done = units.is_done(record);
            if self
                .config
                .skip
                .rule_for(record, self.now, done, false)
                .is_some()
            {
                continue;
            }
            let Some(key) = (rule.key)(record) else {
                continue;
            };
            // A key twice in one batch: the first record claims it, the later
            // ones are duplicates without a store round trip.
            if let Some(holder) = first_owner.get(&key) {
                claims
                    .duplicates
                    .insert(record.position.clone(), holder.clone());
                continue;
            }
            let owner = owner_of(record);
            first_owner.insert(key.clone(), owner.clone());
            let expires_at = self.now + rule.window;
            wanted.push((
                record.position.clone(),
                DedupClaim {
                    key,
                    owner,
                    expires_at,
                },
            ));
        }
        if wanted.is_empty() {
            return Ok(claims);
        }
        let only_claims: Vec<DedupClaim> = wanted.iter().map(|(_, c)| c.clone()).collect();
        let outcomes = self
            .store
            .claim_dedup_keys(&self.key.consumer, &only_claims, self.now)
            .await
            .map_err(|e| self.state_error(e))?;
        for ((position, claim), outcome) in wanted.into_iter().zip(outcomes) {
            match outcome {
                ClaimOutcome::HeldBy(holder) => {
                    claims.duplicates.insert(position, holder);
                }
                ClaimOutcome::Won => {
                    claims.won.insert(position, claim);
                }
            }
        }
        Ok(claims)
    }
}

/// The owner name of a record's dedup claim.
fn owner_of(record: &Record) -> String {
    format!(
        "{}|{}|{}",
        record.shard.stream_arn, record.shard.shard_id, record.position
    )
}
