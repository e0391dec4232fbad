//! Reading back what calls left behind: CDRs and the callbacks waiting in the outbox.

use super::{Store, StoreError, on_pool};

/// One callback in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEntry {
    /// `result`, `status`, `cdr` or `feed`.
    pub kind: String,
    /// Where it goes.
    pub target_url: String,
    /// The JSON body.
    pub body: String,
    /// Its webhook id.
    pub webhook_id: String,
    /// `pending`, …
    pub state: String,
}

impl Store {
    /// The CDR (as pushed) of notice/captcha call or conversation `id`.
    pub async fn cdr_body(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT body FROM cdrs WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// The callbacks of ordering key `key` (a call, a conversation), in delivery order.
    pub async fn outbox_of(&self, key: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT kind, target_url, body, webhook_id, state FROM outbox WHERE ordering_key = $1 ORDER BY seq"
        )
        .bind(key)
        .fetch_all(p)
        .await
        })?)
    }

    /// How many CDRs there are (all accounts).
    pub async fn count_cdrs(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM cdrs"
        )
        .fetch_one(p)
        .await)?)
    }

    /// For each notice/captcha call of `account_sid` with a CDR: its id, when it was
    /// dialled, when it ended (media clock) and when its CDR was written (Unix ms), for
    /// load reports.
    pub async fn call_timings(&self, account_sid: &str) -> Result<Vec<CallTiming>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT l.id, l.start_at, l.end_at, c.created_at AS cdr_at FROM cdrs c JOIN calls l ON l.id = c.id \
             WHERE c.account_sid = $1 AND l.start_at IS NOT NULL AND l.end_at IS NOT NULL"
        )
        .bind(account_sid)
        .fetch_all(p)
        .await
        })?)
    }

    /// The CDR of `id` in `account_sid`: `id` is a notice/captcha call, a conversation,
    /// or any leg of a conversation. Returns its kind and body.
    pub async fn find_cdr(
        &self,
        account_sid: &str,
        id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT kind, body FROM cdrs WHERE account_sid = $1 AND id = COALESCE(\
               (SELECT conversation_id FROM calls WHERE id = $2 AND account_sid = $1 AND conversation_id IS NOT NULL), $2)"
        )
        .bind(account_sid)
        .bind(id)
        .fetch_optional(p)
        .await
        })?)
    }

    /// One page of `account_sid`'s CDRs whose start time is in `[from, to)` (Unix ms),
    /// oldest first, after the keyset position `after` (start time, id).
    pub async fn cdr_page(
        &self,
        account_sid: &str,
        query: &CdrQuery,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<CdrListed>, StoreError> {
        // Only the filters given, so each query shape meets its index and reads one page
        // of it: (account, [app | kind,] start_time, id) of `cdrs`, or with `to` the
        // (account, number, start_time, id) of `cdr_numbers`, which holds every leg's.
        let filters: Vec<(&str, &String)> = [
            ("n.number", &query.to_number),
            ("c.app_id", &query.app_id),
            ("c.kind", &query.kind),
        ]
        .into_iter()
        .filter_map(|(column, value)| value.as_ref().map(|v| (column, v)))
        .collect();
        let (from, time, id) = if query.to_number.is_some() {
            (
                "cdr_numbers n JOIN cdrs c ON c.id = n.cdr_id",
                "n.start_time",
                "n.cdr_id",
            )
        } else {
            ("cdrs c", "c.start_time", "c.id")
        };
        let account = if query.to_number.is_some() {
            "n.account_sid"
        } else {
            "c.account_sid"
        };
        let mut sql = format!(
            "SELECT c.id, c.kind, c.start_time, c.body FROM {from} WHERE {account} = $1 AND {time} >= $2 AND {time} < $3"
        );
        for (n, (column, _)) in filters.iter().enumerate() {
            sql.push_str(&format!(" AND {column} = ${}", n + 4));
        }
        let next = filters.len() + 4;
        if after.is_some() {
            sql.push_str(&format!(
                " AND ({time} > ${next} OR ({time} = ${next} AND {id} > ${}))",
                next + 1
            ));
        }
        let limit_at = if after.is_some() { next + 2 } else { next };
        sql.push_str(&format!(" ORDER BY {time}, {id} LIMIT ${limit_at}"));
        Ok(on_pool!(self, |p| {
            let mut q = sqlx::query_as(&sql)
                .bind(account_sid)
                .bind(query.from)
                .bind(query.to);
            for (_, value) in &filters {
                q = q.bind(*value);
            }
            if let Some((time, id)) = &after {
                q = q.bind(*time).bind(id);
            }
            q.bind(limit).fetch_all(p).await
        })?)
    }
}

impl Store {
    /// How many CDRs of `account_sid` started in `[from, to)`, of application `app_id` if
    /// given.
    pub async fn count_cdrs_in_range(
        &self,
        account_sid: &str,
        from: i64,
        to: i64,
        app_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT COUNT(*) FROM cdrs WHERE account_sid = $1 AND start_time >= $2 AND start_time < $3 \
             AND ($4 IS NULL OR app_id = $4)"
        )
        .bind(account_sid)
        .bind(from)
        .bind(to)
        .bind(app_id)
        .fetch_one(p)
        .await
        })?)
    }
}

/// Filters of a CDR time-range query.
#[derive(Debug, Clone, Default)]
pub struct CdrQuery {
    /// Start of the range (Unix ms, inclusive).
    pub from: i64,
    /// End of the range (Unix ms, exclusive).
    pub to: i64,
    /// Only this application.
    pub app_id: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only calls to this number (a conversation's caller).
    pub to_number: Option<String>,
}

/// A CDR as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CdrListed {
    /// `CA…` or `CV…`.
    pub id: String,
    /// `notice`, `captcha`, `click2call`.
    pub kind: String,
    /// Start time (Unix ms): the keyset position with `id`.
    pub start_time: i64,
    /// The CDR as pushed.
    pub body: String,
}

/// When a finished call was dialled, ended and got its CDR (Unix ms).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallTiming {
    /// `CA…`.
    pub id: String,
    /// Dialled.
    pub start_at: i64,
    /// Ended (media clock).
    pub end_at: i64,
    /// CDR written.
    pub cdr_at: i64,
}
