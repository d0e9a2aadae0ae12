//! Real brokers as child processes on free ports, each with its own temporary directory and log
//! file. `stop()` / `start()` simulate outages; `Drop` kills them.
//!
//! nats-server comes from `HOOKBRIDGE_NATS_SERVER_BIN`, Apache Kafka's jars from
//! `HOOKBRIDGE_KAFKA_LIBS` with its log4j2 file in `HOOKBRIDGE_KAFKA_LOG4J` (all set by
//! `scripts/test`, which installs them into `.cache/`). A missing broker fails the test with a
//! message saying how to get it: broker tests are never skipped.
//!
//! Kafka is a JVM that takes seconds to start on two busy cores, so tests that only publish and
//! read share one per test binary ([`KafkaBroker::shared`], unique topics per test); tests that
//! stop, pause or restart a broker start their own.
//!
//! Output goes to a log file, never to an inherited pipe: a broker that outlived a killed test run
//! must not keep the CI runner's stdout open.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hookbridge-{prefix}-{}-{n}", std::process::id()));
        let _fresh = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _removed = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

fn binary(var: &str, fallback: &str) -> String {
    if let Ok(path) = std::env::var(var) {
        return path;
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(fallback).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{fallback} not found: set {var} or run the tests through scripts/test, which installs the brokers"
    );
    fallback.to_owned()
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path, what: &str) {
    wait_for_port_within(port, child, log, what, Duration::from_secs(20));
}

fn wait_for_port_within(port: u16, child: &mut Child, log: &Path, what: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // A server that found its port taken exits at once; make sure the listener is ours.
            std::thread::sleep(Duration::from_millis(50));
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "{what} exited with {status} right after start (port {port} taken?); its log:\n{log}"
                );
            }
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited with {status} before listening on {port}; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on {port} within {wait:?}; its log:\n{log}");
}

/// Starts a JVM under a watchdog shell that kills it when this test process is gone, however it
/// ended (a shared broker lives in a static that is never dropped). The JVM's own pid goes to
/// `pid_file`, for signals that must reach it rather than the shell.
fn spawn_jvm(java: &str, args: &[String], log: &Path, pid_file: &Path) -> Child {
    let _stale = std::fs::remove_file(pid_file);
    let script = format!(
        "\"$HB_JAVA\" \"$@\" & jvm=$!; echo $jvm > '{}'; trap 'kill -9 $jvm 2>/dev/null' EXIT TERM; \
         while kill -0 {} 2>/dev/null && kill -0 $jvm 2>/dev/null; do sleep 0.5; done",
        pid_file.display(),
        std::process::id()
    );
    let mut shell_args = vec!["-c".to_owned(), script, "jvm".to_owned()];
    shell_args.extend(args.iter().cloned());
    spawn_logged_with_env("bash", &shell_args, log, &[("HB_JAVA", java)])
}

/// Kills a JVM started by [`spawn_jvm`] and its watchdog.
fn kill_jvm(child: &mut Option<Child>, pid_file: &Path) {
    if child.is_some() {
        signal_pid_file(pid_file, "-KILL");
    }
    kill(child);
}

fn signal_pid_file(pid_file: &Path, name: &str) {
    let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
    let pid = pid.trim();
    if !pid.is_empty() {
        let _sent = Command::new("kill").args([name, pid]).status();
    }
}

fn spawn_logged(program: &str, args: &[String], log: &Path) -> Child {
    spawn_logged_with_env(program, args, log, &[])
}

fn spawn_logged_with_env(
    program: &str,
    args: &[String],
    log: &Path,
    env: &[(&str, &str)],
) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open broker log");
    let err = out.try_clone().expect("clone log handle");
    Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _killed = c.kill();
        let _reaped = c.wait();
    }
}

