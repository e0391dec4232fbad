//! CDR query and re-push (API.md §8): `GET …/Cdrs/{id}`, `GET …/Cdrs?…` (keyset paging),
//! `POST …/Cdrs/{id}/Redeliver`, `POST …/Cdrs/Redeliver`, `GET …/Deliveries`.

use actix_web::web::{Data, Path, Payload, Query};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, auth, body, placement};
use crate::cdr::format_time;
use crate::domain::Fields;
use crate::store::cdrs::CdrQuery;
use crate::store::journal::OutboxRow;

/// Default and largest page.
const PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

/// `CA…`/`CV…` ids: 34 characters, the prefix and 32 digits.
fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = id.len() == 34
        && (id.starts_with("CA") || id.starts_with("CV"))
        && id[2..].bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::Param(
            "id must be a callid, conversationSid or callSid".into(),
        ))
    }
}

fn with_kind(kind: &str, body: &str) -> Result<Value, ApiError> {
    let mut cdr = placement::stored_json(body)?;
    if let Some(map) = cdr.as_object_mut() {
        map.insert("kind".into(), Value::String(kind.into()));
    }
    Ok(cdr)
}

/// The account and the CDR (kind, body) a `…/Cdrs/{id}` path names.
async fn named_cdr(
    state: &AppState,
    req: &HttpRequest,
    sid: &str,
    id: &str,
) -> Result<(String, String, String), ApiError> {
    let account = auth::customer(state, req, sid).await?;
    check_id(id)?;
    let (kind, body) = state
        .store
        .find_cdr(&account.sid, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no CDR with this id".into()))?;
    Ok((account.sid.clone(), kind, body))
}

/// `GET …/Cdrs/{id}`.
pub async fn get(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String)>,
) -> HttpResponse {
    let (sid, id) = path.into_inner();
    placement::notice_reply(
        async {
            let (_, kind, body) = named_cdr(&state, &req, &sid, &id).await?;
            Ok(json!({"statuscode": "0", "cdr": with_kind(&kind, &body)?}))
        }
        .await,
    )
}

/// Query of `GET …/Cdrs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    start_time: Option<String>,
    end_time: Option<String>,
    appid: Option<String>,
    kind: Option<String>,
    to: Option<String>,
    page_size: Option<String>,
    cursor: Option<String>,
}

/// `YYYYMMDDHHmmss` in the platform time zone → Unix ms.
fn parse_time(field: &str, value: Option<&str>, tz: chrono_tz::Tz) -> Result<i64, ApiError> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::Param(format!("missing {field}")))?;
    chrono::NaiveDateTime::parse_from_str(value, "%Y%m%d%H%M%S")
        .ok()
        .filter(|_| value.len() == 14)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| ApiError::Param(format!("{field} must be YYYYMMDDHHmmss")))
}

fn range(
    fields: (&Option<String>, &Option<String>),
    tz: chrono_tz::Tz,
) -> Result<(i64, i64), ApiError> {
    let from = parse_time("startTime", fields.0.as_deref(), tz)?;
    let to = parse_time("endTime", fields.1.as_deref(), tz)?;
    if to <= from {
        return Err(ApiError::Param("endTime must be after startTime".into()));
    }
    Ok((from, to))
}

fn encode_cursor(start_time: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{start_time}:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::Param("cursor is not one this API gave".into());
    let text = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(text).map_err(|_| bad())?;
    let (time, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((time.parse().map_err(|_| bad())?, id.to_string()))
}

/// A list's `pageSize` (1–1000), [`PAGE`] when not given.
pub(super) fn page_size(value: Option<&str>) -> Result<i64, ApiError> {
    page_size_or(value, PAGE)
}

/// A list's `pageSize` (1–1000), `default` when not given.
pub(super) fn page_size_or(value: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::Param(format!("pageSize must be 1-{MAX_PAGE}"))),
    }
}

/// `GET …/Cdrs?startTime&endTime&appid&kind&to&pageSize&cursor`.
pub async fn list(state: Data<AppState>, req: HttpRequest, sid: Path<String>) -> HttpResponse {
    placement::notice_reply(
        async {
            let account = auth::customer(&state, &req, &sid).await?;
            let q = Query::<ListQuery>::from_query(req.query_string())
                .map_err(|e| ApiError::Param(format!("bad query: {e}")))?
                .into_inner();
            let (from, to) = range((&q.start_time, &q.end_time), state.settings.timezone)?;
            if let Some(kind) = q
                .kind
                .as_deref()
                .filter(|k| crate::domain::CallKind::parse(k).is_none())
            {
                return Err(ApiError::Param(format!(
                    "kind must be notice, captcha, click2call or agent, not {}",
                    crate::domain::phone::printable(kind)
                )));
            }
            let size = page_size(q.page_size.as_deref())?;
            let after = q
                .cursor
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(decode_cursor)
                .transpose()?;
            let query = CdrQuery {
                from,
                to,
                app_id: q.appid.filter(|a| !a.is_empty()),
                kind: q.kind.filter(|k| !k.is_empty()),
                to_number: q.to.filter(|t| !t.is_empty()),
            };
            let mut rows = state
                .store
                .cdr_page(&account.sid, &query, after, size + 1)
                .await?;
            let more = rows.len() as i64 > size;
            rows.truncate(size as usize);
            let cdrs = rows
                .iter()
                .map(|r| with_kind(&r.kind, &r.body))
                .collect::<Result<Vec<_>, _>>()?;
            let mut page = json!({"statuscode": "0", "cdrs": cdrs});
            if more && let Some(last) = rows.last() {
                page["nextCursor"] = Value::String(encode_cursor(last.start_time, &last.id));
            }
            Ok(page)
        }
        .await,
    )
}

