//! Apache Kafka: a one-node KRaft broker as a JVM child process (or an external one), its own per
//! test or one shared per test binary, stopped, restarted, paused and resumed by tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{kill_jvm, signal_pid_file, spawn_jvm, wait_for_port_within};
use super::{TempDir, free_port};

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
            let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
            // One id in 64 starts with `-`, which kafka-storage's argument parser takes for an
            // option ("--cluster-id: expected one argument"); any other first letter is as valid.
            match id.strip_prefix('-') {
                Some(rest) => format!("A{rest}"),
                None => id,
            }
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
