//! Reading request bodies: size limit (413), content type, UTF-8 and JSON object checks
//! (-2 / 10002), and the `Idempotency-Key` header (API.md §1a).

use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::domain::credentials::hex;
use crate::store::idempotency::IdempotencyClaim;

/// Largest JSON body of a customer or operator request.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge(format!("body is larger than {} bytes", limit));
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Json(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a JSON object body (≤ 1 MiB). A `Content-Type` other than JSON, invalid UTF-8,
/// malformed JSON or JSON that is not an object are -2 / 10002.
pub async fn json_object(
    req: &HttpRequest,
    payload: Payload,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(content_type) = req.headers().get(CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::Json(
                "Content-Type must be application/json".into(),
            ));
        }
    }
    let bytes = read_limited(req, payload, MAX_JSON_BODY).await?;
    parse_object(&bytes)
}

/// Parses `bytes` as a JSON object.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ApiError::Json("body is not valid UTF-8".into()))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::Json("body must be a JSON object".into())),
        Err(e) => Err(ApiError::Json(format!("body is not valid JSON: {e}"))),
    }
}

/// The request's idempotency claim, if it sent `Idempotency-Key` (1–255 visible ASCII
/// characters). The claim's hash covers the endpoint and the body (key order ignored).
pub fn idempotency_claim(
    req: &HttpRequest,
    body: &Map<String, Value>,
) -> Result<Option<IdempotencyClaim>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| (0x20..0x7f).contains(&b)));
    let key = key.ok_or_else(|| {
        ApiError::Param("Idempotency-Key must be 1-255 visible ASCII characters".into())
    })?;
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(req.path().as_bytes());
    hasher.update(b"\n");
    // serde_json's maps are sorted, so this serialization is canonical.
    hasher.update(serde_json::to_vec(body).unwrap_or_default());
    Ok(Some(IdempotencyClaim {
        key: key.to_string(),
        request_hash: hex(&hasher.finalize()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects() {
        assert!(parse_object(br#"{"a":1}"#).is_ok());
        for bad in [&b"[1]"[..], b"5", b"\"s\"", b"{", b"\xff\xfe", b""] {
            assert!(
                matches!(parse_object(bad), Err(ApiError::Json(_))),
                "{bad:?}"
            );
        }
    }
}
