//! Certificate fetches under concurrency: coalesced, remembered when they fail, and budgeted.

use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Forgeries naming a certificate URL nobody serves: concurrent misses share one fetch, a failed
/// fetch is remembered (no second fetch for a minute), and fetches have their own small budget,
/// so a stream of forgeries cannot hold the gateway's in-flight permits on 5-second fetches.
#[tokio::test]
async fn certificate_fetches_are_coalesced_remembered_when_failed_and_budgeted() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let mut s = settings();
    s.cert_dir = None;
    let v = Arc::new(SnsVerifier::with_fetcher(
        s,
        Box::new(move |_url| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err("unreachable in this test")
            })
        }),
    ));
    let forged = |n: usize| SET_A[0].1.replace(CERT_A_ID, &format!("{n:032x}"));
    let attempt = |body: String| {
        let v = Arc::clone(&v);
        tokio::spawn(async move {
            let parsed = SnsMessage::parse(body.as_bytes()).unwrap();
            let h = headers(&[
                (MESSAGE_TYPE_HEADER, parsed.kind.as_str()),
                (TOPIC_ARN_HEADER, &parsed.topic_arn),
            ]);
            v.verify(&h, body.as_bytes(), sent_at(&body)).await.err()
        })
    };
    // Eight forgeries naming one URL at once: one fetch.
    let same: Vec<_> = (0..8).map(|_| attempt(forged(1))).collect();
    for task in same {
        assert!(matches!(
            task.await.unwrap(),
            Some(SnsError::CertUnavailable(_))
        ));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "coalesced");
    // The failure is remembered.
    assert!(matches!(
        attempt(forged(1)).await.unwrap(),
        Some(SnsError::CertUnavailable(_))
    ));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no second fetch for a failed URL"
    );
    // Ten new URLs at once: at most the budget is fetched, the rest refused at once.
    let many: Vec<_> = (2..12).map(|n| attempt(forged(n))).collect();
    let mut refused_at_once = 0;
    for task in many {
        if task.await.unwrap()
            == Some(SnsError::CertUnavailable(
                "too many certificate fetches at once",
            ))
        {
            refused_at_once += 1;
        }
    }
    let fetched = calls.load(Ordering::SeqCst) - 1;
    assert!(fetched <= 4, "{fetched} fetches in flight at once");
    assert_eq!(fetched + refused_at_once, 10);
}

/// A certificate fetched once serves every concurrent request for it.
#[tokio::test]
async fn concurrent_requests_for_a_new_certificate_share_one_fetch() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let mut s = settings();
    s.cert_dir = None;
    let pem = include_str!(
        "../../../../tests/fixtures/sns/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
    );
    let v = Arc::new(SnsVerifier::with_fetcher(
        s,
        Box::new(move |_url| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(pem.as_bytes().to_vec())
            })
        }),
    ));
    let body = SET_A[0].1;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let v = Arc::clone(&v);
            tokio::spawn(async move {
                let parsed = SnsMessage::parse(body.as_bytes()).unwrap();
                let h = headers(&[
                    (MESSAGE_TYPE_HEADER, parsed.kind.as_str()),
                    (TOPIC_ARN_HEADER, &parsed.topic_arn),
                ]);
                v.verify(&h, body.as_bytes(), sent_at(body)).await.err()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
