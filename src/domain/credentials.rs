//! Account and application identifiers, auth tokens and signing secrets (API.md §1, §7, §10).
//! Tokens are random and long, so a fast keyed hash (HMAC-SHA256 with the installation's
//! key) is the right way to store them: nothing to brute-force, and nothing slow on the
//! request path.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    buf
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` is exactly 32 lower- or upper-case hex digits (account sids and app ids).
pub fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new account sid: 32 hex digits.
pub fn new_account_sid() -> String {
    hex(&random_bytes::<16>())
}

/// A new application id: 32 hex digits.
pub fn new_app_id() -> String {
    hex(&random_bytes::<16>())
}

/// A new auth token: 32 random bytes as 64 hex digits.
pub fn new_auth_token() -> String {
    hex(&random_bytes::<32>())
}

/// A new Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>())
    )
}

/// A new agent token (agents' contract §1): `agt_` + 48 hex digits.
pub fn new_agent_token() -> String {
    format!("agt_{}", hex(&random_bytes::<24>()))
}

/// A new SIP password: 16 random letters and digits.
pub fn new_sip_pwd() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(16);
    while out.len() < 16 {
        for b in random_bytes::<32>() {
            // 248 = 4 × 62: below it every letter is equally likely.
            if b < 248 && out.len() < 16 {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    out
}

/// A password Argon2 would not hash (its limits are far beyond the 64 characters the
/// contract allows, so this is a safety net, not a path).
pub type PasswordHashError = argon2::password_hash::Error;

/// The stored form of an agent password: an Argon2id PHC string with its own salt
/// (deliberately slow, ~20 ms: run it off the async workers).
pub fn hash_password(pwd: &str) -> Result<String, PasswordHashError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&random_bytes::<16>())?;
    Ok(argon2::Argon2::default()
        .hash_password(pwd.as_bytes(), &salt)?
        .to_string())
}

/// Whether `pwd` matches a [`hash_password`] string (constant time; `false` for an
/// unreadable stored value).
pub fn verify_password(pwd: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(stored).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(pwd.as_bytes(), &hash)
            .is_ok()
    })
}

/// Hashes and checks auth tokens with the installation's key.
#[derive(Clone)]
pub struct TokenHasher {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHasher(***)")
    }
}

impl TokenHasher {
    /// A hasher keyed with `key` (kept in the database, made at first migration).
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self, token: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(token.as_bytes());
        mac
    }

    /// The stored form of `token` (hex).
    pub fn hash(&self, token: &str) -> String {
        hex(&self.mac(token).finalize().into_bytes())
    }

    /// Whether `token` hashes to `stored`, compared in constant time.
    pub fn verify(&self, token: &str, stored: &str) -> bool {
        match decode_hex(stored) {
            Some(expected) => self.mac(token).verify_slice(&expected).is_ok(),
            None => false,
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_against_their_hash() {
        let h = TokenHasher::new(b"key");
        let token = new_auth_token();
        assert_eq!(token.len(), 64);
        let stored = h.hash(&token);
        assert!(h.verify(&token, &stored));
        assert!(!h.verify(&new_auth_token(), &stored));
        assert!(!TokenHasher::new(b"other").verify(&token, &stored));
        assert!(!h.verify(&token, "zz"));
    }

    #[test]
    fn passwords_and_agent_secrets() {
        let stored = hash_password("s3cret 小休").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert_ne!(stored, hash_password("s3cret 小休").unwrap(), "salted");
        assert!(verify_password("s3cret 小休", &stored));
        assert!(!verify_password("s3cret", &stored));
        assert!(!verify_password("s3cret 小休", "not a hash"));
        let sip = new_sip_pwd();
        assert_eq!(sip.len(), 16);
        assert!(sip.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(sip, new_sip_pwd());
        assert_eq!(new_agent_token().len(), 52);
    }

    #[test]
    fn identifiers() {
        assert!(is_hex32(&new_account_sid()));
        assert!(is_hex32(&new_app_id()));
        let secret = new_signing_secret();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(raw.len(), 32);
    }
}
