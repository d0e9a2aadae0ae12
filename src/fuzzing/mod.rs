//! Fuzz harnesses: one `pub fn <target>(data: &[u8])` per target in `fuzz/fuzz_targets/`, kept in
//! the library so that `tests/api/fuzz_regressions.rs` replays stored inputs through exactly the
//! code the fuzzer ran. Run them with `scripts/fuzz` (README, "Fuzzing").
//!
//! A harness never panics by itself: any panic, hang or out-of-memory is a finding in the code it
//! calls. Nothing here touches the network or the clock: providers come from [`HARNESS_CONFIG`]
//! through the real `load_str` + `Config::validate` path (secrets from [`harness_env`]), SNS
//! certificates from `tests/fixtures/sns` with fetching off and subscription confirmation off, and
//! every request is received at [`NOW`]. (JWT `exp` is the one check that reads the real clock,
//! inside `jsonwebtoken`.)
//!
//! Request targets read their input as a framed HTTP request:
//!
//! ```text
//! name: value        one header per line (repeats allowed), until the first empty line
//! :query: a=1&b=2    the pseudo-header `:query` sets the query string
//! :method: GET       the pseudo-header `:method` makes it a GET (handshakes); POST otherwise
//!                    (empty line)
//! body bytes         everything after the empty line, as it is
//! ```
//!
//! Lines may end in `\r\n`; a line that is not a valid header is skipped. Input without an empty
//! line has no headers: all of it is the body.
//!
//! The pieces: `sources` (the harness config and its secrets), `framed` (that framing),
//! `targets` (one function per fuzz target) and `pipeline` (the pipeline's steps up to the broker,
//! as the targets run them). Compiled only with the `fuzzing` feature, which `fuzz/Cargo.toml` and
//! `scripts/test` turn on: the gateway binary carries none of it.

mod framed;
mod pipeline;
mod sources;
mod targets;

use std::net::{IpAddr, Ipv4Addr};

use time::OffsetDateTime;

pub use self::framed::Framed;
pub use self::sources::{HARNESS_CONFIG, PRESET_SOURCE_PREFIX, harness_config, harness_env};
pub use self::targets::{
    config, dead_letter, map_payload, spool_entry, verify_cronofy, verify_docplanner,
    verify_generic, verify_outcomes, verify_presets, verify_salesking, verify_service_optimizer,
    verify_timetap,
};

/// When every fuzzed request is received: a fixed time, so runs are reproducible and seeds signed
/// for it stay valid.
pub const NOW: OffsetDateTime = time::macros::datetime!(2026-03-07 00:00 UTC);

/// The TCP peer of every fuzzed request: inside the Docplanner source's trusted proxies, so its
/// forwarding header is parsed.
pub const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

/// The directory of SNS fixtures and signing certificates, in this crate's source tree.
pub const SNS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sns");

/// A harness: takes the fuzzer's bytes, returns nothing, never panics by itself.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its fuzz target and seed directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("verify_cronofy", verify_cronofy),
    ("verify_timetap", verify_timetap),
    ("verify_service_optimizer", verify_service_optimizer),
    ("verify_docplanner", verify_docplanner),
    ("verify_salesking", verify_salesking),
    ("verify_generic", verify_generic),
    ("verify_presets", verify_presets),
    ("map_payload", map_payload),
    ("config", config),
    ("dead_letter", dead_letter),
    ("spool_entry", spool_entry),
];