/// `nats-server -js` with a file store in a temp dir. Its data survives `stop()`/`start()`.
pub struct NatsServer {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Clients must present this token (`--auth`).
    token: Option<String>,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_protected(None)
    }

    /// A server that refuses clients without `token`.
    pub fn start_with_token(token: &str) -> Self {
        Self::start_protected(Some(token.to_owned()))
    }

    fn start_protected(token: Option<String>) -> Self {
        let mut server = NatsServer {
            port: free_port(),
            dir: TempDir::new("nats"),
            child: None,
            token,
        };
        server.restart();
        server
    }

    /// The URL with the token as its user part, how a test's own client authenticates.
    pub fn url_with_token(&self) -> String {
        match &self.token {
            Some(token) => format!("nats://{token}@127.0.0.1:{}", self.port),
            None => self.url(),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: an outage, not a polite shutdown).
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        let bin = binary("HOOKBRIDGE_NATS_SERVER_BIN", "nats-server");
        let store = self.dir.path().join("store");
        let log = self.dir.path().join("nats.log");
        let mut args = [
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
            &store.to_string_lossy(),
        ]
        .map(String::from)
        .to_vec();
        if let Some(token) = &self.token {
            args.extend(["--auth".to_owned(), token.clone()]);
        }
        let mut child = spawn_logged(&bin, &args, &log);
        wait_for_port(self.port, &mut child, &log, "nats-server");
        self.child = Some(child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGSTOP / SIGCONT: a broker that hangs without closing its connections.
fn signal(child: &Option<Child>, name: &str) {
    if let Some(c) = child {
        let status = Command::new("kill")
            .args([name, &c.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {name} {}", c.id());
    }
}

impl NatsServer {
    /// Freezes the server: connections stay open, nothing is answered.
    pub fn pause(&self) {
        signal(&self.child, "-STOP");
    }

    pub fn resume(&self) {
        signal(&self.child, "-CONT");
    }
}

/// Apache Kafka 4.x in KRaft mode, one node as broker and controller, with its log in a temp dir
/// that survives `stop()`/`restart()` (a real restart: topics and records are kept). Or an
/// external Kafka from `HOOKBRIDGE_TEST_KAFKA_BOOTSTRAP` (then it cannot be stopped).
pub struct KafkaBroker {
    pub port: u16,
    controller_port: u16,
    external: Option<String>,
    dir: TempDir,
    child: Option<Child>,
    /// SASL/PLAIN (user, password) required on the client listener.
    sasl: Option<(String, String)>,
}

static SHARED_KAFKA: std::sync::OnceLock<KafkaBroker> = std::sync::OnceLock::new();

impl KafkaBroker {
    /// A broker of this test's own, for tests that stop, pause or restart it.
    pub fn start() -> Self {
        Self::start_protected(None)
    }

    /// A broker whose client listener takes only SASL/PLAIN as `user` with `password`.
    pub fn start_sasl(user: &str, password: &str) -> Self {
        Self::start_protected(Some((user.to_owned(), password.to_owned())))
    }

    /// librdkafka properties a client needs for this broker (empty without SASL).
    pub fn client_properties(&self) -> Vec<(String, String)> {
        match &self.sasl {
            Some((user, password)) => vec![
                ("security.protocol".into(), "SASL_PLAINTEXT".into()),
                ("sasl.mechanisms".into(), "PLAIN".into()),
                ("sasl.username".into(), user.clone()),
                ("sasl.password".into(), password.clone()),
            ],
            None => Vec::new(),
        }
    }

    fn start_protected(sasl: Option<(String, String)>) -> Self {
        let external = std::env::var("HOOKBRIDGE_TEST_KAFKA_BOOTSTRAP")
            .ok()
            .filter(|_| sasl.is_none());
        let mut broker = KafkaBroker {
            port: free_port(),
            controller_port: free_port(),
            external,
            dir: TempDir::new("kafka"),
            child: None,
            sasl,
        };
        if broker.external.is_none() {
            broker.format();
            broker.restart();
        }
        broker
    }

    /// The broker every test of this binary that leaves it running shares; started on first use
    /// and killed by its watchdog when the test process exits.
    pub fn shared() -> &'static KafkaBroker {
        SHARED_KAFKA.get_or_init(KafkaBroker::start)
    }

    pub fn bootstrap(&self) -> String {
        self.external
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", self.port))
    }

    pub fn is_external(&self) -> bool {
        self.external.is_some()
    }

    fn libs() -> String {
        let libs = std::env::var("HOOKBRIDGE_KAFKA_LIBS").unwrap_or_else(|_| {
            panic!("HOOKBRIDGE_KAFKA_LIBS is not set: run the tests through scripts/test, which installs Apache Kafka into .cache/")
        });
        format!("{libs}/*")
    }

    /// Java 17+ as `scripts/lib/brokers.sh` found it, else `java` on PATH.
    fn java() -> String {
        std::env::var("HOOKBRIDGE_JAVA").unwrap_or_else(|_| "java".to_owned())
    }

    fn properties(&self) -> PathBuf {
        self.dir.path().join("server.properties")
    }

    /// Writes `server.properties` and formats the KRaft storage (what `kafka-storage.sh format`
    /// runs), once per broker.
    fn format(&self) {
        let (port, cport) = (self.port, self.controller_port);
        let log_dir = self.dir.path().join("log");
        let (client, sasl) = match &self.sasl {
            // The client (and inter-broker) listener takes SASL/PLAIN with these users only.
            Some((user, password)) => (
                "SASL_PLAINTEXT",
                format!(
                    "sasl.enabled.mechanisms=PLAIN\nsasl.mechanism.inter.broker.protocol=PLAIN\n\
                     listener.name.sasl_plaintext.plain.sasl.jaas.config=\
                     org.apache.kafka.common.security.plain.PlainLoginModule required \
                     username=\"{user}\" password=\"{password}\" user_{user}=\"{password}\";\n"
                ),
            ),
            None => ("PLAINTEXT", String::new()),
        };
        let text = format!(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{cport}\n\
             listeners={client}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
             advertised.listeners={client}://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\ninter.broker.listener.name={client}\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,{client}:{client}\n{sasl}\
             log.dirs={}\nnum.partitions=1\nauto.create.topics.enable=true\n\
             offsets.topic.replication.factor=1\noffsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n\
             transaction.state.log.num.partitions=1\nshare.coordinator.state.topic.num.partitions=1\n\
             group.initial.rebalance.delay.ms=0\n\
             broker.heartbeat.interval.ms=500\nbroker.session.timeout.ms=2000\n",
            log_dir.display()
        );
        std::fs::write(self.properties(), text).expect("write server.properties");
        // A cluster id is 16 bytes in URL-safe base64; any value other than the reserved ones.
        let id = {
            use base64::Engine as _;
            let seed = format!("{}-{}-{:?}", std::process::id(), self.port, Instant::now());
            let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
        };
        let log = self.dir.path().join("format.log");
        let out = std::fs::File::create(&log).expect("format log");
        let status = Command::new(Self::java())
            .args([
                "-Xshare:auto",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                &Self::libs(),
            ])
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                &id,
                "-c",
            ])
            .arg(self.properties())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .status()
            .expect("run java (Java 17 is needed for Apache Kafka)");
        assert!(
            status.success(),
            "formatting Kafka storage failed: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("kafka.pid")
    }

    /// Sends `name` to the JVM itself (the child is its watchdog shell).
    fn signal_jvm(&self, name: &str) {
        if self.child.is_some() {
            signal_pid_file(&self.pid_file(), name);
        }
    }

    /// Kills the broker (SIGKILL: an outage, not a polite shutdown).
    pub fn stop(&mut self) {
        let pid_file = self.pid_file();
        kill_jvm(&mut self.child, &pid_file);
    }

    pub fn pause(&self) {
        self.signal_jvm("-STOP");
    }

    pub fn resume(&self) {
        self.signal_jvm("-CONT");
    }

    /// Starts the broker on the same ports over the same log: what was stored is still there.
    pub fn restart(&mut self) {
        assert!(self.external.is_none(), "cannot restart an external Kafka");
        self.stop();
        let log4j = std::env::var("HOOKBRIDGE_KAFKA_LOG4J").unwrap_or_default();
        let log = self.dir.path().join("kafka.log");
        let mut args = vec![
            "-Xms128m".to_owned(),
            "-Xmx512m".to_owned(),
            "-XX:+UseSerialGC".to_owned(),
            "-XX:TieredStopAtLevel=1".to_owned(),
            "-Xshare:auto".to_owned(),
        ];
        if !log4j.is_empty() {
            args.push(format!("-Dlog4j2.configurationFile={log4j}"));
        }
        args.extend([
            "-cp".to_owned(),
            Self::libs(),
            "kafka.Kafka".to_owned(),
            self.properties().to_string_lossy().into_owned(),
        ]);
        let mut child = spawn_jvm(&Self::java(), &args, &log, &self.pid_file());
        // The PLAINTEXT listener opens only once the broker is registered and unfenced, so a
        // port that accepts is a broker that serves.
        wait_for_port_within(
            self.port,
            &mut child,
            &log,
            "kafka",
            Duration::from_secs(90),
        );
        self.child = Some(child);
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

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

/// A plain HTTP/1.0 GET on 127.0.0.1 that answers 200 (no client library, no runtime).
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _timeout = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}
