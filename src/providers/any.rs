//! [`AnyProvider`]: every provider kind hookbridge knows, and the one table that names them.
//!
//! The table is a macro so that it is written once: each row gives the enum variant, the
//! provider's type and the `sources.*.provider` kinds it answers to, and the macro derives the enum,
//! `from_config`, the list of kinds and the static dispatch of every [`Provider`] method (no boxed
//! futures on the request path). Adding a provider is one file and one row.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use super::{
    Facts, MapError, Mapped, Provider, ReplyStyle, SampleRequest, SampleWebhook, Verified,
    WebhookRequest, cronofy, docplanner, generic, salesking, service_optimizer, timetap,
};
use crate::section::ConfigIssue;
use crate::verify::VerifyError;

/// The constructor every provider type offers: `key` is the path of the `verify` table (for error
/// messages), `kind` the name it was configured under (a generic preset needs it).
pub trait FromVerifyTable: Sized {
    /// The `sources.*.provider` values this type is built for.
    fn kinds() -> Vec<&'static str>;
    fn from_verify_table(
        key: &str,
        kind: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>>;
}

/// [`FromVerifyTable`] for a provider answering to one kind and built by its
/// `from_config(key, verify, env)`: every seed provider.
macro_rules! one_kind {
    ($ty:ty, $kind:expr) => {
        impl $crate::providers::any::FromVerifyTable for $ty {
            fn kinds() -> Vec<&'static str> {
                vec![$kind]
            }

            fn from_verify_table(
                key: &str,
                _kind: &str,
                verify: &toml::Table,
                env: &std::collections::HashMap<String, String>,
            ) -> Result<Self, Vec<$crate::section::ConfigIssue>> {
                Self::from_config(key, verify, env)
            }
        }
    };
}
pub(crate) use one_kind;

macro_rules! providers {
    ($($variant:ident($ty:ty)),+ $(,)?) => {
        /// Every provider kind hookbridge knows, built from a source's `verify` table. Boxed: the
        /// kinds differ in size by kilobytes, and a source holds one.
        #[derive(Debug, Clone)]
        pub enum AnyProvider {
            $($variant(Box<$ty>)),+
        }

        /// The kinds accepted in `sources.*.provider`, in table order.
        pub fn kinds() -> impl Iterator<Item = &'static str> {
            [$(<$ty as FromVerifyTable>::kinds()),+].into_iter().flatten()
        }

        impl AnyProvider {
            /// Builds a provider from its config. An issue with an empty key is about the provider
            /// kind itself.
            pub fn from_config(
                key: &str,
                kind: &str,
                verify: &toml::Table,
                env: &HashMap<String, String>,
            ) -> Result<Self, Vec<ConfigIssue>> {
                $(
                    if <$ty as FromVerifyTable>::kinds().contains(&kind) {
                        let provider = <$ty>::from_verify_table(key, kind, verify, env)?;
                        return Ok(AnyProvider::$variant(Box::new(provider)));
                    }
                )+
                let known: Vec<&str> = kinds().collect();
                Err(vec![ConfigIssue::new(
                    "",
                    format!("unknown provider `{kind}`; expected one of: {}", known.join(", ")),
                )])
            }
        }

        impl Provider for AnyProvider {
            fn kind(&self) -> &'static str {
                match self { $(AnyProvider::$variant(p) => p.kind()),+ }
            }

            async fn verify<'a>(
                &self,
                request: &'a WebhookRequest<'a>,
            ) -> Result<Verified<'a>, VerifyError> {
                match self { $(AnyProvider::$variant(p) => p.verify(request).await),+ }
            }

            async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
                match self { $(AnyProvider::$variant(p) => p.map(source, verified).await),+ }
            }

            fn default_dedup_window(&self) -> Duration {
                match self { $(AnyProvider::$variant(p) => p.default_dedup_window()),+ }
            }

            fn never_resends(&self) -> bool {
                match self { $(AnyProvider::$variant(p) => p.never_resends()),+ }
            }

            fn authenticates(&self) -> bool {
                match self { $(AnyProvider::$variant(p) => p.authenticates()),+ }
            }

            fn supports_reconcile(&self) -> bool {
                match self { $(AnyProvider::$variant(p) => p.supports_reconcile()),+ }
            }

            fn dead_letter_headers(&self) -> &'static [&'static str] {
                match self { $(AnyProvider::$variant(p) => p.dead_letter_headers()),+ }
            }

            fn certificate_counts(&self) -> Option<(u64, u64)> {
                match self { $(AnyProvider::$variant(p) => p.certificate_counts()),+ }
            }

            fn sample_webhook(&self, request: &SampleRequest<'_>) -> Option<SampleWebhook> {
                match self { $(AnyProvider::$variant(p) => p.sample_webhook(request)),+ }
            }

            fn reply_style(&self) -> ReplyStyle {
                match self { $(AnyProvider::$variant(p) => p.reply_style()),+ }
            }

            fn accepts_method(&self, method: &str) -> bool {
                match self { $(AnyProvider::$variant(p) => p.accepts_method(method)),+ }
            }

            fn redact_for_dead_letter(&self, body: &Bytes) -> Bytes {
                match self { $(AnyProvider::$variant(p) => p.redact_for_dead_letter(body)),+ }
            }

            fn redrive_facts(&self, body: &Bytes) -> Facts {
                match self { $(AnyProvider::$variant(p) => p.redrive_facts(body)),+ }
            }
        }
    };
}

providers! {
    Cronofy(cronofy::Cronofy),
    TimeTap(timetap::TimeTap),
    ServiceOptimizer(service_optimizer::ServiceOptimizer),
    Docplanner(docplanner::Docplanner),
    SalesKing(salesking::SalesKing),
    Generic(generic::Generic),
}
