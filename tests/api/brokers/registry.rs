//! The schema registry: Apicurio Registry as a JVM child process, its own per test or one shared
//! per test binary.

use std::process::Child;
use std::time::{Duration, Instant};

use super::process::{http_ok, kill_jvm, spawn_jvm, wait_for_port_within};
use super::{TempDir, free_port};

/// Apicurio Registry 3.x with in-memory storage, spoken to through its Confluent-compatible API.
/// The jar and its Java (21: Apicurio 3.3 needs it) come from `HOOKBRIDGE_APICURIO_JAR` and
/// `HOOKBRIDGE_APICURIO_JAVA`, set by `scripts/test`.
pub struct Registry {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

static SHARED_REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();

impl Registry {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// On a chosen port: a test can start it late, where the gateway already expects it.
    pub fn start_on(port: u16) -> Self {
        let mut registry = Registry {
            port,
            dir: TempDir::new("registry"),
            child: None,
        };
        registry.restart();
        registry
    }

    /// One per test binary for tests that leave it running (unique subjects per test).
    pub fn shared() -> &'static Registry {
        SHARED_REGISTRY.get_or_init(Registry::start)
    }

    /// The Confluent-compatible base URL, as clients are configured with it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/apis/ccompat/v7", self.port)
    }

    pub fn stop(&mut self) {
        let pid_file = self.dir.path().join("registry.pid");
        kill_jvm(&mut self.child, &pid_file);
    }

    pub fn restart(&mut self) {
        self.stop();
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the tests through scripts/test, which installs Apicurio Registry into .cache/")
            })
        };
        let (java, jar) = (
            var("HOOKBRIDGE_APICURIO_JAVA"),
            var("HOOKBRIDGE_APICURIO_JAR"),
        );
        let tmp = self.dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("registry tmp dir");
        let log = self.dir.path().join("registry.log");
        let tmp = tmp.display().to_string();
        let mut args: Vec<String> = [
            "-Xms64m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dquarkus.http.host=127.0.0.1",
            // The management interface defaults to 9000: two registries would collide.
            "-Dquarkus.management.port=0",
            "-Dquarkus.management.host=127.0.0.1",
            "-Dquarkus.http.access-log.enabled=false",
            "-Dquarkus.log.level=WARN",
            // Confluent's default; Apicurio's own is NONE.
            "-Dapicurio.rules.global.compatibility=BACKWARD",
        ]
        .map(String::from)
        .to_vec();
        args.extend([
            format!("-Dquarkus.http.port={}", self.port),
            format!("-Djava.io.tmpdir={tmp}"),
            format!("-Dvertx.cacheDirBase={tmp}/vertx-cache"),
            format!("-Dapicurio.storage.snapshot.location={tmp}"),
            format!("-Dapicurio.import.work-dir={tmp}"),
            "-jar".to_owned(),
            jar,
        ]);
        let pid_file = self.dir.path().join("registry.pid");
        let mut child = spawn_jvm(&java, &args, &log, &pid_file);
        wait_for_port_within(
            self.port,
            &mut child,
            &log,
            "apicurio",
            Duration::from_secs(90),
        );
        // The port opens before the API answers: wait for the subject list.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !http_ok(self.port, "/apis/ccompat/v7/subjects") {
            assert!(
                Instant::now() < deadline,
                "apicurio's API did not answer; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.child = Some(child);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
