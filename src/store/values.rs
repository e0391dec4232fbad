//! Many rows in one statement: `VALUES (…), (…)` lists of bound parameters, cut into chunks
//! of a few fixed sizes so that a handful of statement texts (each prepared once per
//! connection) serve every batch size. An `UPDATE … FROM (VALUES …)` is padded with rows
//! that match nothing up to its chunk's size; an `INSERT` is cut exactly.

use sqlx::Row;

use super::{Tx, on_tx};

/// A value bound in bulk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    /// Text (SQL `NULL` when `None`).
    Text(Option<&'a str>),
    /// A 64-bit integer (SQL `NULL` when `None`).
    Int(Option<i64>),
}

/// Rows per statement, largest first: any batch is a few statements of these sizes.
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

/// How parameters are written: numbered (`$1`, PostgreSQL) or by position (`?`, SQLite,
/// whose lookup of numbered names is linear in their count).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Params {
    /// `$n`.
    Numbered,
    /// `?`.
    Positional,
}

impl Params {
    /// The `n`th parameter (from 1).
    pub(crate) fn nth(self, n: usize) -> String {
        match self {
            Params::Numbered => format!("${n}"),
            Params::Positional => "?".to_string(),
        }
    }
}

/// `(VALUES ($first, …), (…))` for `rows` rows of `cols` values. Its columns are named
/// `column1`, `column2`, … on both backends.
fn values(params: Params, rows: usize, cols: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5 + 10);
    out.push_str("(VALUES ");
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&params.nth(n));
            n += 1;
        }
        out.push(')');
    }
    out.push(')');
    out
}

/// How `n` rows are cut: exactly (inserts), or padded up to a chunk size (updates).
fn chunks(mut n: usize, padded: bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    while n > 0 {
        let size = if padded && n <= CHUNKS[0] {
            CHUNKS
                .iter()
                .rev()
                .copied()
                .find(|c| *c >= n)
                .unwrap_or(CHUNKS[0])
        } else {
            CHUNKS.iter().copied().find(|c| *c <= n).unwrap_or(1)
        };
        let used = size.min(n);
        out.push((used, size));
        n -= used;
    }
    out
}

/// The statements that carry `rows` (each `cols` values) in chunks, `head` bound first
/// (`head[i]` is how the text names the `i`th of them, before the values); `pad`, for
/// updates and lookups, fills a chunk up to its size with a row that matches nothing.
fn statements<'v>(
    tx: &Tx<'_>,
    sql: impl Fn(&[String], &str) -> String,
    head: &[Val<'v>],
    cols: usize,
    rows: &[Vec<Val<'v>>],
    pad: Option<&[Val<'v>]>,
) -> Vec<(String, Vec<Val<'v>>)> {
    let params = match tx {
        Tx::Sqlite(..) => Params::Positional,
        Tx::Postgres(_) => Params::Numbered,
    };
    let names: Vec<String> = (1..=head.len()).map(|n| params.nth(n)).collect();
    let mut at = 0;
    chunks(rows.len(), pad.is_some())
        .into_iter()
        .map(|(used, size)| {
            let text = sql(&names, &values(params, size, cols, head.len() + 1));
            let chunk = &rows[at..at + used];
            at += used;
            let filler = pad.into_iter().cycle().take(size - used);
            let binds = head
                .iter()
                .copied()
                .chain(chunk.iter().flatten().copied())
                .chain(filler.flatten().copied())
                .collect();
            (text, binds)
        })
        .collect()
}

/// Binds `binds` to `query` in order.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for v in $binds {
            query = match *v {
                Val::Text(t) => query.bind(t),
                Val::Int(i) => query.bind(i),
            };
        }
        query
    }};
}

/// Runs `sql(head, values)` once per chunk of `rows` (see [`statements`]). Returns the
/// first column of every row the statements return (when `returning`).
pub(crate) async fn run(
    tx: &mut Tx<'_>,
    sql: impl Fn(&[String], &str) -> String,
    head: &[Val<'_>],
    cols: usize,
    rows: &[Vec<Val<'_>>],
    pad: Option<&[Val<'_>]>,
    returning: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let mut returned = Vec::new();
    for (text, binds) in statements(tx, sql, head, cols, rows, pad) {
        on_tx!(&mut *tx, |c| {
            let query = bind_all!(sqlx::query(&text), &binds);
            if returning {
                for row in query.fetch_all(&mut *c).await? {
                    returned.push(row.try_get::<String, _>(0)?);
                }
            } else {
                query.execute(&mut *c).await?;
            }
        });
    }
    Ok(returned)
}

/// Runs the query `sql(values)` once per chunk of `rows` (padded with `pad`) and returns
/// every row the statements find, as `T`.
pub(crate) async fn fetch<T>(
    tx: &mut Tx<'_>,
    sql: impl Fn(&str) -> String,
    cols: usize,
    rows: &[Vec<Val<'_>>],
    pad: &[Val<'_>],
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    let mut found = Vec::new();
    for (text, binds) in statements(tx, |_, v| sql(v), &[], cols, rows, Some(pad)) {
        on_tx!(&mut *tx, |c| {
            let query = bind_all!(sqlx::query_as::<_, T>(&text), &binds);
            found.extend(query.fetch_all(&mut *c).await?);
        });
    }
    Ok(found)
}

/// Inserts `rows` (each `cols` values) into `into` (`table (columns…)`), in as few
/// statements as the chunk sizes allow.
pub(crate) async fn insert(
    tx: &mut Tx<'_>,
    into: &str,
    cols: usize,
    rows: &[Vec<Val<'_>>],
) -> Result<(), sqlx::Error> {
    let sql = |_: &[String], v: &str| format!("INSERT INTO {into} {}", &v[1..v.len() - 1]);
    run(tx, sql, &[], cols, rows, None, false).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunks(70, false), vec![(64, 64), (4, 4), (2, 2)]);
        assert_eq!(chunks(70, true), vec![(64, 64), (6, 8)]);
        assert_eq!(chunks(3, true), vec![(3, 4)]);
        assert_eq!(chunks(0, true), vec![]);
        assert_eq!(
            values(Params::Numbered, 2, 2, 3),
            "(VALUES ($3, $4), ($5, $6))"
        );
        assert_eq!(values(Params::Positional, 1, 2, 1), "(VALUES (?, ?))");
    }
}
