//! Presets that sign the body alone (an HMAC over `{body}`).

// Body-only HMACs. An HMAC over the body signs no header: ids from headers are delivery ids
// (the dedup key is then the body's hash), and types from headers are fenced by `type_names`.

pub(super) const AIRTABLE: &str = r#"scheme = "hmac"
header = "X-Airtable-Content-MAC"
prefix = "hmac-sha256="
# macSecretBase64, as the create-webhook call returns it.
secret_encoding = "base64"
event_type = "airtable.webhook.ping"
subject_pointer = "/webhook/id"
occurred_at_pointer = "/timestamp"
# Airtable wants 200 or 204 with an empty body.
reply = "empty"
"#;

pub(super) const ASANA: &str = r#"scheme = "hmac"
header = "X-Hook-Signature"
# Events come batched in `events`; a heartbeat has none.
event_type = "asana.events"
handshake = "asana"
"#;

pub(super) const BITBUCKET: &str = r#"scheme = "hmac"
header = "X-Hub-Signature"
prefix = "sha256="
type_header = "X-Event-Key"
id_header = "X-Request-UUID"
subject_pointer = "/repository/full_name"
type_names = ["repo:push", "repo:fork", "repo:updated", "repo:created", "repo:deleted", "repo:imported",
  "repo:transfer", "repo:commit_comment_created", "repo:commit_status_created",
  "repo:commit_status_updated", "issue:created", "issue:updated", "issue:comment_created",
  "pullrequest:created", "pullrequest:updated", "pullrequest:approved", "pullrequest:unapproved",
  "pullrequest:changes_request_created", "pullrequest:changes_request_removed",
  "pullrequest:fulfilled", "pullrequest:rejected", "pullrequest:comment_created",
  "pullrequest:comment_updated", "pullrequest:comment_deleted", "pullrequest:comment_resolved",
  "pullrequest:comment_reopened", "project:updated"]
"#;

pub(super) const CIRCLECI: &str = r#"scheme = "hmac"
header = "Circleci-Signature"
prefix = "v1="
type_pointer = "/type"
id_pointer = "/id"
subject_pointer = "/project/slug"
occurred_at_pointer = "/happened_at"
"#;

pub(super) const DOCUSIGN: &str = r#"scheme = "hmac"
# One header per active Connect key, numbered in key order.
header = ["X-DocuSign-Signature-1", "X-DocuSign-Signature-2", "X-DocuSign-Signature-3",
  "X-DocuSign-Signature-4", "X-DocuSign-Signature-5"]
encoding = "base64"
type_pointer = "/event"
subject_pointer = "/data/envelopeId"
occurred_at_pointer = "/generatedDateTime"
"#;

pub(super) const DROPBOX: &str = r#"scheme = "hmac"
header = "X-Dropbox-Signature"
# A notification only says which accounts changed.
event_type = "dropbox.list_folder"
handshake = "dropbox"
"#;

pub(super) const GITEA: &str = r#"scheme = "hmac"
header = "X-Gitea-Signature"
type_header = "X-Gitea-Event"
id_header = "X-Gitea-Delivery"
subject_pointer = "/repository/full_name"
type_names = ["create", "delete", "fork", "push", "issues", "issue_comment", "pull_request",
  "pull_request_approved", "pull_request_rejected", "pull_request_comment", "wiki", "repository",
  "release", "package", "status", "workflow_run", "workflow_job"]
"#;

pub(super) const INTERCOM: &str = r#"scheme = "hmac"
header = "X-Hub-Signature"
algorithm = "sha1"
prefix = "sha1="
type_pointer = "/topic"
id_pointer = "/id"
subject_pointer = "/data/item/id"
occurred_at_pointer = "/created_at"
"#;

pub(super) const JIRA: &str = r#"scheme = "hmac"
header = "X-Hub-Signature"
prefix = "sha256="
id_header = "X-Atlassian-Webhook-Identifier"
type_pointer = "/webhookEvent"
subject_pointer = "/issue/key"
occurred_at_pointer = "/timestamp"
occurred_at_format = "unix_ms"
"#;

pub(super) const LEMON_SQUEEZY: &str = r#"scheme = "hmac"
header = "X-Signature"
type_pointer = "/meta/event_name"
subject_pointer = "/data/id"
"#;

