//! Inserting many rows of a table in one statement: the rows go in as one JSON array
//! (`json_each` on SQLite, `jsonb_to_recordset` on PostgreSQL).

use serde::Serialize;

use super::Tx;

/// The tables written in bulk, with their columns and PostgreSQL types.
#[derive(Clone, Copy)]
pub(crate) enum Table {
    Conversations,
    IdempotencyKeys,
    DeliveryAttempts,
}

impl Table {
    fn spec(self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        match self {
            Table::Conversations => (
                "conversations",
                &[
                    ("id", "text"),
                    ("request_id", "text"),
                    ("account_sid", "text"),
                    ("app_id", "text"),
                    ("state", "text"),
                    ("created_at", "bigint"),
                ],
            ),
            Table::DeliveryAttempts => (
                "delivery_attempts",
                &[
                    ("webhook_id", "text"),
                    ("attempt", "bigint"),
                    ("at", "bigint"),
                    ("status_code", "bigint"),
                    ("latency_ms", "bigint"),
                    ("error", "text"),
                    ("response", "text"),
                ],
            ),
            Table::IdempotencyKeys => (
                "idempotency_keys",
                &[
                    ("account_sid", "text"),
                    ("idem_key", "text"),
                    ("request_hash", "text"),
                    ("response", "text"),
                    ("created_at", "bigint"),
                ],
            ),
        }
    }
}

/// Inserts `rows` (serialized with the table's column names) in one statement.
pub(crate) async fn bulk_insert<T: Serialize>(
    tx: &mut Tx<'_>,
    table: Table,
    rows: &T,
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let (name, columns) = table.spec();
    let list = columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ");
    match tx {
        Tx::Sqlite(t, _) => {
            let select = columns
                .iter()
                .map(|(c, _)| format!("json_extract(value, '$.{c}')"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("INSERT INTO {name} ({list}) SELECT {select} FROM json_each($1)");
            sqlx::query(&sql).bind(json).execute(&mut **t).await?;
        }
        Tx::Postgres(t) => {
            let types = columns
                .iter()
                .map(|(c, ty)| format!("{c} {ty}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO {name} ({list}) SELECT {list} FROM jsonb_to_recordset($1::jsonb) AS x({types})"
            );
            sqlx::query(&sql).bind(json).execute(&mut **t).await?;
        }
    }
    Ok(())
}
