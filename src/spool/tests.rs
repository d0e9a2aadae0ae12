//! Unit tests of `spool`.

use super::*;
use crate::event::cloudevents::CloudEventAttributes;
use crate::publish::OutboundMessage;

fn entry(publisher: &str, n: usize) -> SpoolEntry {
    SpoolEntry {
        publisher: publisher.into(),
        source: "docplanner".into(),
        dedup_key: format!("docplanner/k{n}"),
        claim_window: None,
        message: OutboundMessage {
            topic: "webhooks.docplanner.appointment.booked".into(),
            key: format!("k{n}"),
            dedup_key: format!("k{n}"),
            cloudevent: CloudEventAttributes {
                attributes: vec![("id", format!("k{n}")), ("subject", "s".into())],
                content_type: crate::event::avro::EVENT_CONTENT_TYPE,
            },
            payload: vec![n as u8; 100],
        },
    }
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hookbridge-spool-{name}-{}", std::process::id()));
    let _fresh = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn entries_survive_reopening_in_order_and_removal_frees_space() {
    let d = dir("reopen");
    {
        let s = Spool::open(&d, 1 << 20).unwrap();
        for n in 0..3 {
            s.push(&entry("nats", n)).unwrap();
        }
        assert_eq!(s.depth().0, 3);
    }
    let s = Spool::open(&d, 1 << 20).unwrap();
    assert_eq!(s.depth().0, 3, "counted again after reopening");
    assert_eq!(s.pending_for("nats"), 3);
    let oldest = s.oldest(10).unwrap();
    let keys: Vec<String> = oldest
        .iter()
        .map(|(_, e)| e.as_ref().unwrap().message.key.clone())
        .collect();
    assert_eq!(keys, ["k0", "k1", "k2"]);
    let (seq, _) = &oldest[0];
    s.remove(*seq, "nats").unwrap();
    assert_eq!(s.depth().0, 2);
    assert_eq!(s.pending_for("nats"), 2);
    // New sequence numbers continue after the old ones: order is kept across restarts.
    let next = s.push(&entry("nats", 9)).unwrap();
    assert!(next > oldest[2].0);
    drop(s);
    let _cleanup = std::fs::remove_dir_all(&d);
}

#[test]
fn a_full_spool_refuses_instead_of_dropping() {
    let d = dir("full");
    let s = Spool::open(&d, 600).unwrap();
    let mut accepted = 0;
    let err = loop {
        match s.push(&entry("kafka", accepted)) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, SpoolError::Full { .. }), "{err}");
    assert!(accepted >= 1);
    assert_eq!(
        s.depth().0 as usize,
        accepted,
        "nothing was dropped or half-written"
    );
    drop(s);
    let _cleanup = std::fs::remove_dir_all(&d);
}

#[test]
fn concurrent_appends_share_commits_keep_each_senders_order_and_all_survive() {
    const THREADS: usize = 16;
    const EACH: usize = 40;
    let d = dir("group-commit");
    {
        let s = std::sync::Arc::new(Spool::open(&d, 1 << 24).unwrap());
        let start = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let (s, start) = (s.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    // Each sender's entries are numbered t*1000 + i, in the order it sent them.
                    (0..EACH)
                        .map(|i| s.push(&entry("nats", t * 1000 + i)).unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        for sender in senders {
            let seqs = sender.join().unwrap();
            assert!(seqs.is_sorted(), "a sender's entries keep its order");
        }
        let commits = s.commits.load(Ordering::Relaxed) as usize;
        assert!(
            commits < THREADS * EACH,
            "{commits} commits for {} concurrent appends: none were grouped",
            THREADS * EACH
        );
        assert_eq!(s.depth().0 as usize, THREADS * EACH);
        assert_eq!(s.pending_for("nats") as usize, THREADS * EACH);
    }
    let s = Spool::open(&d, 1 << 24).unwrap();
    let on_disk = s.oldest(THREADS * EACH + 1).unwrap();
    assert_eq!(
        on_disk.len(),
        THREADS * EACH,
        "every answered append is on disk"
    );
    for t in 0..THREADS {
        let keys: Vec<String> = on_disk
            .iter()
            .map(|(_, e)| e.as_ref().unwrap().message.key.clone())
            .filter(|k| k.trim_start_matches('k').parse::<usize>().unwrap() / 1000 == t)
            .collect();
        let sent: Vec<String> = (0..EACH).map(|i| format!("k{}", t * 1000 + i)).collect();
        assert_eq!(
            keys, sent,
            "sender {t}'s entries drain in the order it sent them"
        );
    }
    drop(s);
    let _cleanup = std::fs::remove_dir_all(&d);
}

#[test]
fn quarantine_moves_an_entry_aside_survives_reopening_and_requeues_at_the_tail() {
    let d = dir("quarantine");
    {
        let s = Spool::open(&d, 1 << 20).unwrap();
        for n in 0..3 {
            s.push(&entry("nats", n)).unwrap();
        }
        let head = s.oldest(1).unwrap()[0].0;
        s.quarantine(head, Some("nats"), "publisher_gone").unwrap();
        assert_eq!(s.depth().0, 2);
        assert_eq!(s.pending_for("nats"), 2);
        assert_eq!(s.quarantined_count(), 1);
        let keys: Vec<String> = s
            .oldest(10)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.unwrap().message.key)
            .collect();
        assert_eq!(keys, ["k1", "k2"], "the entries behind it are next");
    }
    let s = Spool::open(&d, 1 << 20).unwrap();
    assert_eq!(s.quarantined_count(), 1, "counted again after reopening");
    let listed = s.quarantined().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1, "publisher_gone");
    assert_eq!(listed[0].2.as_ref().unwrap().message.key, "k0");
    assert_eq!(s.requeue_quarantined(None).unwrap(), 1);
    assert_eq!(s.quarantined_count(), 0);
    assert_eq!(s.pending_for("nats"), 3);
    let keys: Vec<String> = s
        .oldest(10)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.unwrap().message.key)
        .collect();
    assert_eq!(keys, ["k1", "k2", "k0"], "requeued at the tail");
    drop(s);
    let _cleanup = std::fs::remove_dir_all(&d);
}
