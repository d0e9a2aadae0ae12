//! The fuzz targets' inputs as regression tests: every seed in `fuzz/seeds/<target>/` and every
//! crash, hang or out-of-memory input kept in `fuzz/regressions/<target>/` runs through
//! `hookbridge::fuzzing::<target>`, the very function the fuzz target calls, and must return.
//!
//! The seeds are made from the fixtures (`tests/fixtures/golden`, `tests/fixtures/sns`), signed for
//! the harness clock `fuzzing::NOW`. `seeds_are_made_from_the_fixtures` checks that the committed
//! files still match; after changing a fixture or the generator, rewrite them with
//! `HOOKBRIDGE_WRITE_SEEDS=1 cargo test --features fuzzing --test api fuzz_regressions`.
//!
//! The tests are here; `request_seeds.rs` and `record_seeds.rs` make the seeds, in the framing and
//! with the signing of `framing.rs`.

mod framing;
mod record_seeds;
mod request_seeds;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hookbridge::fuzzing;

use crate::golden::{Golden, load_goldens};

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Every file under `fuzz/<kind>/<target>/`, with its target's name.
fn stored_inputs(kind: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(Path::new(FUZZ).join(kind)) else {
        return out;
    };
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let target = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.is_file() {
                out.push((target.clone(), file));
            }
        }
    }
    out.sort();
    out
}

/// The harness configuration is a real, valid config: otherwise every target would fuzz nothing.
#[test]
fn the_fuzz_harness_config_validates() {
    if let Err(issues) = fuzzing::harness_config() {
        panic!("the harness config does not validate: {issues}");
    }
}

/// Every seed and every kept crash input returns from its harness without a panic.
#[test]
fn every_seed_and_kept_crash_input_runs_through_its_harness() {
    let mut inputs = stored_inputs("seeds");
    let seeds = inputs.len();
    inputs.extend(stored_inputs("regressions"));
    // scripts/fuzz seeds the config target with the example too.
    inputs.push((
        "config".into(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hookbridge.example.toml"),
    ));
    assert!(seeds > 0, "no seed under {FUZZ}/seeds");
    let mut failures = Vec::new();
    for (target, path) in &inputs {
        let Some((_, harness)) = fuzzing::TARGETS.iter().find(|(t, _)| t == target) else {
            failures.push(format!("{}: no fuzz target named {target}", path.display()));
            continue;
        };
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| harness(&data)).is_err() {
            failures.push(format!("{}: panicked", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The verification seeds go deep: each one (but the forged) passes verification and reaches the
/// mapper for at least one source; each forged one for none.
#[test]
fn verification_seeds_reach_the_mapper_unless_forged() {
    let mut wrong = Vec::new();
    for (target, path) in stored_inputs("seeds") {
        let data = std::fs::read(&path).unwrap();
        let Some(outcomes) = fuzzing::verify_outcomes(&target, &data) else {
            continue;
        };
        let mapped = outcomes
            .iter()
            .any(|o| o == "event" || o.starts_with("handled") || o.starts_with("handshake"));
        let forged = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("forged");
        if mapped == forged {
            wrong.push(format!("{}: {outcomes:?}", path.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The committed seeds are what the generator makes from today's fixtures.
#[test]
fn seeds_are_made_from_the_fixtures() {
    let write = std::env::var_os("HOOKBRIDGE_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for (target, name, data) in seeds() {
        let path = Path::new(FUZZ).join("seeds").join(target).join(&name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&data[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "seeds differ from the fixtures (rewrite with HOOKBRIDGE_WRITE_SEEDS=1):\n{}",
        stale.join("\n")
    );
}

/// Seeds as (target, file name, bytes).
type Seeds = Vec<(&'static str, String, Vec<u8>)>;

/// Every seed: (target, file name, bytes).
fn seeds() -> Seeds {
    let goldens: BTreeMap<String, Golden> = load_goldens()
        .into_iter()
        .map(|g| (g.name.clone(), g))
        .collect();
    let mut out: Seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, data: Vec<u8>| {
        out.push((target, name.to_owned(), data));
    };
    request_seeds::golden_seeds(&goldens, &mut add);
    request_seeds::preset_seeds(&goldens, &mut add);
    request_seeds::cronofy_rotation_seed(&goldens, &mut add);
    request_seeds::timetap_seeds(&goldens, &mut add);
    request_seeds::service_optimizer_seeds(&goldens, &mut add);
    request_seeds::docplanner_and_salesking_seeds(&goldens, &mut add);
    request_seeds::generic_seeds(&mut add);

    // Mapping sees the same requests (every provider maps each one).
    let requests: Vec<(String, Vec<u8>)> = out
        .iter()
        .filter(|(t, n, _)| t.starts_with("verify_") && !n.contains("forged"))
        .map(|(t, n, d)| {
            (
                format!("{}-{n}", t.trim_start_matches("verify_")),
                d.clone(),
            )
        })
        .collect();
    for (name, data) in &requests {
        out.push(("map_payload", name.clone(), data.clone()));
    }

    record_seeds::dead_letter_seeds(&requests, &mut out);
    record_seeds::spool_entry_seeds(&mut out);
    record_seeds::config_seeds(&mut out);
    out
}
