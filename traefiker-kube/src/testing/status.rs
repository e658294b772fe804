//! The API server's failure answers: a `Status` object with the HTTP code, a machine-readable
//! `reason` and `details`, worded as apiserver words them (clients such as kube-rs, and
//! traefiker's classification, read `code` and `reason`; people read `message`).

use serde_json::{json, Value};

use super::store::Kind;

/// A failed request, as the fake answers it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Value,
}

impl ApiError {
    /// The `Status` object of the answer body.
    pub(crate) fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }

    /// 404 `pods "x" not found`.
    pub(crate) fn not_found(kind: Kind, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", kind.plural()),
            details: details(kind, name),
        }
    }

    /// 404 for a namespace that does not exist (creating into it).
    pub(crate) fn namespace_not_found(namespace: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("namespaces \"{namespace}\" not found"),
            details: json!({"name": namespace, "kind": "namespaces"}),
        }
    }

    /// 409 `pods "x" already exists`.
    pub(crate) fn already_exists(kind: Kind, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", kind.plural()),
            details: details(kind, name),
        }
    }

    /// 409 for a write carrying a stale `metadata.resourceVersion`.
    pub(crate) fn modified(kind: Kind, name: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.plural_with_group()
            ),
            details: details(kind, name),
        }
    }

    /// 409 for a delete whose preconditions do not hold.
    pub(crate) fn precondition_failed(kind: Kind, name: &str, what: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what}",
                kind.plural_with_group()
            ),
            details: details(kind, name),
        }
    }

    /// 422 `Pod "x" is invalid: <field>: <why>`.
    pub(crate) fn invalid(kind: Kind, name: &str, field: &str, why: &str) -> Self {
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {field}: {why}", kind.kind()),
            details: json!({
                "name": name,
                "group": kind.group(),
                "kind": kind.kind(),
                "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}],
            }),
        }
    }

    /// 400 for a malformed request.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: Value::Null,
        }
    }

    /// 410 for a `continue` token the server no longer holds.
    pub(crate) fn expired() -> Self {
        Self {
            code: 410,
            reason: "Expired",
            message: "The provided continue parameter is too old to display a consistent list \
                      result. You can start a new list without the continue parameter."
                .into(),
            details: Value::Null,
        }
    }

    /// 403 as RBAC words it: `pods "x" is forbidden: User "…" cannot patch resource "pods"
    /// in API group "" in the namespace "ns"`.
    pub(crate) fn forbidden(
        user: &str,
        verb: &str,
        kind: Kind,
        namespace: &str,
        name: Option<&str>,
    ) -> Self {
        let subject = match name {
            Some(n) => format!("{} \"{n}\"", kind.plural_with_group()),
            None => kind.plural_with_group(),
        };
        Self {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{}\" in API \
                 group \"{}\" in the namespace \"{namespace}\"",
                kind.plural(),
                kind.group()
            ),
            details: json!({"name": name.unwrap_or_default(), "group": kind.group(), "kind": kind.plural()}),
        }
    }

    /// 415 for a patch type the fake does not apply.
    pub(crate) fn unsupported_media_type(content_type: &str) -> Self {
        Self {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the fake applies application/merge-patch+json only, not {content_type:?}"
            ),
            details: Value::Null,
        }
    }

    /// 404 for a path the fake does not serve.
    pub(crate) fn no_route(path: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({path})"),
            details: Value::Null,
        }
    }

    /// 405 for a method the path does not take.
    pub(crate) fn method_not_allowed(method: &str, path: &str) -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            ),
            details: Value::Null,
        }
    }
}

fn details(kind: Kind, name: &str) -> Value {
    json!({"name": name, "group": kind.group(), "kind": kind.plural()})
}
