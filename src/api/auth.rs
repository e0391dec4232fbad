//! Authentication: `Authorization: Basic base64(AccountSid:AuthToken)` for customers
//! (API.md §1) and `Authorization: Bearer <VOICEPAAS_ADMIN_TOKEN>` for operators (§10).

use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use base64::Engine;
use hmac::Mac;

use super::AppState;
use super::error::ApiError;
use crate::store::accounts::AccountRecord;

/// `(sid, token)` from a Basic Authorization header.
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let header = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (sid, token) = text.split_once(':')?;
    Some((sid.to_string(), token.to_string()))
}

/// The account of a customer request whose path names `path_sid`.
pub async fn customer(
    state: &AppState,
    req: &HttpRequest,
    path_sid: &str,
) -> Result<Arc<AccountRecord>, ApiError> {
    let (sid, token) = basic_credentials(req).ok_or(ApiError::Auth)?;
    if sid != path_sid {
        return Err(ApiError::SidMismatch);
    }
    state
        .store
        .authenticate(&sid, &token)
        .await?
        .ok_or(ApiError::Auth)
}

/// Why an operator request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminRefusal {
    /// `VOICEPAAS_ADMIN_TOKEN` is unset: the operator API does not exist.
    Disabled,
    /// Wrong or missing bearer token.
    BadToken,
}

/// Checks the operator's bearer token in constant time.
pub fn admin(state: &AppState, req: &HttpRequest) -> Result<(), AdminRefusal> {
    let expected = state
        .settings
        .admin_token
        .as_ref()
        .ok_or(AdminRefusal::Disabled)?;
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(AdminRefusal::BadToken)?;
    match same_secret(expected.expose(), given) {
        true => Ok(()),
        false => Err(AdminRefusal::BadToken),
    }
}

/// Whether `given` is `expected`, compared in constant time whatever the lengths (MACs of
/// both under a fresh key).
fn same_secret(expected: &str, given: &str) -> bool {
    let key = crate::domain::credentials::random_bytes::<32>();
    let mac = |s: &str| {
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .expect("HMAC takes keys of any length");
        m.update(s.as_bytes());
        m
    };
    let expected_tag = mac(expected).finalize().into_bytes();
    mac(given).verify_slice(&expected_tag).is_ok()
}

/// Why FreeSWITCH may not read the agents' directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryRefusal {
    /// `VOICEPAAS_FS_DIRECTORY_SECRET` is unset: there is no directory (404).
    Disabled,
    /// Wrong or missing `freeswitch:<secret>` Basic credentials (401).
    BadSecret,
}

/// Checks mod_xml_curl's `gateway-credentials` (`freeswitch:<secret>`, HTTP Basic).
pub fn freeswitch(state: &AppState, req: &HttpRequest) -> Result<(), DirectoryRefusal> {
    let expected = state
        .settings
        .fs_directory_secret
        .as_ref()
        .ok_or(DirectoryRefusal::Disabled)?;
    match basic_credentials(req) {
        Some((user, secret)) if user == "freeswitch" && same_secret(expected.expose(), &secret) => {
            Ok(())
        }
        _ => Err(DirectoryRefusal::BadSecret),
    }
}
