//! Unit tests of `timetap`.

use super::*;
use crate::providers::{block_on, expect_event};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sns");
const TOPIC: &str = "arn:aws:sns:us-west-2:131990247566:dongie-standard-topic";

fn provider(extra: &str) -> TimeTap {
    let table: toml::Table = format!(
        "topic_arns = [\"{TOPIC}\"]\ncert_dir = \"{FIXTURES}\"\nfetch_certs = false\n{extra}"
    )
    .parse()
    .unwrap();
    let env = HashMap::from([("TT".to_owned(), "tt-token".to_owned())]);
    TimeTap::from_config("k", &table, &env).unwrap()
}

fn run(
    p: &TimeTap,
    headers: &[(&str, &str)],
    body: &str,
    query: &str,
    now: &str,
) -> Result<Mapped, String> {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let body = Bytes::from(body.to_owned());
    let received_at = OffsetDateTime::parse(now, &Rfc3339).unwrap();
    let request = WebhookRequest {
        method: "POST",
        headers: &h,
        query,
        body: &body,
        peer: None,
        received_at,
    };
    let verified = block_on(p.verify(&request)).map_err(|e| e.code().to_owned())?;
    block_on(p.map("tt", verified)).map_err(|e| e.code().to_owned())
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

#[test]
fn real_sns_notification_is_published_with_its_message_id() {
    let body = fixture("test-notification-with-subject.json");
    let e = expect_event(
        run(
            &provider(""),
            &[("x-amz-sns-message-type", "Notification")],
            &body,
            "",
            "2026-03-06T19:53:30Z",
        )
        .unwrap(),
    );
    assert_eq!(e.id.as_str(), "26858270-545e-5848-82a2-e05566af3dcf");
    // "Hello! This message has a subject." is not an appointment: published untyped, not lost.
    assert_eq!(e.event_type, "appointment.notification");
    assert_eq!(&e.payload[..], b"Hello! This message has a subject.");
    assert_eq!(
        e.attributes.get("sns_subject").map(String::as_str),
        Some("My message subject")
    );
    assert!(!String::from_utf8_lossy(&e.payload).contains("Signature"));
}

#[test]
fn unsubscribe_is_noted_and_confirmation_can_be_switched_off() {
    let body = fixture("test-unsubscribe-confirmation.json");
    let m = run(&provider(""), &[], &body, "", "2026-03-06T20:02:30Z").unwrap();
    assert!(
        matches!(
            m,
            Mapped::Handled {
                code: "unsubscribe_noted"
            }
        ),
        "{m:?}"
    );
    let body = fixture("test-subscription-confirmation.json");
    let m = run(
        &provider("confirm_subscriptions = false"),
        &[],
        &body,
        "",
        "2026-03-06T19:31:40Z",
    )
    .unwrap();
    assert!(
        matches!(
            m,
            Mapped::Handled {
                code: "subscription_not_confirmed"
            }
        ),
        "{m:?}"
    );
}

#[test]
fn sns_failures_carry_the_blocks_codes() {
    let body = fixture("test-notification-with-subject.json");
    let other_topic = TimeTap::from_config(
        "k",
        &format!("topic_arns = [\"arn:aws:sns:us-west-2:1:other\"]\ncert_dir = \"{FIXTURES}\"\nfetch_certs = false").parse().unwrap(),
        &HashMap::new(),
    )
    .unwrap();
    assert_eq!(
        run(&other_topic, &[], &body, "", "2026-03-06T19:53:30Z").unwrap_err(),
        "topic_not_allowed"
    );
    assert_eq!(
        run(&provider(""), &[], &body, "", "2026-03-06T23:53:30Z").unwrap_err(),
        "stale_timestamp"
    );
    let forged = body.replace("Hello!", "Hullo!");
    assert_eq!(
        run(&provider(""), &[], &forged, "", "2026-03-06T19:53:30Z").unwrap_err(),
        "bad_signature"
    );
}

#[test]
fn direct_appointments_need_the_token() {
    let p = provider("direct = \"token\"\ndirect_tokens = [\"env:TT\"]");
    let body = r#"{"calendarid": 81234, "businessId": 7, "status": "CANCELLED", "professional": {"professionalId": 5}, "client": {"clientId": "c1"}, "location": {"locationId": 3}, "reason": {"reasonId": 9}, "extra": {"kept": true}}"#;
    let e = expect_event(run(&p, &[], body, "token=tt-token", "2026-03-06T19:53:30Z").unwrap());
    assert_eq!(
        (e.event_type.as_str(), e.subject.as_deref()),
        ("appointment.cancelled", Some("81234"))
    );
    match &e.data {
        Some(EventData::Appointment(a)) => assert_eq!(
            (
                a.staff_id.as_deref(),
                a.client_id.as_deref(),
                a.service_id.as_deref()
            ),
            (Some("5"), Some("c1"), Some("9"))
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        String::from_utf8_lossy(&e.payload).contains("\"kept\""),
        "unknown fields are kept"
    );
    let header = expect_event(
        run(
            &p,
            &[("x-timetap-token", "tt-token")],
            body,
            "",
            "2026-03-06T19:53:30Z",
        )
        .unwrap(),
    );
    assert_eq!(header.id, e.id);
    assert_eq!(
        run(&p, &[], body, "token=nope", "2026-03-06T19:53:30Z").unwrap_err(),
        "bad_credential"
    );
    assert_eq!(
        run(&p, &[], body, "", "2026-03-06T19:53:30Z").unwrap_err(),
        "missing_credential"
    );
    assert_eq!(
        run(&provider(""), &[], body, "", "2026-03-06T19:53:30Z").unwrap_err(),
        "missing_signature"
    );
}