/// The callback re-pushing one CDR: to where it went before, else to the application's
/// URL for its kind.
async fn repush(
    state: &AppState,
    account_sid: &str,
    kind: &str,
    body: &str,
) -> Result<Option<OutboxRow>, ApiError> {
    let cdr = placement::stored_json(body)?;
    let Some((id, app_id)) = cdr_ids(&cdr, kind) else {
        return Ok(None);
    };
    let target = match state.store.last_cdr_target(id).await? {
        Some(url) => Some(url),
        None => app_target(state, account_sid, app_id, kind).await?,
    };
    Ok(target.map(|url| OutboxRow::new(account_sid, app_id, callback_kind(kind), &url, &cdr, id)))
}

/// A stored CDR's own id and application (`conversationSid`/`appSid` of a conversation,
/// `callid`/`appid` otherwise).
fn cdr_ids<'a>(cdr: &'a Value, kind: &str) -> Option<(&'a str, &'a str)> {
    let (id, app_id) = match kind {
        "click2call" => (cdr["conversationSid"].as_str(), cdr["appSid"].as_str()),
        _ => (cdr["callid"].as_str(), cdr["appid"].as_str()),
    };
    Some((id?, app_id?))
}

/// The application's callback URL for a CDR of `kind` (`cdrUrl` of a conversation,
/// `notifyUrl` otherwise).
async fn app_target(
    state: &AppState,
    account_sid: &str,
    app_id: &str,
    kind: &str,
) -> Result<Option<String>, ApiError> {
    Ok(state
        .store
        .find_app(account_sid, app_id)
        .await?
        .and_then(|a| {
            if kind == "click2call" {
                a.cdr_url.clone()
            } else {
                a.notify_url.clone()
            }
        }))
}

/// The callback kind re-pushing a CDR of `kind`.
fn callback_kind(kind: &str) -> &'static str {
    if kind == "click2call" {
        "cdr"
    } else {
        "result"
    }
}

/// `POST …/Cdrs/{id}/Redeliver`.
pub async fn redeliver_one(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<(String, String)>,
) -> HttpResponse {
    let (sid, id) = path.into_inner();
    placement::notice_reply(
        async {
            let (account_sid, kind, body) = named_cdr(&state, &req, &sid, &id).await?;
            let row = repush(&state, &account_sid, &kind, &body)
                .await?
                .ok_or_else(|| {
                    ApiError::Param("the application has no callback URL for this CDR".into())
                })?;
            let webhook_id = row.webhook_id.clone();
            state.store.queue_callbacks(&[row]).await?;
            Ok(json!({"statuscode": "0", "queued": 1, "webhookIds": [webhook_id]}))
        }
        .await,
    )
}

/// `POST …/Cdrs/Redeliver` with `{startTime, endTime, appid?}`: answered at once with the
/// number of CDRs in the range (`queued`); a background job then re-pushes them a page at a
/// time (one query for the page, one for its targets, one insert), at most
/// [`RANGE_JOBS`] jobs at once in a process.
pub async fn redeliver_range(
    state: Data<AppState>,
    req: HttpRequest,
    sid: Path<String>,
    payload: Payload,
) -> HttpResponse {
    placement::notice_reply(
        async {
            let account = auth::customer(&state, &req, &sid).await?;
            let body = body::json_object(&req, payload).await?;
            let fields = Fields(&body);
            let start = fields.opt_nonempty_str("startTime")?.map(str::to_string);
            let end = fields.opt_nonempty_str("endTime")?.map(str::to_string);
            let (from, to) = range((&start, &end), state.settings.timezone)?;
            let query = CdrQuery {
                from,
                to,
                app_id: fields.opt_nonempty_str("appid")?.map(str::to_string),
                ..Default::default()
            };
            let count = state
                .store
                .count_cdrs_in_range(&account.sid, from, to, query.app_id.as_deref())
                .await?;
            if count > 0 {
                let state = state.clone();
                let account_sid = account.sid.clone();
                tokio::spawn(async move {
                    let Ok(_turn) = range_jobs().acquire().await else {
                        return;
                    };
                    if let Err(e) = repush_range(&state, &account_sid, &query).await {
                        tracing::error!(account = %account_sid, error = %e, "range re-push stopped; ask again to finish it");
                    }
                });
            }
            Ok(json!({"statuscode": "0", "queued": count}))
        }
        .await,
    )
}

