//! Secret rotation without a restart: on SIGHUP, or when the config file or any `file:` secret it
//! references changes content, the config is loaded and validated again and the source table is
//! swapped. A config that does not validate is refused and the running one kept (logged, counted).
//!
//! Content is compared rather than modification times: Kubernetes updates a mounted Secret by
//! swapping a symlink, which leaves file times unreliable.
//!
//! What is set up once at start (`[server]`, `[dedup]`, `[spool]`, the publishers) is not
//! reloaded. A change there is reported as `restart_required` (logged with the sections, counted
//! as its own outcome): the sources are still swapped when they can be wired to the running
//! publishers, but the reload is not a success until the gateway restarts.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, load_file};
use crate::pipeline::{Pipeline, Source};

pub struct Reloader {
    path: PathBuf,
    env: HashMap<String, String>,
    pipeline: Arc<Pipeline>,
    running: Config,
    last: u64,
}

/// What a reload came to.
#[derive(Debug, PartialEq, Eq)]
enum Reloaded {
    /// Everything in the new file is in force.
    Applied { sources: usize },
    /// Sources applied where possible; these sections need a restart to take effect.
    NeedsRestart { sections: Vec<&'static str> },
}

impl Reloader {
    /// `running` is the config the gateway started with: what a reload may not change.
    pub fn new(
        path: PathBuf,
        env: HashMap<String, String>,
        pipeline: Arc<Pipeline>,
        running: Config,
    ) -> Self {
        let last = fingerprint(&path);
        Reloader {
            path,
            env,
            pipeline,
            running,
            last,
        }
    }

    /// Watches until the task is aborted: every `interval` (0 = only on SIGHUP) and on SIGHUP.
    pub async fn run(mut self, interval: Duration) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let poll = async {
                if interval.is_zero() {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(interval).await
                }
            };
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<()>();
            let forced = tokio::select! {
                () = poll => false,
                () = hup => true,
            };
            let now = fingerprint(&self.path);
            if forced || now != self.last {
                self.last = now;
                self.reload(if forced { "SIGHUP" } else { "a changed file" });
            }
        }
    }

    fn reload(&self, why: &str) {
        let outcome = match self.try_reload() {
            Ok(Reloaded::Applied { sources }) => {
                tracing::info!(trigger = why, sources, "configuration reloaded");
                "success"
            }
            Ok(Reloaded::NeedsRestart { sections }) => {
                tracing::warn!(trigger = why, sections = %sections.join(", "), "configuration changed where only a restart applies it; sources reloaded, the rest runs as started");
                "restart_required"
            }
            Err(reason) => {
                tracing::error!(trigger = why, %reason, "configuration reload refused; keeping the running one");
                "failure"
            }
        };
        self.pipeline.metrics().config_reloaded(outcome);
    }

    fn try_reload(&self) -> Result<Reloaded, String> {
        let raw = load_file(&self.path, &self.env).map_err(|e| e.to_string())?;
        let config = Config::validate(raw, &self.env).map_err(|issues| {
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let sections = restart_only_changes(&self.running, &config);
        let sources = match build_sources(&config, &self.pipeline) {
            Ok(sources) => sources,
            // Sources wired to publishers that only a restart creates: nothing can be applied.
            Err(_) if !sections.is_empty() => return Ok(Reloaded::NeedsRestart { sections }),
            Err(e) => return Err(e),
        };
        let count = sources.len();
        self.pipeline.replace_sources(sources);
        if sections.is_empty() {
            Ok(Reloaded::Applied { sources: count })
        } else {
            Ok(Reloaded::NeedsRestart { sections })
        }
    }
}

/// The sections set up once at start that differ between `running` and `new`.
fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if running.server != new.server {
        changed.push("[server]");
    }
    if running.dedup != new.dedup {
        changed.push("[dedup]");
    }
    if running.spool != new.spool {
        changed.push("[spool]");
    }
    if running.publishers != new.publishers {
        changed.push("[publishers]");
    }
    changed
}

/// The new source table, wired to the publishers already running.
fn build_sources(
    config: &Config,
    pipeline: &Pipeline,
) -> Result<HashMap<String, Arc<Source>>, String> {
    let running: HashMap<&str, _> = pipeline
        .publishers()
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let configured: HashSet<&str> = config.publishers.keys().map(String::as_str).collect();
    if configured != running.keys().copied().collect() {
        return Err(
            "the publishers changed; broker connections are only set up at start, restart to apply"
                .into(),
        );
    }
    config
        .sources
        .iter()
        .map(|(name, source_config)| {
            let publisher = running
                .get(source_config.publisher.as_str())
                .map(|p| Arc::clone(p))
                .ok_or_else(|| {
                    format!(
                        "source {name}: no running publisher {}",
                        source_config.publisher
                    )
                })?;
            Ok((
                name.clone(),
                Arc::new(Source::new(
                    source_config.clone(),
                    publisher,
                    pipeline.metrics(),
                )),
            ))
        })
        .collect()
}

/// A hash of the config text and of every `file:` secret it references.
fn fingerprint(path: &Path) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.hash(&mut hasher);
    if let Ok(table) = text.parse::<toml::Table>() {
        let mut files = Vec::new();
        collect_file_refs(&toml::Value::Table(table), &mut files);
        files.sort();
        for file in files {
            file.hash(&mut hasher);
            std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
        }
    }
    hasher.finish()
}

fn collect_file_refs(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => {
            if let Some(path) = s.strip_prefix("file:") {
                out.push(path.to_owned());
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|v| collect_file_refs(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| collect_file_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_follows_referenced_secret_files() {
        let dir = std::env::temp_dir().join(format!("hb-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "one").unwrap();
        let config = dir.join("c.toml");
        std::fs::write(
            &config,
            format!(
                "[sources.a.verify]\nclient_secrets = [\"file:{}\"]\n",
                secret.display()
            ),
        )
        .unwrap();
        let first = fingerprint(&config);
        assert_eq!(fingerprint(&config), first, "stable");
        std::fs::write(&secret, "two").unwrap();
        assert_ne!(fingerprint(&config), first, "a rotated secret changes it");
        let _cleanup = std::fs::remove_dir_all(&dir);
    }
}
