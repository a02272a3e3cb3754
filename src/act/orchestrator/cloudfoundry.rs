//! Cloud Foundry through the v3 Cloud Controller API:
//! - token: UAA client credentials (`POST {uaa}/oauth/token`), cached and
//!   refreshed a minute before it expires (or at once after a 401);
//! - current count: `GET /v3/apps/:guid/processes/web` → `instances`;
//! - scale: `POST /v3/processes/:guid/actions/scale` `{"instances": N}`;
//! - restart one instance: `DELETE /v3/processes/:guid/instances/:index`.
//!
//! Apps map to GUIDs in `[orchestrator.apps.NAME] guid = "..."`, or are looked
//! up by name (`GET /v3/apps?names=NAME`, within `space_guid` when set).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{ActError, AppTarget, CloudFoundryConfig, Target, transport_error};

pub struct CloudFoundry {
    api: String,
    uaa: String,
    client_id: String,
    client_secret: String,
    space_guid: Option<String>,
    apps: BTreeMap<String, AppTarget>,
    client: reqwest::Client,
    token: Mutex<Option<Token>>,
    /// App key → web process GUID, learnt on first use.
    processes: Mutex<HashMap<String, String>>,
}

struct Token {
    value: String,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "hour")]
    expires_in: u64,
}

fn hour() -> u64 {
    3600
}

#[derive(Deserialize)]
struct Process {
    guid: String,
    instances: u32,
}

#[derive(Deserialize)]
struct AppList {
    resources: Vec<AppResource>,
}

#[derive(Deserialize)]
struct AppResource {
    guid: String,
}

/// Tokens are renewed at the latest after this long, whatever UAA says.
const LONGEST_TOKEN: Duration = Duration::from_secs(24 * 3600);

/// When a token that UAA says `expires_in` seconds is renewed: a minute
/// early (halfway for very short tokens), and at the latest after a day
/// (the number is the server's: a huge one must not overflow the clock).
fn refresh_at(now: Instant, expires_in: u64) -> Instant {
    let lifetime = Duration::from_secs(expires_in).min(LONGEST_TOKEN);
    let early = Duration::from_secs(60).min(lifetime / 2);
    now.checked_add(lifetime - early).unwrap_or(now)
}

impl CloudFoundry {
    pub fn from_config(
        cfg: &CloudFoundryConfig,
        apps: &BTreeMap<String, AppTarget>,
    ) -> Result<Self, ActError> {
        let client_secret = crate::secret::read(
            cfg.client_secret_env.as_deref(),
            cfg.client_secret_file.as_deref(),
            "orchestrator.client_secret",
        )
        .map_err(ActError::Permanent)?
        .ok_or_else(|| {
            ActError::Permanent(
                "orchestrator.client_secret_env or client_secret_file is not set".into(),
            )
        })?;
        let client = crate::tls::http::client(&cfg.tls, Self::timeouts())
            .map_err(|e| ActError::Permanent(format!("orchestrator.tls: {e}")))?;
        Ok(Self::new(
            &cfg.api,
            &cfg.uaa,
            &cfg.client_id,
            &client_secret,
            cfg.space_guid.clone(),
            apps.clone(),
            client,
        ))
    }

    /// Each Cloud Controller or UAA request has this long.
    pub fn timeouts() -> crate::tls::http::Timeouts {
        crate::tls::http::Timeouts::request(Duration::from_secs(10))
    }

    /// `client`: built with [`Self::timeouts`] and the platform's TLS.
    pub fn new(
        api: &str,
        uaa: &str,
        client_id: &str,
        client_secret: &str,
        space_guid: Option<String>,
        apps: BTreeMap<String, AppTarget>,
        client: reqwest::Client,
    ) -> Self {
        CloudFoundry {
            api: api.trim_end_matches('/').to_string(),
            uaa: uaa.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            space_guid,
            apps,
            client,
            token: Mutex::new(None),
            processes: Mutex::new(HashMap::new()),
        }
    }