pub(super) const LINEAR: &str = r#"scheme = "hmac"
header = "Linear-Signature"
id_header = "Linear-Delivery"
type_pointer = "/type"
subject_pointer = "/data/id"
occurred_at_pointer = "/createdAt"
# The replay timestamp is inside the signed body, in milliseconds; Linear's SDK allows a minute.
timestamp_pointer = "/webhookTimestamp"
timestamp_format = "unix_ms"
tolerance_secs = 60
"#;

pub(super) const MOLLIE: &str = r#"scheme = "hmac"
header = "X-Mollie-Signature"
prefix = "sha256="
type_pointer = "/type"
id_pointer = "/id"
subject_pointer = "/entityId"
occurred_at_pointer = "/createdAt"
"#;

pub(super) const PAGERDUTY: &str = r#"scheme = "hmac"
header = "X-PagerDuty-Signature"
prefix = "v1="
id_header = "X-Webhook-Id"
type_pointer = "/event/event_type"
id_pointer = "/event/id"
subject_pointer = "/event/data/id"
occurred_at_pointer = "/event/occurred_at"
"#;

pub(super) const RAZORPAY: &str = r#"scheme = "hmac"
header = "X-Razorpay-Signature"
id_header = "x-razorpay-event-id"
type_pointer = "/event"
occurred_at_pointer = "/created_at"
"#;

pub(super) const SEGMENT: &str = r#"scheme = "hmac"
header = "X-Signature"
algorithm = "sha1"
type_pointer = "/type"
id_pointer = "/messageId"
subject_pointer = "/userId"
occurred_at_pointer = "/timestamp"
"#;

pub(super) const SENTRY: &str = r#"scheme = "hmac"
header = "Sentry-Hook-Signature"
type_header = "Sentry-Hook-Resource"
id_header = "Request-ID"
subject_pointer = "/installation/uuid"
type_names = ["installation", "event_alert", "issue", "metric_alert", "error", "comment", "seer",
  "preprod_artifact"]
"#;

pub(super) const SHOPIFY: &str = r#"scheme = "hmac"
header = "X-Shopify-Hmac-Sha256"
encoding = "base64"
type_header = "X-Shopify-Topic"
id_header = "X-Shopify-Webhook-Id"
subject_pointer = "/admin_graphql_api_id"
# https://shopify.dev/docs/api/admin-graphql/latest/enums/WebhookSubscriptionTopic, as topics.
type_names = ["app/uninstalled", "app_purchases_one_time/update",
  "app_subscriptions/approaching_capped_amount", "app_subscriptions/update",
  "bulk_operations/finish", "carts/create", "carts/update", "channels/delete",
  "checkouts/create", "checkouts/delete", "checkouts/update", "collection_listings/add",
  "collection_listings/remove", "collection_listings/update", "collection_publications/create",
  "collection_publications/delete", "collection_publications/update", "collections/create",
  "collections/delete", "collections/update", "companies/create", "companies/delete",
  "companies/update", "company_contact_roles/assign", "company_contact_roles/revoke",
  "company_contacts/create", "company_contacts/delete", "company_contacts/update",
  "company_locations/create", "company_locations/delete", "company_locations/update",
  "customer/tags_added", "customer/tags_removed", "customer_account_settings/update",
  "customer_groups/create", "customer_groups/delete", "customer_groups/update",
  "customer_payment_methods/create", "customer_payment_methods/revoke",
  "customer_payment_methods/update", "customers/create", "customers/data_request",
  "customers/delete", "customers/disable", "customers/enable", "customers/merge",
  "customers/redact", "customers/update", "customers_email_marketing_consent/update",
  "customers_marketing_consent/update", "discounts/create", "discounts/delete",
  "discounts/redeemcode_added", "discounts/redeemcode_removed", "discounts/update",
  "disputes/create", "disputes/update", "domains/create", "domains/destroy", "domains/update",
  "draft_orders/create", "draft_orders/delete", "draft_orders/update",
  "fulfillment_events/create", "fulfillment_events/delete",
  "fulfillment_orders/cancellation_request_accepted",
  "fulfillment_orders/cancellation_request_rejected",
  "fulfillment_orders/cancellation_request_submitted", "fulfillment_orders/cancelled",
  "fulfillment_orders/fulfillment_request_accepted",
  "fulfillment_orders/fulfillment_request_rejected",
  "fulfillment_orders/fulfillment_request_submitted",
  "fulfillment_orders/fulfillment_service_failed_to_complete",
  "fulfillment_orders/hold_released",
  "fulfillment_orders/line_items_prepared_for_local_delivery",
  "fulfillment_orders/line_items_prepared_for_pickup", "fulfillment_orders/merged",
  "fulfillment_orders/moved", "fulfillment_orders/order_routing_complete",
  "fulfillment_orders/placed_on_hold", "fulfillment_orders/rescheduled",
  "fulfillment_orders/scheduled_fulfillment_order_ready", "fulfillment_orders/split",
  "fulfillments/create", "fulfillments/update", "inventory_items/create",
  "inventory_items/delete", "inventory_items/update", "inventory_levels/connect",
  "inventory_levels/disconnect", "inventory_levels/update", "locales/create", "locales/update",
  "locations/activate", "locations/create", "locations/deactivate", "locations/delete",
  "locations/update", "markets/create", "markets/delete", "markets/update", "metaobjects/create",
  "metaobjects/delete", "metaobjects/update", "order_transactions/create", "orders/cancelled",
  "orders/create", "orders/delete", "orders/edited", "orders/fulfilled", "orders/paid",
  "orders/partially_fulfilled", "orders/risk_assessment_changed",
  "orders/shopify_protect_eligibility_changed", "orders/updated", "payment_schedules/due",
  "payment_terms/create", "payment_terms/delete", "payment_terms/update", "product_feeds/create",
  "product_feeds/update", "product_listings/add", "product_listings/remove",
  "product_listings/update", "product_publications/create", "product_publications/delete",
  "product_publications/update", "products/create", "products/delete", "products/update",
  "profiles/create", "profiles/delete", "profiles/update", "refunds/create", "returns/approve",
  "returns/cancel", "returns/close", "returns/decline", "returns/reopen", "returns/request",
  "returns/update", "reverse_deliveries/attach_deliverable",
  "reverse_fulfillment_orders/dispose", "scheduled_product_listings/add",
  "scheduled_product_listings/remove", "scheduled_product_listings/update", "segments/create",
  "segments/delete", "segments/update", "selling_plan_groups/create",
  "selling_plan_groups/delete", "selling_plan_groups/update", "shop/redact", "shop/update",
  "subscription_billing_attempts/challenged", "subscription_billing_attempts/failure",
  "subscription_billing_attempts/success", "subscription_billing_cycle_edits/create",
  "subscription_billing_cycle_edits/delete", "subscription_billing_cycle_edits/update",
  "subscription_billing_cycles/skip", "subscription_billing_cycles/unskip",
  "subscription_contracts/activate", "subscription_contracts/cancel",
  "subscription_contracts/create", "subscription_contracts/expire",
  "subscription_contracts/fail", "subscription_contracts/pause", "subscription_contracts/update",
  "tender_transactions/create", "themes/create", "themes/delete", "themes/publish",
  "themes/update", "variants/in_stock", "variants/out_of_stock", "app/scopes_update"]
