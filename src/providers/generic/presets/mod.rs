//! Presets: a provider that signs with one of the generic schemes is a table of defaults for
//! `[sources.NAME.verify]`, written exactly as a user would write it. `provider = "github"` is
//! `provider = "generic"` with the GitHub values filled in, and any key the source sets wins.
//!
//! Keeping presets as config text (not Rust values) means a preset can say nothing a user cannot,
//! every preset goes through the same parsing and checks as a hand-written source, and adding a
//! provider is adding a row below. Each preset is proved by a vector in
//! `tests/fixtures/presets/` (the provider's published example where there is one, otherwise one
//! computed by an independent implementation), and `hookbridge presets` and the README's table
//! are written from this table (`catalogue.rs`). The defaults are in `body.rs` (the body alone
//! signed), `message.rs` (more than the body) and `other.rs` (public keys, credentials).

/// One preset.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The provider kind: `provider = "<name>"`.
    pub name: &'static str,
    pub title: &'static str,
    /// The provider's page on how it signs.
    pub docs: &'static str,
    /// The `verify` defaults, as TOML.
    pub defaults: &'static str,
}

mod body;
mod message;
mod other;

use body::*;
use message::*;
use other::*;

/// Every preset, in the order `hookbridge presets` lists them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "github",
        title: "GitHub",
        docs: "https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries",
        defaults: GITHUB,
    },
    Preset {
        name: "stripe",
        title: "Stripe",
        docs: "https://docs.stripe.com/webhooks#verify-manually",
        defaults: STRIPE,
    },
    Preset {
        name: "standard_webhooks",
        title: "Standard Webhooks",
        docs: "https://www.standardwebhooks.com/",
        defaults: STANDARD_WEBHOOKS,
    },
    Preset {
        name: "airtable",
        title: "Airtable",
        docs: "https://airtable.com/developers/web/api/webhooks-overview",
        defaults: AIRTABLE,
    },
    Preset {
        name: "asana",
        title: "Asana",
        docs: "https://developers.asana.com/docs/webhooks-guide",
        defaults: ASANA,
    },
    Preset {
        name: "bitbucket",
        title: "Bitbucket Cloud",
        docs: "https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/",
        defaults: BITBUCKET,
    },
    Preset {
        name: "box",
        title: "Box",
        docs: "https://developer.box.com/guides/webhooks/v2/signatures-v2/",
        defaults: BOX,
    },
    Preset {
        name: "calendly",
        title: "Calendly",
        docs: "https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures",
        defaults: CALENDLY,
    },
    Preset {
        name: "circleci",
        title: "CircleCI",
        docs: "https://circleci.com/docs/guides/integration/outbound-webhooks/",
        defaults: CIRCLECI,
    },
    Preset {
        name: "clerk",
        title: "Clerk",
        docs: "https://clerk.com/docs/guides/development/webhooks/overview",
        defaults: CLERK,
    },
    Preset {
        name: "discord",
        title: "Discord interactions",
        docs: "https://discord.com/developers/docs/interactions/receiving-and-responding#security-and-authorization",
        defaults: DISCORD,
    },
    Preset {
        name: "docusign",
        title: "DocuSign Connect",
        docs: "https://developers.docusign.com/platform/webhooks/connect/hmac/",
        defaults: DOCUSIGN,
    },
    Preset {
        name: "dropbox",
        title: "Dropbox",
        docs: "https://www.dropbox.com/developers/reference/webhooks",
        defaults: DROPBOX,
    },
    Preset {
        name: "gitea",
        title: "Gitea",
        docs: "https://docs.gitea.com/usage/webhooks",
        defaults: GITEA,
    },
    Preset {
        name: "gitlab",
        title: "GitLab",
        docs: "https://docs.gitlab.com/user/project/integrations/webhooks/#validate-payloads-by-using-a-secret-token",
        defaults: GITLAB,
    },
    Preset {
        name: "hubspot",
        title: "HubSpot (v3 signature)",
        docs: "https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests#validate-the-v3-request-signature",
        defaults: HUBSPOT,
    },
    Preset {
        name: "intercom",
        title: "Intercom",
        docs: "https://developers.intercom.com/docs/references/webhooks/webhook-models#signed-notifications",
        defaults: INTERCOM,
    },
    Preset {
        name: "jira",
        title: "Jira Cloud (admin webhooks)",
        docs: "https://developer.atlassian.com/cloud/jira/platform/webhooks/",
        defaults: JIRA,
    },
    Preset {
        name: "lemon_squeezy",
        title: "Lemon Squeezy",
        docs: "https://docs.lemonsqueezy.com/help/webhooks/signing-requests",
        defaults: LEMON_SQUEEZY,
    },
    Preset {
        name: "linear",
        title: "Linear",
        docs: "https://linear.app/developers/webhooks#securing-webhooks",
        defaults: LINEAR,
    },
    Preset {
        name: "mailgun",
        title: "Mailgun",
        docs: "https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks",
        defaults: MAILGUN,
    },
    Preset {
        name: "microsoft_graph",
        title: "Microsoft Graph change notifications",
        docs: "https://learn.microsoft.com/graph/change-notifications-delivery-webhooks",
        defaults: MICROSOFT_GRAPH,
    },
    Preset {
        name: "mollie",
        title: "Mollie (signed webhooks)",
        docs: "https://docs.mollie.com/reference/webhooks-new",
        defaults: MOLLIE,
    },
    Preset {
        name: "okta",
        title: "Okta event hooks",
        docs: "https://developer.okta.com/docs/concepts/event-hooks/",
        defaults: OKTA,
    },
    Preset {
        name: "paddle",
        title: "Paddle Billing",
        docs: "https://developer.paddle.com/webhooks/signature-verification",
        defaults: PADDLE,
    },
    Preset {
        name: "pagerduty",
        title: "PagerDuty (v3 webhooks)",
        docs: "https://developer.pagerduty.com/docs/webhooks/v3-overview/#verifying-signatures",
        defaults: PAGERDUTY,
    },
    Preset {
        name: "pipedrive",
        title: "Pipedrive",
        docs: "https://pipedrive.readme.io/docs/guide-for-webhooks-v2",
        defaults: PIPEDRIVE,
    },
    Preset {
        name: "postmark",
        title: "Postmark",
        docs: "https://postmarkapp.com/developer/webhooks/webhooks-overview",
        defaults: POSTMARK,
    },
    Preset {
        name: "razorpay",
        title: "Razorpay",
        docs: "https://razorpay.com/docs/webhooks/validate-test/",
        defaults: RAZORPAY,
    },
    Preset {
        name: "resend",
        title: "Resend",
        docs: "https://resend.com/docs/webhooks/verify-webhooks-requests",
        defaults: RESEND,
    },
    Preset {
        name: "segment",
        title: "Segment (webhooks destination)",
        docs: "https://www.twilio.com/docs/segment/connections/destinations/catalog/webhooks",
        defaults: SEGMENT,
    },
    Preset {
        name: "sendgrid",
        title: "SendGrid event webhook",
        docs: "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features",
        defaults: SENDGRID,
    },
    Preset {
        name: "sentry",
        title: "Sentry integration platform",
        docs: "https://docs.sentry.io/organization/integrations/integration-platform/webhooks/",
        defaults: SENTRY,
    },
    Preset {
        name: "shopify",
        title: "Shopify",
        docs: "https://shopify.dev/docs/apps/build/webhooks/verify-deliveries",
        defaults: SHOPIFY,
    },
    Preset {
        name: "slack",
        title: "Slack Events API",
        docs: "https://api.slack.com/authentication/verifying-requests-from-slack",
        defaults: SLACK,
    },
    Preset {
        name: "square",
        title: "Square",
        docs: "https://developer.squareup.com/docs/webhooks/step3validate",
        defaults: SQUARE,
    },
    Preset {
        name: "svix",
        title: "Svix",
        docs: "https://docs.svix.com/receiving/verifying-payloads/how-manual",
        defaults: SVIX,
    },
    Preset {
        name: "twilio",
        title: "Twilio (form webhooks)",
        docs: "https://www.twilio.com/docs/usage/webhooks/webhooks-security",
        defaults: TWILIO,
    },
    Preset {
        name: "twitch",
        title: "Twitch EventSub",
        docs: "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message",
        defaults: TWITCH,
    },
    Preset {
        name: "typeform",
        title: "Typeform",
        docs: "https://www.typeform.com/developers/webhooks/secure-your-webhooks/",
        defaults: TYPEFORM,
    },
    Preset {
        name: "vercel",
        title: "Vercel",
        docs: "https://vercel.com/docs/webhooks/webhooks-api#securing-webhooks",
        defaults: VERCEL,
    },
    Preset {
        name: "woocommerce",
        title: "WooCommerce",
        docs: "https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks",
        defaults: WOOCOMMERCE,
    },
    Preset {
        name: "xero",
        title: "Xero",
        docs: "https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/",
        defaults: XERO,
    },
    Preset {
        name: "zendesk",
        title: "Zendesk",
        docs: "https://developer.zendesk.com/documentation/webhooks/verifying/",
        defaults: ZENDESK,
    },
    Preset {
        name: "zoom",
        title: "Zoom",
        docs: "https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events",
        defaults: ZOOM,
    },
];

