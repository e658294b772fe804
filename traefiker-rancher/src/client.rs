//! The HTTP layer: basic auth, deadlines, bounded retries of reads, Rancher's error bodies and
//! pagination. Knows nothing about narratives.
//!
//! Every call takes the [`Deadline`] of the operation it belongs to: each request may take only
//! what is left of it, and a read is retried only while a retry can still start before it. So
//! an operation answers within its deadline whatever Rancher does, retries included (SPEC §6a).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use crate::config::{Credentials, RetryPolicy, Timeouts};
use crate::error::{RancherError, SetupError, TransportKind};
use crate::wire::{ApiError, Collection};

/// Most pages one listing follows: a server whose `next` never ends must not hang us.
const MAX_PAGES: usize = 10_000;

/// When one operation (a find, an assignment's read and rename, a whole listing...) must have
/// its answer. Copied into every request of the operation, so they share one budget.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub(crate) fn after(budget: Duration) -> Self {
        let now = Instant::now();
        Self {
            // A budget too large to add to the clock (a configured 10^18 s) is, in effect,
            // none; a century stands in for it instead of a panic.
            at: now
                .checked_add(budget)
                .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600)),
            budget,
        }
    }

    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// An HTTP client for one Rancher, with its key pair.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    http: reqwest::Client,
    credentials: Option<Credentials>,
    retry: RetryPolicy,
}

/// `url` as it may be shown: any user and password in it removed.
pub(crate) fn shown(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut clean = url.clone();
    // Only fails for URLs that cannot have credentials, which then have none to hide.
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.to_string()
}

/// Parses a configured URL, naming the setting when it is malformed.
pub(crate) fn parse_setting(setting: &'static str, value: &str) -> Result<Url, SetupError> {
    let mut url = Url::parse(value.trim()).map_err(|e| SetupError::Config {
        setting,
        reason: format!("not a URL ({e})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SetupError::Config {
            setting,
            reason: format!("must be an http or https URL, not {}", url.scheme()),
        });
    }
    // Deployments configure `.../v2-beta` and `.../v2-beta/` alike; call one spelling.
    if url.path().len() > 1 && url.path().ends_with('/') {
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
    }
    Ok(url)
}