/// Range re-push jobs running at once in one process (others wait their turn).
pub const RANGE_JOBS: usize = 2;

fn range_jobs() -> &'static tokio::sync::Semaphore {
    static JOBS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(RANGE_JOBS);
    &JOBS
}

/// Queues a re-push of every CDR `query` matches, page by page.
async fn repush_range(
    state: &AppState,
    account_sid: &str,
    query: &CdrQuery,
) -> Result<(), ApiError> {
    let mut after = None;
    loop {
        let rows = state
            .store
            .cdr_page(account_sid, query, after, MAX_PAGE)
            .await?;
        let cdrs: Vec<(Value, &str)> = rows
            .iter()
            .filter_map(|r| Some((placement::stored_json(&r.body).ok()?, r.kind.as_str())))
            .collect();
        let ids: Vec<&str> = cdrs
            .iter()
            .filter_map(|(cdr, kind)| cdr_ids(cdr, kind).map(|(id, _)| id))
            .collect();
        let targets = state.store.last_cdr_targets(&ids).await?;
        let mut batch = Vec::new();
        for (cdr, kind) in &cdrs {
            let Some((id, app_id)) = cdr_ids(cdr, kind) else {
                continue;
            };
            let target = match targets.get(id) {
                Some(url) => Some(url.clone()),
                None => app_target(state, account_sid, app_id, kind).await?,
            };
            batch.extend(target.map(|url| {
                OutboxRow::new(account_sid, app_id, callback_kind(kind), &url, cdr, id)
            }));
        }
        state.store.queue_callbacks(&batch).await?;
        match rows.last() {
            Some(last) if rows.len() as i64 == MAX_PAGE => {
                after = Some((last.start_time, last.id.clone()))
            }
            _ => return Ok(()),
        }
    }
}

/// Query of `GET …/Deliveries`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryQuery {
    state: Option<String>,
    id: Option<String>,
    page_size: Option<String>,
    cursor: Option<String>,
}

/// `GET …/Deliveries?state=failed|pending|delivered&id&pageSize&cursor`: newest first,
/// with every attempt; `id` narrows to one call or conversation.
pub async fn deliveries(
    state: Data<AppState>,
    req: HttpRequest,
    sid: Path<String>,
) -> HttpResponse {
    placement::notice_reply(
        async {
            let account = auth::customer(&state, &req, &sid).await?;
            let q = Query::<DeliveryQuery>::from_query(req.query_string())
                .map_err(|e| ApiError::Param(format!("bad query: {e}")))?
                .into_inner();
            let wanted = q.state.as_deref().filter(|s| !s.is_empty());
            if wanted.is_some_and(|s| !["pending", "delivered", "failed"].contains(&s)) {
                return Err(ApiError::Param("state must be failed, pending or delivered".into()));
            }
            let size = page_size(q.page_size.as_deref())?;
            let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
                Some(c) => Some(decode_cursor(c)?.0),
                None => None,
            };
            let mut rows = state.store.delivery_page(&account.sid, wanted, q.id.as_deref().filter(|i| !i.is_empty()), before, size + 1).await?;
            let more = rows.len() as i64 > size;
            rows.truncate(size as usize);
            let tz = state.settings.timezone;
            let mut listed = Vec::new();
            // A feed row's attempts are logged under its batch's id.
            let log_id = |d: &crate::store::deliveries::DeliveryListed| d.batch_id.clone().unwrap_or_else(|| d.webhook_id.clone());
            let ids: Vec<String> = rows.iter().map(log_id).collect();
            let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let logs = state.store.attempt_logs(&id_refs).await?;
            for d in &rows {
                let attempts: Vec<Value> = logs
                    .get(&log_id(d))
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|a| json!({
                        "attempt": a.attempt, "time": format_time(a.at, tz), "statusCode": a.status_code,
                        "latencyMs": a.latency_ms, "error": a.error, "response": a.response,
                    }))
                    .collect();
                let mut shown = json!({
                    "webhookId": d.webhook_id, "appid": d.app_id, "kind": d.kind, "targetUrl": d.target_url,
                    "id": d.ordering_key, "state": d.state, "createdTime": format_time(d.created_at, tz),
                    "nextAttemptTime": (d.state == "pending").then(|| format_time(d.next_attempt_at, tz)),
                    "finishedTime": d.finished_at.map(|t| format_time(t, tz)), "lastError": d.last_error,
                    "attempts": attempts,
                });
                // A status callback names its leg and the state it reported.
                if d.kind == "status"
                    && let Ok(body) = serde_json::from_str::<Value>(&d.body)
                {
                    shown["callSid"] = body["callSid"].clone();
                    shown["callStatus"] = body["callStatus"].clone();
                }
                listed.push(shown);
            }
            let mut page = json!({"statuscode": "0", "deliveries": listed});
            if more && let Some(last) = rows.last() {
                page["nextCursor"] = Value::String(encode_cursor(last.seq, ""));
            }
            Ok(page)
        }
        .await,
    )
}
