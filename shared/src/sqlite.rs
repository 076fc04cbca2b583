//! Opening a local SQLite database, for the embedded state store and the
//! functions' own local tables. A leaf module.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// A database that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the local database {path}: {source}")]
pub struct OpenError {
    /// The database file.
    pub path: PathBuf,
    /// What SQLite said.
    #[source]
    pub source: rusqlite::Error,
}

/// Opens (creating if needed) `name.sqlite` in `dir`, set up for several local
/// processes at once: WAL journal, a 10 s busy timeout.
///
/// # Errors
/// [`OpenError`] when the folder or the database cannot be opened.
pub fn open(dir: &Path, name: &str) -> Result<Connection, OpenError> {
    let path = dir.join(format!("{name}.sqlite"));
    let fail = |source| OpenError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        fail(rusqlite::Error::InvalidPath(PathBuf::from(format!(
            "{}: {e}",
            dir.display()
        ))))
    })?;
    let conn = Connection::open(&path).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(fail)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(fail)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
    Ok(conn)
}

/// Adds each `(table, column, declaration)` the database lacks: a database made
/// by an earlier version of a schema gets its new columns on open.
///
/// # Errors
/// The SQLite error when a table cannot be read or altered.
pub fn add_missing_columns(
    conn: &Connection,
    columns: &[(&str, &str, &str)],
) -> Result<(), rusqlite::Error> {
    for (table, column, declaration) in columns {
        let present: bool = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .exists(rusqlite::params![column])?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
            ))?;
        }
    }
    Ok(())
}