/// `base` with `segments` appended as path segments, whether or not `base` ends in `/`.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl Client {
    pub(crate) fn new(
        credentials: Option<Credentials>,
        timeouts: Timeouts,
        retry: RetryPolicy,
        ca_bundle_pem: Option<&[u8]>,
    ) -> Result<Self, SetupError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .user_agent(concat!("traefiker-rancher/", env!("CARGO_PKG_VERSION")));
        // Besides the system's and the bundled roots: an institution's own CA.
        if let Some(pem) = ca_bundle_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| SetupError::Config {
                    setting: "ca_bundle",
                    reason: format!("not a PEM bundle: {e}"),
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| SetupError::Config {
            setting: "rancher_url",
            reason: format!("cannot build an HTTP client: {e}"),
        })?;
        Ok(Self {
            http,
            credentials,
            retry,
        })
    }

    /// One request, no retry, within what is left of `deadline`. Returns the body of a 2xx
    /// answer.
    async fn execute(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        authenticate: bool,
        accept: &'static str,
        deadline: Deadline,
    ) -> Result<(u16, Vec<u8>), RancherError> {
        let name = method_name(&method);
        let timed_out = |detail: String| RancherError::Transport {
            method: name,
            url: shown(url),
            kind: TransportKind::Timeout,
            detail: format!(
                "{detail} (the operation's deadline is {:?})",
                deadline.budget
            ),
        };
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            return Err(timed_out("not sent: no time left".into()));
        }
        let mut request = self
            .http
            .request(method, url.clone())
            // Overrides the client's own timeout: the request gets only what the operation
            // has left, so a hung Rancher cannot stretch an operation past its deadline.
            .timeout(remaining)
            .header(ACCEPT, HeaderValue::from_static(accept));
        if authenticate {
            if let Some(c) = &self.credentials {
                request = request.basic_auth(c.user(), Some(c.password()));
            }
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(serde_json::to_vec(body).unwrap_or_default());
        }
        let transport = |e: reqwest::Error| {
            let kind = if e.is_timeout() {
                TransportKind::Timeout
            } else if e.is_connect() {
                TransportKind::Connect
            } else {
                TransportKind::Other
            };
            // Without the URL: reqwest's message would repeat it, credentials included.
            let detail = e.without_url().to_string();
            match kind {
                TransportKind::Timeout => timed_out(detail),
                kind => RancherError::Transport {
                    method: name,
                    url: shown(url),
                    kind,
                    detail,
                },
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?.to_vec();
        if (200..300).contains(&status) {
            return Ok((status, bytes));
        }
        let error: ApiError = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(RancherError::Status {
            method: name,
            url: shown(url),
            status,
            code: error.code,
            message: error.message,
            field_name: error.field_name,
        })
    }

    /// A GET, retried with exponential backoff and jitter while the failure is transient and
    /// the next attempt can still start before `deadline`.
    async fn get_bytes(
        &self,
        url: &Url,
        authenticate: bool,
        accept: &'static str,
        deadline: Deadline,
    ) -> Result<(u16, Vec<u8>), RancherError> {
        let attempt = || self.execute(Method::GET, url, None, authenticate, accept, deadline);
        attempt
            .retry(backoff(&self.retry))
            .sleep(tokio::time::sleep)
            .when(RancherError::is_transient)
            // A wait that would end past the deadline only delays the same answer: stop and
            // report the last failure now.
            .adjust(|_, wait| wait.filter(|w| *w < deadline.remaining()))
            .notify(|e, wait| {
                tracing::debug!(url = %shown(url), error = %e, ?wait, "retrying a Rancher read");
            })
            .await
    }

    /// GET `url` as JSON (retried).
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        url: &Url,
        deadline: Deadline,
    ) -> Result<T, RancherError> {
        let (status, bytes) = self
            .get_bytes(url, true, "application/json", deadline)
            .await?;
        parse("GET", url, status, &bytes)
    }

    /// GET `url` as JSON without credentials (rancher-metadata needs none, and the key must
    /// not travel to another host).
    pub(crate) async fn get_json_anonymous<T: DeserializeOwned>(
        &self,
        url: &Url,
        deadline: Deadline,
    ) -> Result<T, RancherError> {
        let (status, bytes) = self
            .get_bytes(url, false, "application/json", deadline)
            .await?;
        parse("GET", url, status, &bytes)
    }

    /// GET `url` as plain text without credentials, like [`Client::get_json_anonymous`].
    pub(crate) async fn get_text_anonymous(
        &self,
        url: &Url,
        deadline: Deadline,
    ) -> Result<String, RancherError> {
        let (status, bytes) = self.get_bytes(url, false, "text/plain", deadline).await?;
        String::from_utf8(bytes).map_err(|_| RancherError::Body {
            method: "GET",
            url: shown(url),
            status,
            detail: "not UTF-8 text".into(),
        })
    }

    /// Every item of the collection at `first`, following `pagination.next` to the end, all
    /// pages within one `deadline`.
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        first: Url,
        deadline: Deadline,
    ) -> Result<Vec<T>, RancherError> {
        self.list_map(first, deadline, Some).await
    }

    /// Like [`Client::list_all`], keeping of each item only what `keep` makes of it, page by
    /// page: a listing of 10,000 services never holds every parsed service at once.
    pub(crate) async fn list_map<T: DeserializeOwned, U>(
        &self,
        first: Url,
        deadline: Deadline,
        mut keep: impl FnMut(T) -> Option<U>,
    ) -> Result<Vec<U>, RancherError> {
        let mut items = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(RancherError::Invalid {
                    url: shown(&url),
                    detail: format!("more than {MAX_PAGES} pages: the pagination does not end"),
                });
            }
            let page: Collection<T> = self.get(&url, deadline).await?;
            items.extend(page.data.into_iter().filter_map(&mut keep));
            if let Some(link) = page.pagination.and_then(|p| p.next) {
                next = Some(self.follow(&url, &link)?);
            }
        }
        Ok(items)
    }

    /// Resolves a link Rancher gave in the answer to `from`. Links to another host are
    /// refused: following them would send the API key there.
    pub(crate) fn follow(&self, from: &Url, link: &str) -> Result<Url, RancherError> {
        let url = from.join(link).map_err(|e| RancherError::Invalid {
            url: shown(from),
            detail: format!("answer links to an unusable URL ({e})"),
        })?;
        if !same_origin(from, &url) {
            return Err(RancherError::Invalid {
                url: shown(from),
                detail: format!(
                    "answer links to another host ({}); the API key is not sent there: \
                     set rancher_url to the address Rancher calls itself",
                    shown(&url)
                ),
            });
        }
        Ok(url)
    }

    /// POST `body` as JSON to `url` (never retried: it may have been done).
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        url: &Url,
        body: &impl Serialize,
        deadline: Deadline,
    ) -> Result<T, RancherError> {
        self.write(Method::POST, url, body, deadline).await
    }

    /// PUT `body` as JSON to `url` (never retried).
    pub(crate) async fn put<T: DeserializeOwned>(
        &self,
        url: &Url,
        body: &impl Serialize,
        deadline: Deadline,
    ) -> Result<T, RancherError> {
        self.write(Method::PUT, url, body, deadline).await
    }

    /// DELETE `url` (never retried); the answer's body is not needed.
    pub(crate) async fn delete(&self, url: &Url, deadline: Deadline) -> Result<(), RancherError> {
        self.execute(
            Method::DELETE,
            url,
            None,
            true,
            "application/json",
            deadline,
        )
        .await
        .map(|_| ())
    }

    /// DELETE `url`, asked again while Rancher answers 409: the resource is busy in another
    /// process (a create still activating it) and nothing was done, so asking again is not a
    /// blind retry (rancher/gdapi-python retries on 409 the same way). Within `deadline`.
    pub(crate) async fn delete_when_idle(
        &self,
        url: &Url,
        deadline: Deadline,
    ) -> Result<(), RancherError> {
        (|| self.delete(url, deadline))
            .retry(backoff(&self.retry))
            .sleep(tokio::time::sleep)
            .when(|e| e.status() == Some(409))
            .adjust(|_, wait| wait.filter(|w| *w < deadline.remaining()))
            .await
    }

    async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        body: &impl Serialize,
        deadline: Deadline,
    ) -> Result<T, RancherError> {
        let name = method_name(&method);
        let body = serde_json::to_value(body).map_err(|e| RancherError::Invalid {
            url: shown(url),
            detail: format!("cannot encode the request: {e}"),
        })?;
        let (status, bytes) = self
            .execute(method, url, Some(&body), true, "application/json", deadline)
            .await?;
        parse(name, url, status, &bytes)
    }
}

