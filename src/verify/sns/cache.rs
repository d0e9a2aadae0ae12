//! A small bounded cache of parsed signing certificates, keyed by the canonical certificate URL.
//!
//! SNS rotates its signing certificate roughly yearly and every region uses one URL at a time, so
//! a handful of entries covers real traffic; the bound only matters against a sender cycling
//! through many (valid-looking) URLs. Eviction is least-recently-used by a logical clock: a linear
//! scan over at most `capacity` entries, cheaper than a linked structure at this size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::cert::SnsCert;

/// The default bound on cached certificates.
pub(super) const DEFAULT_CAPACITY: usize = 32;

pub(super) struct CertCache {
    capacity: usize,
    // A std Mutex: it is never held across an `.await`, and each critical section is tiny.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    clock: u64,
    entries: HashMap<String, Entry>,
}

struct Entry {
    cert: Arc<SnsCert>,
    last_used: u64,
}

impl CertCache {
    pub(super) fn new(capacity: usize) -> Self {
        CertCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(super) fn get(&self, url: &str) -> Option<Arc<SnsCert>> {
        // A panic while holding the lock cannot leave the map inconsistent, so poison is ignored.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(url)?;
        entry.last_used = now;
        Some(Arc::clone(&entry.cert))
    }

    pub(super) fn insert(&self, url: &str, cert: Arc<SnsCert>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !inner.entries.contains_key(url) && inner.entries.len() >= self.capacity {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                inner.entries.remove(&oldest);
            }
        }
        inner.clock += 1;
        let last_used = inner.clock;
        inner
            .entries
            .insert(url.to_owned(), Entry { cert, last_used });
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> Arc<SnsCert> {
        Arc::new(
            SnsCert::from_pem(include_str!(
                "../../../tests/fixtures/sns/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
            ))
            .unwrap(),
        )
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted_at_capacity() {
        let cache = CertCache::new(2);
        cache.insert("a", cert());
        cache.insert("b", cert());
        assert!(cache.get("a").is_some()); // "b" is now the oldest
        cache.insert("c", cert());
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some());
        assert!(cache.get("c").is_some());
        // Re-inserting an existing key evicts nothing.
        cache.insert("c", cert());
        assert_eq!(cache.len(), 2);
    }
}
