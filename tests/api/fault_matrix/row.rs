//! Everything one row runs on: its directory, names and NATS server, the gateway config its
//! topology calls for, and the independent read-back of what reached the broker.

use std::collections::HashMap;
use std::time::Duration;

use super::gateway::Gateway;
use super::{Broker, Dedup, Fault, PUBLISH_TIMEOUT, Policy, Topology};
use crate::brokers::{NatsServer, TempDir, free_port};
use crate::consumers::{read_kafka, read_nats};
use crate::helpers::unique;

/// Everything one row runs on.
pub(super) struct Row {
    pub(super) topology: Topology,
    pub(super) fault: Fault,
    pub(super) dir: TempDir,
    pub(super) prefix: String,
    pub(super) stream: String,
    pub(super) bucket: String,
    pub(super) nats: Option<NatsServer>,
}

impl Row {
    pub(super) fn new(topology: Topology, fault: Fault) -> Row {
        Row {
            topology,
            fault,
            dir: TempDir::new("matrix"),
            prefix: unique("fm"),
            stream: unique("FM"),
            bucket: unique("fmdedup"),
            nats: topology.needs_nats().then(NatsServer::start),
        }
    }

    pub(super) fn provider(&self) -> &'static str {
        match self.topology.policy {
            Policy::Spool => "docplanner",
            Policy::Reject => "cronofy",
        }
    }

    /// The gateway's config for this row; `replica` keeps two replicas' spools and dedup files
    /// apart.
    fn config(&self, port: u16, kafka: &str, replica: usize, reconcile: Option<&str>) -> String {
        let t = &self.topology;
        let prefix = &self.prefix;
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = 2\npublish_timeout_ms = {}\n\
             health_interval_ms = 200\nretry_after_seconds = 1\nshutdown_grace_secs = 10\n\
             max_in_flight = 512\n\n",
            PUBLISH_TIMEOUT.as_millis()
        );
        if t.policy == Policy::Spool {
            text.push_str(&format!(
                "[spool]\npath = \"{}\"\n\n",
                self.dir.path().join(format!("spool{replica}")).display()
            ));
        }
        match t.dedup {
            Dedup::Local => text.push_str(&format!(
                "[dedup]\nstore = \"disk\"\npath = \"{}\"\n\n",
                self.dir.path().join(format!("dedup{replica}")).display()
            )),
            Dedup::NatsKv => text.push_str(&format!(
                "[dedup]\nstore = \"nats\"\nurl = \"{}\"\nbucket = \"{}\"\n\n",
                self.nats_url(),
                self.bucket
            )),
            Dedup::Memory => text.push_str("[dedup]\nstore = \"memory\"\n\n"),
        }
        match t.broker {
            Broker::Nats => text.push_str(&format!(
                "[publishers.main]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{}\"\nsubjects = [\"{prefix}.>\"]\n\n",
                self.nats_url(),
                self.stream
            )),
            Broker::Kafka => text.push_str(&format!(
                "[publishers.main]\nkind = \"kafka\"\nbootstrap_servers = \"{kafka}\"\ntopic_partitions = 1\n\n"
            )),
        }
        text.push_str(&self.sources_config(reconcile));
        text
    }

    /// The row's source (and, for the poison rows, the poison source), with its
    /// `on_broker_failure` policy.
    fn sources_config(&self, reconcile: Option<&str>) -> String {
        let t = &self.topology;
        let prefix = &self.prefix;
        let mut text = String::new();
        let policy = match t.policy {
            Policy::Spool => "spool",
            Policy::Reject => "reject",
        };
        match self.provider() {
            "docplanner" => {
                text.push_str(&format!(
                    "[sources.docplanner]\nprovider = \"docplanner\"\npublisher = \"main\"\n\
                     topic = \"{prefix}.{{provider}}.{{type}}\"\ndead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
                     on_broker_failure = \"{policy}\"\n\
                     [sources.docplanner.verify]\napi_key_header = \"X-Api-Key\"\napi_keys = [\"env:DP_KEY\"]\n"
                ));
                if let Some(base) = reconcile {
                    text.push_str(&format!(
                        "[sources.docplanner.reconcile]\nbase_url = \"{base}/api/v3/integration\"\n\
                         token_url = \"{base}/oauth/v2/token\"\nclient_id = \"env:DP_ID\"\n\
                         client_secret = \"env:DP_SECRET\"\npull = true\nrelease = false\n\
                         interval_secs = 1\nbatch = 100\n"
                    ));
                }
            }
            _ => text.push_str(&format!(
                "[sources.cronofy]\nprovider = \"cronofy\"\npublisher = \"main\"\n\
                 topic = \"{prefix}.{{provider}}.{{type}}\"\ndead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
                 on_broker_failure = \"{policy}\"\n\
                 [sources.cronofy.verify]\nclient_secrets = [\"env:CRONOFY\"]\n"
            )),
        }
        if self.fault == Fault::PoisonHead {
            // A source whose events the broker refuses for good, dead letters included: on NATS a
            // subject no stream captures, on Kafka a topic name longer than Kafka allows.
            let poison_topic = match t.broker {
                Broker::Nats => "poison.{provider}.{type}".to_owned(),
                Broker::Kafka => format!("poison{}", "x".repeat(250)),
            };
            text.push_str(&format!(
                "\n[sources.poison]\nprovider = \"docplanner\"\npublisher = \"main\"\n\
                 topic = \"{poison_topic}\"\ndead_letter_topic = \"{poison_topic}\"\n\
                 on_broker_failure = \"spool\"\n\
                 [sources.poison.verify]\napi_key_header = \"X-Api-Key\"\napi_keys = [\"env:DP_KEY\"]\n"
            ));
        }
        text
    }

    fn nats_url(&self) -> String {
        self.nats.as_ref().map(NatsServer::url).unwrap_or_default()
    }

    pub(super) async fn gateway(
        &self,
        kafka: &str,
        replica: usize,
        reconcile: Option<&str>,
    ) -> (Gateway, u16) {
        let port = free_port();
        let path = self.dir.path().join(format!("hookbridge{replica}.toml"));
        std::fs::write(&path, self.config(port, kafka, replica, reconcile)).expect("write config");
        let log = self.dir.path().join(format!("gateway{replica}.log"));
        (Gateway::start(&path, port, &log).await, port)
    }

    /// The tag of webhook `i`: the event's subject once published.
    pub(super) fn tag(&self, i: usize) -> String {
        format!("{}-{i:05}", self.prefix)
    }

    /// Reads back every event of this row, keyed by subject: how often each was consumed.
    pub(super) async fn consume(
        &self,
        kafka: &str,
        expect: usize,
    ) -> (HashMap<String, usize>, usize) {
        let wait = Duration::from_secs(30);
        let (events, key_header) = match self.topology.broker {
            Broker::Nats => (
                read_nats(
                    &self.nats_url(),
                    &self.stream,
                    &format!("{}.{}.>", self.prefix, self.provider()),
                    expect,
                    wait,
                )
                .await,
                "Nats-Msg-Id",
            ),
            Broker::Kafka => {
                let topic = match self.provider() {
                    "docplanner" => format!("{}.docplanner.appointment.booked", self.prefix),
                    _ => format!("{}.cronofy.calendar.changed", self.prefix),
                };
                (
                    read_kafka(kafka, &topic, expect, wait).await,
                    "hookbridge_dedup_key",
                )
            }
        };
        let mut per_subject = HashMap::new();
        let mut per_key: HashMap<String, usize> = HashMap::new();
        for event in &events {
            *per_subject.entry(event.string("subject")).or_insert(0) += 1;
            *per_key
                .entry(event.header(key_header).to_owned())
                .or_insert(0) += 1;
        }
        let duplicates = per_key.values().map(|n| n - 1).sum();
        (per_subject, duplicates)
    }
}