    async fn token(&self) -> Result<String, ActError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let url = format!("{}/oauth/token", self.uaa);
        let resp = self
            .client
            .post(&url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| transport_error("UAA token", &e))?;
        let status = resp.status();
        let body = crate::http_body::message(resp).await;
        if !status.is_success() {
            return Err(ActError::from_status(status.as_u16(), "UAA token", &body));
        }
        let t: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| ActError::Permanent(format!("UAA token: unexpected response: {e}")))?;
        *cached = Some(Token {
            value: t.access_token.clone(),
            refresh_at: refresh_at(Instant::now(), t.expires_in),
        });
        Ok(t.access_token)
    }

    /// One authenticated Cloud Controller call; returns the response body.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
        what: &str,
    ) -> Result<String, ActError> {
        let token = self.token().await?;
        let mut req = self
            .client
            .request(method, url)
            .bearer_auth(token)
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| transport_error(what, &e))?;
        let status = resp.status();
        let text = crate::http_body::message(resp).await;
        if status == StatusCode::UNAUTHORIZED {
            // Expired or revoked early: fetch a new token on the retry.
            *self.token.lock().await = None;
            return Err(ActError::Transient(format!(
                "{what}: HTTP 401, token renewed"
            )));
        }
        if !status.is_success() {
            return Err(ActError::from_status(status.as_u16(), what, &text));
        }
        Ok(text)
    }

    fn url(&self, path: &str) -> Result<Url, ActError> {
        Url::parse(&format!("{}{path}", self.api))
            .map_err(|e| ActError::Permanent(format!("bad Cloud Controller URL {}: {e}", self.api)))
    }

    async fn app_guid(&self, t: &Target) -> Result<String, ActError> {
        if let Some(guid) = t.lookup(&self.apps).and_then(|a| a.guid.clone()) {
            return Ok(guid);
        }
        let name = t.display();
        let mut url = self.url("/v3/apps")?;
        url.query_pairs_mut().append_pair("names", name);
        if let Some(space) = &self.space_guid {
            url.query_pairs_mut().append_pair("space_guids", space);
        }
        let body = self.call(Method::GET, url, None, "list apps").await?;
        let list: AppList = serde_json::from_str(&body)
            .map_err(|e| ActError::Permanent(format!("list apps: unexpected response: {e}")))?;
        match list.resources.as_slice() {
            [one] => Ok(one.guid.clone()),
            [] => Err(ActError::Permanent(format!(
                "no Cloud Foundry app is named {name}: set [orchestrator.apps.{name}] guid"
            ))),
            _ => Err(ActError::Permanent(format!(
                "several Cloud Foundry apps are named {name}: set orchestrator.space_guid or the app's guid"
            ))),
        }
    }

    async fn web_process(&self, t: &Target) -> Result<Process, ActError> {
        let guid = self.app_guid(t).await?;
        let url = self.url(&format!("/v3/apps/{guid}/processes/web"))?;
        let body = self.call(Method::GET, url, None, "get web process").await?;
        let p: Process = serde_json::from_str(&body).map_err(|e| {
            ActError::Permanent(format!("get web process: unexpected response: {e}"))
        })?;
        self.processes
            .lock()
            .await
            .insert(t.app.clone(), p.guid.clone());
        Ok(p)
    }

    async fn process_guid(&self, t: &Target) -> Result<String, ActError> {
        if let Some(g) = self.processes.lock().await.get(&t.app) {
            return Ok(g.clone());
        }
        Ok(self.web_process(t).await?.guid)
    }

    pub async fn instances(&self, t: &Target) -> Result<u32, ActError> {
        Ok(self.web_process(t).await?.instances)
    }

    pub async fn scale(&self, t: &Target, n: u32) -> Result<(), ActError> {
        let guid = self.process_guid(t).await?;
        let url = self.url(&format!("/v3/processes/{guid}/actions/scale"))?;
        let body = serde_json::json!({ "instances": n }).to_string();
        self.call(Method::POST, url, Some(body), "scale process")
            .await
            .map(drop)
    }

    pub async fn restart(&self, t: &Target, instance: &str) -> Result<(), ActError> {
        let index: u32 = instance.parse().map_err(|_| {
            ActError::Permanent(format!("instance `{instance}` is not an instance index"))
        })?;
        let guid = self.process_guid(t).await?;
        let url = self.url(&format!("/v3/processes/{guid}/instances/{index}"))?;
        self.call(Method::DELETE, url, None, "restart instance")
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_lifetime_is_the_servers_number_bounded() {
        let now = Instant::now();
        assert_eq!(refresh_at(now, 3600), now + Duration::from_secs(3540));
        assert_eq!(refresh_at(now, 10), now + Duration::from_secs(5));
        assert_eq!(refresh_at(now, 0), now);
        assert_eq!(
            refresh_at(now, u64::MAX),
            now + LONGEST_TOKEN - Duration::from_secs(60)
        );
    }
}
