//! The operator's DID grants (agents' contract §3.3): `PUT|DELETE /admin/numbers/{number}`
//! `{"accountSid"}` and `GET /admin/numbers?accountSid=&pageSize=&cursor=`.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload, Query};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::admin::{AdminError, no_account, operator};
use super::{AppState, body};
use crate::domain::credentials::is_hex32;
use crate::domain::{Fields, PhoneNumber};

fn number_of(raw: &str) -> Result<PhoneNumber, AdminError> {
    Ok(PhoneNumber::parse("number", raw)?)
}

/// `PUT /admin/numbers/{number}` `{"accountSid"}`: 201 when newly granted to that
/// account, 200 when it already was; moving a number drops the old account's route.
pub async fn grant(
    state: Data<AppState>,
    req: HttpRequest,
    number: Path<String>,
    payload: Payload,
) -> HttpResponse {
    operator(&state, &req, async {
        let number = number_of(&number)?;
        let body = body::json_object(&req, payload).await?;
        let fields = Fields(&body);
        fields.only(&["accountSid"])?;
        let sid = fields.req_str("accountSid")?;
        state
            .store
            .find_account(sid)
            .await?
            .ok_or_else(|| no_account(sid))?;
        let created = state.store.grant_number(number.as_str(), sid).await?;
        let grant = state
            .store
            .find_grant(number.as_str())
            .await?
            .ok_or_else(|| AdminError::new(StatusCode::CONFLICT, "revoked meanwhile"))?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, grant.to_json(state.settings.timezone)))
    })
    .await
}

/// `DELETE /admin/numbers/{number}`: revokes the grant and the route with it.
pub async fn revoke(state: Data<AppState>, req: HttpRequest, number: Path<String>) -> HttpResponse {
    operator(&state, &req, async {
        let granted = match PhoneNumber::parse("number", &number) {
            Ok(number) => state.store.revoke_number(number.as_str()).await?,
            Err(_) => false,
        };
        if granted {
            Ok((StatusCode::OK, json!({"number": number.as_str()})))
        } else {
            Err(AdminError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "number {} is not granted",
                    crate::domain::phone::printable(&number)
                ),
            ))
        }
    })
    .await
}

/// Grants in a page of the list when `pageSize` is not given.
const GRANT_PAGE: i64 = 1000;

/// Query of the grant list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantQuery {
    account_sid: Option<String>,
    page_size: Option<String>,
    cursor: Option<String>,
}

/// `GET /admin/numbers`: grants by number, 1,000 a page by default (`nextCursor` = the
/// last number when more follow).
pub async fn list(state: Data<AppState>, req: HttpRequest) -> HttpResponse {
    operator(&state, &req, async {
        let q = Query::<GrantQuery>::from_query(req.query_string())
            .map_err(|e| AdminError::new(StatusCode::BAD_REQUEST, format!("bad query: {e}")))?
            .into_inner();
        let size = super::cdrs::page_size_or(q.page_size.as_deref(), GRANT_PAGE)?;
        let account = q.account_sid.as_deref().filter(|s| !s.is_empty());
        let after = q.cursor.as_deref().filter(|s| !s.is_empty());
        // No account's sid is other than 32 hex digits, and no number holds a control
        // character (which PostgreSQL could not compare).
        let none = account.is_some_and(|a| !is_hex32(a))
            || after.is_some_and(|c| c.chars().any(char::is_control));
        let mut grants = if none {
            Vec::new()
        } else {
            state.store.list_grants(account, after, size + 1).await?
        };
        let more = grants.len() as i64 > size;
        grants.truncate(size as usize);
        let tz = state.settings.timezone;
        let mut answer =
            json!({"numbers": grants.iter().map(|g| g.to_json(tz)).collect::<Vec<_>>()});
        if more && let Some(last) = grants.last() {
            answer["nextCursor"] = last.number.clone().into();
        }
        Ok((StatusCode::OK, answer))
    })
    .await
}
