//! The dedup stores' footprint for `scripts/bench`: claims and confirms N keys shaped like real
//! ones (`<source>/<64 hex>`, a source-scoped SHA-256 id) in the memory store and in the disk
//! store, and prints the bytes per key: the memory store's from the process's RSS growth, the
//! disk store's from its file. `dedup_footprint N` prints one JSON line.

use std::time::Duration;

use hookbridge::dedup::disk::DiskDedup;
use hookbridge::dedup::memory::MemoryDedup;
use hookbridge::dedup::{Claim, DedupStore};

const WINDOW: Duration = Duration::from_secs(72 * 3600);
const PENDING: Duration = Duration::from_secs(10);

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn key(i: u64) -> String {
    // Distinct 64-hex ids; their spread matters to the hash table, not their cryptography.
    let a = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "bench/{a:016x}{:016x}{:016x}{i:016x}",
        a.rotate_left(17),
        a ^ i
    )
}

async fn fill<S: DedupStore>(store: &S, n: u64) -> Result<(), String> {
    for i in 0..n {
        let k = key(i);
        match store
            .claim(&k, WINDOW, PENDING)
            .await
            .map_err(|e| e.to_string())?
        {
            Claim::New(revision) => store
                .confirm(&k, revision)
                .await
                .map_err(|e| e.to_string())?,
            other => return Err(format!("key {i}: {other:?}")),
        }
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;

    let before = rss_bytes();
    let memory = MemoryDedup::new(n as usize);
    runtime.block_on(fill(&memory, n))?;
    let memory_bytes = rss_bytes().saturating_sub(before);
    drop(memory);

    let dir = std::env::temp_dir().join(format!("hookbridge-footprint-{}", std::process::id()));
    let counter = prometheus::IntCounter::new("evictions", "unused").map_err(|e| e.to_string())?;
    let disk = DiskDedup::open(&dir, n, counter).map_err(|e| e.to_string())?;
    runtime.block_on(fill(&disk, n))?;
    disk.flush().map_err(|e| e.to_string())?;
    let disk_bytes = std::fs::metadata(dir.join("dedup.redb")).map_or(0, |m| m.len());
    drop(disk);
    std::fs::remove_dir_all(&dir).ok();

    println!(
        "{{\"keys\":{n},\"memory_bytes_per_key\":{:.1},\"disk_bytes_per_key\":{:.1}}}",
        memory_bytes as f64 / n as f64,
        disk_bytes as f64 / n as f64
    );
    Ok(())
}
