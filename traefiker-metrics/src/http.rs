//! One bounded GET: both sources fetch with the same timeouts, size cap and error mapping.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, StatusCode};

use crate::error::{status_hint, MetricsError};

/// A client with a connect timeout and a whole-request timeout (which covers reading the
/// body: a server that trickles bytes is cut off too).
/// Besides the system's and the bundled roots it trusts `ca_bundle_pem`, an institution's CA.
pub(crate) fn client(
    connect_timeout: Duration,
    timeout: Duration,
    ca_bundle_pem: Option<&[u8]>,
) -> Result<Client, MetricsError> {
    let mut builder = Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .user_agent(concat!("traefiker/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_bundle_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(MetricsError::Client)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(MetricsError::Client)
}

/// Sends `request` and reads a 200 body of at most `limit` bytes (after decompression, so a
/// gzip bomb is cut off too). `url` is the redacted URL for messages.
pub(crate) async fn get_body(
    request: RequestBuilder,
    url: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, MetricsError> {
    let transport = |source: reqwest::Error| {
        if source.is_timeout() {
            MetricsError::Timeout {
                url: url.to_owned(),
                after: timeout,
            }
        } else {
            MetricsError::Unreachable {
                url: url.to_owned(),
                source: source.without_url(),
            }
        }
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(MetricsError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            hint: status_hint(status.as_u16()),
        });
    }
    let too_large = || MetricsError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    // Only a hint (absent when compressed): the loop below enforces the cap regardless.
    let expected = response.content_length().unwrap_or(0);
    if expected > limit as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    loop {
        let chunk = response.chunk().await.map_err(|source| {
            if source.is_timeout() {
                MetricsError::Timeout {
                    url: url.to_owned(),
                    after: timeout,
                }
            } else {
                MetricsError::Body {
                    url: url.to_owned(),
                    source: source.without_url(),
                }
            }
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
