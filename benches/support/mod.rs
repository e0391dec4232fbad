//! What the benchmarks that drive a server over HTTP share.

/// POSTs `body` to `url` as the account `(sid, token)`; the answer's `field` must be `ok`
/// (`statuscode` `0`, `statusCode` `00000`).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    (sid, token): (&str, &str),
    body: &serde_json::Value,
    (field, ok): (&str, &str),
) {
    let answer: serde_json::Value = client
        .post(url)
        .basic_auth(sid, Some(token))
        .json(body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(answer[field], ok, "{answer}");
}