/// The retry schedule of `policy`: exponential from `initial_backoff`, capped at
/// `max_backoff`, at most `max_retries` retries, with jitter so that replicas that failed
/// together do not retry together.
fn backoff(policy: &RetryPolicy) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(policy.initial_backoff)
        .with_max_delay(policy.max_backoff)
        .with_max_times(usize::try_from(policy.max_retries).unwrap_or(usize::MAX))
        .with_jitter()
}

fn parse<T: DeserializeOwned>(
    method: &'static str,
    url: &Url,
    status: u16,
    bytes: &[u8],
) -> Result<T, RancherError> {
    serde_json::from_slice(bytes).map_err(|e| RancherError::Body {
        method,
        url: shown(url),
        status,
        detail: format!("not the JSON expected ({e})"),
    })
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "HTTP",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_enormous_budget_is_a_far_deadline_not_a_panic() {
        let deadline = Deadline::after(Duration::MAX);
        assert!(deadline.remaining() > Duration::from_secs(3600));
    }

    #[test]
    fn join_ignores_a_trailing_slash() {
        for base in ["http://r:8080/v2-beta", "http://r:8080/v2-beta/"] {
            let base = Url::parse(base).unwrap();
            assert_eq!(
                join(&base, &["projects"]).as_str(),
                "http://r:8080/v2-beta/projects"
            );
        }
    }

    #[test]
    fn shown_urls_lose_their_credentials() {
        let url = Url::parse("http://key:secret@r:8080/v2-beta").unwrap();
        assert_eq!(shown(&url), "http://r:8080/v2-beta");
    }

    #[test]
    fn links_to_another_host_are_refused() {
        let client = Client::new(None, Timeouts::default(), RetryPolicy::none(), None).unwrap();
        let from = Url::parse("http://r:8080/v2-beta/projects/1a5/services?limit=5").unwrap();
        assert!(client
            .follow(
                &from,
                "http://r:8080/v2-beta/projects/1a5/services?limit=5&marker=m5"
            )
            .is_ok());
        assert!(client.follow(&from, "http://evil:8080/x").is_err());
    }
}
