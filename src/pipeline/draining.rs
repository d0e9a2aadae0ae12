//! Delivery from the spool's side: the drainer hands each spooled entry to the pipeline, which
//! claims its key (when it was spooled unclaimed), publishes under the same deadline, metrics and
//! health updates as a request, and dead-letters what the broker refuses for good.

use super::*;
use crate::spool::drain::{Delivery, SpoolSink};

impl SpoolSink for Pipeline {
    async fn deliver(&self, entry: &SpoolEntry) -> Delivery {
        let Some(publisher) = self.publishers.iter().find(|p| p.name == entry.publisher) else {
            // Publishers are set up once: one gone from the config is gone until someone puts it
            // back, and waiting for it would hold every entry behind this one.
            return Delivery::Poison("publisher_gone");
        };
        if !publisher.is_healthy() {
            // The health loop wakes the drainer when it is back; trying now would only wait out
            // the deadline for every entry.
            return Delivery::Wait("publisher down".into());
        }
        let revision = match entry.claim_window {
            // Claimed and confirmed when it was spooled: publish it as it is.
            None => None,
            Some(window) => match self.claim(&entry.dedup_key, window).await {
                Ok(Claim::New(revision)) => Some(revision),
                // Published meanwhile (a resend, another replica): drop this copy, counted in
                // `hookbridge_spool_duplicates_total`.
                Ok(Claim::Duplicate) => return Delivery::Duplicate,
                Ok(Claim::InFlight) => return Delivery::Wait("being published elsewhere".into()),
                // Still no store: keep it and its publisher's later entries, in order.
                Err(e) => return Delivery::Wait(e.to_string()),
            },
        };
        let delivery = match self.publish(publisher, &entry.message).await {
            Ok(()) => Delivery::Delivered,
            Err(e @ PublishError::Rejected(_)) => self.dead_letter_spooled(entry, &e).await,
            // Timeout or unavailable: it stays at its publisher's head for the next pass.
            Err(e) => Delivery::Wait(e.to_string()),
        };
        if let Some(revision) = revision {
            match delivery {
                Delivery::Delivered => self.confirm(&entry.dedup_key, revision).await,
                // Not delivered: a resend, or the entry requeued from quarantine, claims afresh.
                _ => self.release(&entry.dedup_key).await,
            }
        }
        delivery
    }
}

impl Pipeline {
    /// The drainer's answer to a spooled event the broker refuses for good: a publish-stage dead
    /// letter carrying the encoded event.
    async fn dead_letter_spooled(&self, entry: &SpoolEntry, error: &PublishError) -> Delivery {
        if entry.message.cloudevent.content_type == DEAD_LETTER_CONTENT_TYPE {
            // There is nowhere further to put a dead letter the broker refuses.
            return Delivery::Poison("dead_letter_refused");
        }
        let Some(source) = self.source(&entry.source) else {
            return Delivery::Poison("source_gone");
        };
        let letter = DeadLetter::new(DeadLetterInput {
            source: &entry.source,
            provider: source.config.provider.kind(),
            stage: Stage::Publish,
            reason_code: error.code(),
            reason_message: error.to_string(),
            // The entry keeps no arrival time or request: the letter records when it was given up
            // on, and carries the encoded event (Avro) as its body, with no request headers.
            received_at: time::OffsetDateTime::now_utc(),
            body: bytes::Bytes::from(entry.message.payload.clone()),
            body_content_type: entry.message.cloudevent.content_type,
            headers: &actix_web::http::header::HeaderMap::new(),
            provider_headers: &[],
            event_id: Some(&entry.message.dedup_key),
            topic: Some(&entry.message.topic),
        });
        match self.dead_letter(&source, letter).await {
            Ok(_) => Delivery::Delivered,
            // The letter is refused too: quarantine, where `hookbridge quarantine` lists it.
            Err(PipelineError::Publish(PublishError::Rejected(_))) => {
                Delivery::Poison("dead_letter_refused")
            }
            // The dead-letter topic is unavailable: the whole entry is tried again next pass.
            Err(e) => Delivery::Wait(e.to_string()),
        }
    }
}
