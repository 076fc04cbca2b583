//! Creating a table (for local emulators and tests; in AWS the SAM template does).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

use super::{BACKOFF, DynamoError};
use crate::retry::{Limits, Step, Stopped};

/// DescribeTable calls while a new table becomes active (about 30 s at
/// most, with [`BACKOFF`]'s pauses).
const TABLE_WAIT_TRIES: u32 = 50;

/// The shape of a table: string keys, on-demand capacity, an optional TTL attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchema<'a> {
    /// The string hash key.
    pub hash_key: &'a str,
    /// The string range key, if any.
    pub range_key: Option<&'a str>,
    /// The TTL attribute, if any.
    pub ttl_attribute: Option<&'a str>,
}

/// Creates `table` with `schema` if it does not exist, and waits until it is active.
///
/// # Errors
/// [`DynamoError`] when DynamoDB refuses.
pub async fn create_table(
    client: &Client,
    table: &str,
    schema: KeySchema<'_>,
) -> Result<(), DynamoError> {
    let operation = "create a table";
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in [
        (Some(schema.hash_key), KeyType::Hash),
        (schema.range_key, KeyType::Range),
    ] {
        let Some(name) = name else { continue };
        let definition = AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| DynamoError::build(operation, e))?;
        let element = KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| DynamoError::build(operation, e))?;
        request = request
            .attribute_definitions(definition)
            .key_schema(element);
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => return Err(DynamoError::service(operation, e)),
    }
    // Wait until it is active; past the tries, go on (the next request says
    // what is wrong, if anything is).
    let waited = BACKOFF
        .drive(
            Limits::tries(TABLE_WAIT_TRIES),
            (),
            |()| client.describe_table().table_name(table).send(),
            |described| {
                let described =
                    described.map_err(|e| DynamoError::service("describe a table", e))?;
                let active = described
                    .table()
                    .and_then(|t| t.table_status())
                    .is_some_and(|s| s.as_str() == "ACTIVE");
                Ok(if active {
                    Step::Done(())
                } else {
                    Step::Again(())
                })
            },
            |(), _| (),
        )
        .await;
    if let Err(Stopped::GaveUp(error)) = waited {
        return Err(error);
    }
    if let Some(attribute) = schema.ttl_attribute {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|e| DynamoError::build("enable TTL", e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| DynamoError::service("enable TTL", e))?;
    }
    Ok(())
}
