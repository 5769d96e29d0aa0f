//! Bearer tokens (docker's token authentication): `GET realm?service=…&scope=…`, with basic
//! credentials when we have them, answering `{"token": …}` or `{"access_token": …}`.

use serde::Deserialize;

use crate::auth::Credentials;
use crate::error::{Error, Result};

/// Largest token response we read.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

#[derive(Debug, Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Fetches a token for `scopes` from `realm`.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credentials: Option<&Credentials>,
) -> Result<String> {
    let fail = |problem: String| Error::Token { realm: realm.to_owned(), problem };
    let mut url = reqwest::Url::parse(realm).map_err(|err| fail(format!("invalid realm url: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail(format!("unsupported realm scheme {:?}", url.scheme())));
    }
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        for scope in scopes {
            query.append_pair("scope", scope);
        }
    }
    let mut request = http.get(url);
    if let Some(credentials) = credentials {
        request = request.basic_auth(&credentials.username, Some(&credentials.password));
    }
    let response = request.send().await.map_err(|err| fail(format!("request failed: {err}")))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| fail(format!("reading the answer failed: {err}")))?;
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(fail(format!(
            "{status}: {}",
            if credentials.is_some() {
                "credentials rejected"
            } else {
                "credentials required (run `kiln login`)"
            }
        )));
    }
    if !status.is_success() {
        return Err(fail(format!("answered {status}")));
    }
    if body.len() > MAX_TOKEN_RESPONSE {
        return Err(fail("answer is larger than 1 MiB".into()));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|err| fail(format!("answer is not a token document: {err}")))?;
    parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| fail("answer has no token".into()))
}