"#;

pub(super) const TYPEFORM: &str = r#"scheme = "hmac"
header = "Typeform-Signature"
encoding = "base64"
prefix = "sha256="
type_pointer = "/event_type"
id_pointer = "/event_id"
subject_pointer = "/form_response/form_id"
occurred_at_pointer = "/form_response/submitted_at"
"#;

pub(super) const VERCEL: &str = r#"scheme = "hmac"
header = "x-vercel-signature"
algorithm = "sha1"
type_pointer = "/type"
id_pointer = "/id"
occurred_at_pointer = "/createdAt"
occurred_at_format = "unix_ms"
"#;

pub(super) const WOOCOMMERCE: &str = r#"scheme = "hmac"
header = "X-WC-Webhook-Signature"
encoding = "base64"
type_header = "X-WC-Webhook-Topic"
id_header = "X-WC-Webhook-Delivery-ID"
subject_pointer = "/id"
type_names = ["coupon.created", "coupon.updated", "coupon.deleted", "coupon.restored", "customer.created",
  "customer.updated", "customer.deleted", "order.created", "order.updated", "order.deleted",
  "order.restored", "product.created", "product.updated", "product.deleted", "product.restored"]
"#;

pub(super) const XERO: &str = r#"scheme = "hmac"
header = "x-xero-signature"
encoding = "base64"
# Batched in `events`; each names its category and type.
type_pointer = ["/events/0/eventCategory", "/events/0/eventType"]
subject_pointer = "/events/0/resourceId"
handshake = "xero"
# Xero checks that every answer has an empty body.
reply = "empty"
"#;

// https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
pub(super) const GITHUB: &str = r#"scheme = "hmac"
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
pub(super) const STRIPE: &str = r#"scheme = "hmac"
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
pub(super) const STANDARD_WEBHOOKS: &str = r#"scheme = "hmac"
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