/// The preset kinds, in table order.
pub(super) fn kinds() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|p| p.name)
}

/// The provider kind events carry: the preset's own name, `generic` for anything else.
pub(super) fn kind_name(kind: &str) -> &'static str {
    PRESETS
        .iter()
        .find(|p| p.name == kind)
        .map_or("generic", |p| p.name)
}

/// `verify` over the preset's defaults: a key the source sets replaces the preset's value whole
/// (a table or list is not merged into), so a source can always state exactly what it wants.
pub(super) fn with_defaults(kind: &str, verify: &toml::Table) -> toml::Table {
    let text = PRESETS
        .iter()
        .find(|p| p.name == kind)
        .map_or("", |p| p.defaults);
    // The texts are constants checked by the test below; an empty table is `generic`.
    let mut table: toml::Table = text.parse().unwrap_or_default();
    for (k, v) in verify {
        table.insert(k.clone(), v.clone());
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typo in a preset would otherwise turn it silently into an empty one.
    #[test]
    fn every_preset_parses_and_names_its_scheme() {
        let mut names = std::collections::BTreeSet::new();
        for p in PRESETS {
            let table: toml::Table = p
                .defaults
                .parse()
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert!(table["scheme"].is_str(), "{}", p.name);
            assert!(p.docs.starts_with("https://"), "{}", p.name);
            assert_eq!(kind_name(p.name), p.name);
            assert!(names.insert(p.name), "{} twice", p.name);
        }
        assert!(
            PRESETS.len() >= 40,
            "the catalogue has {} presets",
            PRESETS.len()
        );
        assert_eq!(kind_name("generic"), "generic");
        assert!(with_defaults("generic", &toml::Table::new()).is_empty());
    }
}
