//! What traefiker may do in its namespace: the verbs it uses on each resource, in one table
//! that the shipped Role (`deploy/kubernetes/rbac.yaml`) must match exactly (a test checks
//! both the Role and the calls the code makes against it), and the start-up check that asks
//! the API server, with one `SelfSubjectAccessReview` per verb, which of them are missing.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use traefiker_core::ManagerError;

use crate::error::{classify, timed_out, BACKEND, ROLE_FILE};

/// One resource and the verbs traefiker uses on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The resource, as RBAC names it.
    pub resource: &'static str,
    /// The verbs, sorted.
    pub verbs: &'static [&'static str],
}

/// Every verb traefiker uses, on what: the least a Role may grant. Pods are the narratives
/// (and, listed, traefiker's own replicas); leases are the per-user claims.
pub const REQUIRED: &[Grant] = &[
    Grant {
        group: "",
        resource: "pods",
        verbs: &["create", "delete", "get", "list", "patch"],
    },
    Grant {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create", "delete", "get", "list"],
    },
];

/// Asks the API server whether this client may do every [`REQUIRED`] verb in `namespace`;
/// the error lists each one missing, as `verb resource`, and where the Role is.
pub(crate) async fn check(
    client: &kube::Client,
    namespace: &str,
    limit: std::time::Duration,
) -> Result<(), ManagerError> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for grant in REQUIRED {
        for verb in grant.verbs {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(namespace.to_owned()),
                        verb: Some((*verb).to_owned()),
                        group: Some(grant.group.to_owned()),
                        resource: Some(grant.resource.to_owned()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let subject = format!("{verb} {}", grant.resource);
            let answer =
                tokio::time::timeout(limit, reviews.create(&PostParams::default(), &review))
                    .await
                    .map_err(|_| timed_out("access review", &subject, limit))?
                    .map_err(|e| classify("access review", &subject, e))?;
            if !answer.status.is_some_and(|s| s.allowed) {
                missing.push(match grant.group {
                    "" => subject,
                    g => format!("{verb} {}.{g}", grant.resource),
                });
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ManagerError::Rejected {
        backend: BACKEND.to_owned(),
        detail: format!(
            "traefiker's service account may not {} in namespace {namespace}; grant these \
             verbs with a Role bound to it (as {ROLE_FILE} does)",
            missing.join(", ")
        ),
    })
}
