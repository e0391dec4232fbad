//! A short-lived read-through cache of accounts, applications and prompt names, so the
//! request path does not read the database for every authentication. Writes made through
//! this process invalidate at once; writes by other replicas or the CLI are seen within
//! [`TTL`].

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::accounts::AccountRecord;
use super::applications::ApplicationRecord;

/// How long a cached entry is trusted.
pub const TTL: Duration = Duration::from_secs(1);

/// Entries that expire [`TTL`] after they were loaded.
#[derive(Debug)]
pub struct TtlMap<K, V> {
    entries: RwLock<HashMap<K, (Instant, Arc<V>)>>,
}

impl<K, V> Default for TtlMap<K, V> {
    fn default() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V> TtlMap<K, V> {
    /// The fresh entry for `key`, if any.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone())
    }

    /// Stores `value` for `key`.
    pub fn put(&self, key: K, value: Arc<V>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() > 100_000 {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// The fresh entry for `key`, or what `load` finds (cached when found).
    pub async fn get_or_load<F, Fut, E>(&self, key: &K, load: F) -> Result<Option<Arc<V>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, E>>,
    {
        if let Some(value) = self.get(key) {
            return Ok(Some(value));
        }
        let Some(value) = load().await? else {
            return Ok(None);
        };
        let value = Arc::new(value);
        self.put(key.clone(), value.clone());
        Ok(Some(value))
    }

    /// Forgets `key`.
    pub fn forget(&self, key: &K) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The caches of one store.
#[derive(Debug, Default)]
pub struct Directory {
    /// Accounts by sid.
    pub accounts: TtlMap<String, AccountRecord>,
    /// Sids looked up in vain (failed authentications stay off the database).
    pub missing_accounts: TtlMap<String, ()>,
    /// Applications by app id.
    pub applications: TtlMap<String, ApplicationRecord>,
    /// Prompt names by app id.
    pub prompt_names: TtlMap<String, HashSet<String>>,
}
