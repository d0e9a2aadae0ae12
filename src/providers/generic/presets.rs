//! Presets: a provider that signs with one of the generic schemes is a table of defaults for
//! `[sources.NAME.verify]`, written exactly as a user would write it. `provider = "github"` is
//! `provider = "generic"` with the GitHub values filled in, and any key the source sets wins.
//!
//! Keeping presets as config text (not Rust values) means a preset can say nothing a user cannot,
//! every preset goes through the same parsing and checks as a hand-written source, and adding a
//! provider is adding a row below.

/// Each preset: its provider kind and its defaults.
const PRESETS: &[(&str, &str)] = &[
    ("github", GITHUB),
    ("stripe", STRIPE),
    ("standard_webhooks", STANDARD_WEBHOOKS),
];

// https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
const GITHUB: &str = r#"scheme = "hmac"
header = "X-Hub-Signature-256"
algorithm = "sha256"
encoding = "hex"
prefix = "sha256="
message = "{body}"
type_header = "X-GitHub-Event"
id_header = "X-GitHub-Delivery"
# https://docs.github.com/webhooks/webhook-events-and-payloads
type_names = ["branch_protection_configuration", "branch_protection_rule", "check_run",
  "check_suite", "code_scanning_alert", "commit_comment", "create", "custom_property",
  "custom_property_values", "delete", "dependabot_alert", "deploy_key", "deployment",
  "deployment_protection_rule", "deployment_review", "deployment_status", "discussion",
  "discussion_comment", "fork", "github_app_authorization", "gollum", "installation",
  "installation_repositories", "installation_target", "issue_comment", "issues", "label",
  "marketplace_purchase", "member", "membership", "merge_group", "meta", "milestone",
  "org_block", "organization", "package", "page_build", "personal_access_token_request", "ping",
  "project", "project_card", "project_column", "projects_v2", "projects_v2_item",
  "projects_v2_status_update", "public", "pull_request", "pull_request_review",
  "pull_request_review_comment", "pull_request_review_thread", "push", "registry_package",
  "release", "repository", "repository_advisory", "repository_dispatch", "repository_import",
  "repository_ruleset", "repository_vulnerability_alert", "secret_scanning_alert",
  "secret_scanning_alert_location", "secret_scanning_scan", "security_advisory",
  "security_and_analysis", "sponsorship", "star", "status", "sub_issues", "team", "team_add",
  "watch", "workflow_dispatch", "workflow_job", "workflow_run"]
"#;

// https://docs.stripe.com/webhooks#verify-manually
const STRIPE: &str = r#"scheme = "hmac"
header = "Stripe-Signature"
algorithm = "sha256"
encoding = "hex"
signature_format = "kv"
kv_timestamp_key = "t"
kv_signature_key = "v1"
message = "{timestamp}.{body}"
tolerance_secs = 300
type_pointer = "/type"
id_pointer = "/id"
occurred_at_pointer = "/created"
"#;

// https://www.standardwebhooks.com/ (spec: "Verifying webhook authenticity")
const STANDARD_WEBHOOKS: &str = r#"scheme = "hmac"
header = "webhook-signature"
algorithm = "sha256"
encoding = "base64"
prefix = "v1,"
separator = " "
message = "{id}.{timestamp}.{body}"
id_header = "webhook-id"
timestamp_header = "webhook-timestamp"
tolerance_secs = 300
secret_prefix = "whsec_"
secret_encoding = "base64"
type_pointer = "/type"
"#;

/// The provider kind events carry: the preset's own name, `generic` for anything else.
/// The preset kinds, in table order.
pub(super) fn kinds() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(kind, _)| *kind)
}

pub(super) fn kind_name(kind: &str) -> &'static str {
    PRESETS
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or("generic", |(name, _)| name)
}

/// `verify` over the preset's defaults: a key the source sets replaces the preset's value whole
/// (a table or list is not merged into), so a source can always state exactly what it wants.
pub(super) fn with_defaults(kind: &str, verify: &toml::Table) -> toml::Table {
    let text = PRESETS
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or("", |(_, text)| text);
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
        for (name, text) in PRESETS {
            let table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(table["scheme"].as_str(), Some("hmac"), "{name}");
            assert_eq!(kind_name(name), *name);
        }
        assert_eq!(kind_name("generic"), "generic");
        assert!(with_defaults("generic", &toml::Table::new()).is_empty());
    }
}
