//! A function's own table: DynamoDB in AWS (its name in an environment
//! variable), SQLite in the state folder locally. [`TableSpec::open`] makes
//! that choice once for every function, and [`StoreError`] is the error of
//! such a store.
//!
//! ```no_run
//! # async fn example(settings: &shardline::config::Settings) -> Result<(), shardline::tables::StoreError> {
//! use shardline::tables::{TableBackend, TableSpec};
//!
//! const ORDERS: TableSpec = TableSpec {
//!     env_var: "ORDERS_TABLE",
//!     local_name: "orders",
//!     hash_key: "pk",
//!     range_key: Some("sk"),
//!     ttl_attribute: None,
//! };
//! match ORDERS.open(settings).await? {
//!     TableBackend::Embedded(conn) => { /* SQLite: create tables, query */ let _ = conn; }
//!     TableBackend::DynamoDb { client, table } => { /* DynamoDB */ let _ = (client, table); }
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "dynamodb")]
use crate::aws::dynamodb::DynamoError;
use crate::config::Settings;
use crate::sqlite::OpenError;

/// A DynamoDB table a function needs: created by `setup` when its variable is
/// set; without the variable, a SQLite database of `local_name` in the state folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The environment variable that names the table.
    pub env_var: &'static str,
    /// The local database's name (`{local_name}.sqlite` in the state folder).
    pub local_name: &'static str,
    /// The string hash key.
    pub hash_key: &'static str,
    /// The string range key, if any.
    pub range_key: Option<&'static str>,
    /// The TTL attribute, if any.
    pub ttl_attribute: Option<&'static str>,
}

/// Where a function's table lives.
#[derive(Debug)]
pub enum TableBackend {
    /// SQLite in the state folder.
    Embedded(rusqlite::Connection),
    /// The DynamoDB table the variable names.
    #[cfg(feature = "dynamodb")]
    DynamoDb {
        /// A client from the standard AWS environment.
        client: aws_sdk_dynamodb::Client,
        /// The table's name.
        table: String,
    },
}

impl TableSpec {
    /// The table's name from the environment, if set.
    pub fn table_name(&self) -> Option<String> {
        crate::config::process_env(self.env_var).filter(|name| !name.trim().is_empty())
    }

    /// Opens the table: DynamoDB when its variable is set, else SQLite in
    /// `settings.state_dir`.
    ///
    /// # Errors
    /// [`StoreError::Open`] when the local database cannot be opened.
    pub async fn open(&self, settings: &Settings) -> Result<TableBackend, StoreError> {
        #[cfg(feature = "dynamodb")]
        if let Some(table) = self.table_name() {
            let client = crate::aws::dynamodb_client().await;
            return Ok(TableBackend::DynamoDb { client, table });
        }
        Ok(TableBackend::Embedded(crate::sqlite::open(
            &settings.state_dir,
            self.local_name,
        )?))
    }

    /// The key schema, for creating the table.
    #[cfg(feature = "dynamodb")]
    pub fn key_schema(&self) -> crate::aws::dynamodb::table::KeySchema<'static> {
        crate::aws::dynamodb::table::KeySchema {
            hash_key: self.hash_key,
            range_key: self.range_key,
            ttl_attribute: self.ttl_attribute,
        }
    }
}

/// Why a function's store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The local database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A local query failed.
    #[error("local database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// DynamoDB failed.
    #[cfg(feature = "dynamodb")]
    #[error(transparent)]
    DynamoDb(#[from] DynamoError),
    /// Other writers kept changing what this write depends on.
    #[error("{what} kept changing under this write after {tries} tries; Lambda will retry")]
    Contended {
        /// What kept changing, such as `account A1`.
        what: String,
        /// Tries made.
        tries: u32,
    },
}
