//! `[spool]`: where durable acceptance keeps what the broker has not acknowledged yet.

use serde::Deserialize;

/// `[spool]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    /// Directory of the spool file. In Kubernetes: a PersistentVolume per replica (StatefulSet).
    pub path: std::path::PathBuf,
    /// Most bytes spooled; when full the gateway answers 503 (never drops).
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: u64,
}

fn default_spool_bytes() -> u64 {
    1024 * 1024 * 1024
}

/// `[spool]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    /// Opened once at start: a reload that changes it is counted `restart_required`.
    pub path: std::path::PathBuf,
    /// Bounds the entries' encoded bytes, not the file: redb's own overhead comes on top.
    pub max_bytes: u64,
}

impl From<&RawSpool> for SpoolConfig {
    fn from(raw: &RawSpool) -> Self {
        SpoolConfig {
            path: raw.path.clone(),
            max_bytes: raw.max_bytes,
        }
    }
}
