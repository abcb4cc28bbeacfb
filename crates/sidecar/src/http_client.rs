//! Thanos's HTTP client config (`--prometheus.http-client`, and the ruler's query and
//! Alertmanager clients): basic auth, bearer token, proxy and TLS, as a `reqwest` client.

use std::time::Duration;

use serde::Deserialize;

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct HttpClientConfig {
    #[serde(default)]
    pub basic_auth: BasicAuth,
    #[serde(default)]
    pub bearer_token: String,
    #[serde(default)]
    pub bearer_token_file: String,
    #[serde(default)]
    pub proxy_url: String,
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// Go transport tuning (idle connections, timeouts); reqwest's defaults apply.
    #[serde(default)]
    pub transport_config: Option<serde_yaml::Value>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_file: String,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: String,
    #[serde(default)]
    pub cert_file: String,
    #[serde(default)]
    pub key_file: String,
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl HttpClientConfig {
    /// Parses the YAML; empty text is the default (no auth, system CAs).
    pub fn parse(yaml: &str) -> Result<HttpClientConfig, String> {
        if yaml.trim().is_empty() {
            return Ok(HttpClientConfig::default());
        }
        serde_yaml::from_str(yaml).map_err(|e| format!("invalid HTTP client config: {e}"))
    }

    fn secret(value: &str, file: &str, what: &str) -> Result<String, String> {
        if !file.is_empty() {
            let s =
                std::fs::read_to_string(file).map_err(|e| format!("read {what} {file}: {e}"))?;
            return Ok(s.trim_end_matches(['\r', '\n']).to_string());
        }
        Ok(value.to_string())
    }

    /// The `Authorization` header value, if any (secrets from files are read now).
    pub fn authorization(&self) -> Result<Option<String>, String> {
        let b = &self.basic_auth;
        let bearer = Self::secret(
            &self.bearer_token,
            &self.bearer_token_file,
            "bearer_token_file",
        )?;
        let basic = !(b.username.is_empty() && b.password.is_empty() && b.password_file.is_empty());
        if basic && !bearer.is_empty() {
            return Err("basic_auth and bearer_token are both set; use one".into());
        }
        if basic {
            use base64::Engine;
            let password = Self::secret(&b.password, &b.password_file, "basic_auth.password_file")?;
            let raw = format!("{}:{password}", b.username);
            return Ok(Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )));
        }
        Ok((!bearer.is_empty()).then(|| format!("Bearer {bearer}")))
    }

    /// A client builder with this config's auth, proxy and TLS applied.
    pub fn builder(&self) -> Result<reqwest::ClientBuilder, String> {
        let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(auth) = self.authorization()? {
            let mut v = reqwest::header::HeaderValue::try_from(auth)
                .map_err(|_| "credentials hold characters not allowed in a header".to_string())?;
            v.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, v);
            b = b.default_headers(headers);
        }
        if !self.proxy_url.is_empty() {
            let p = reqwest::Proxy::all(&self.proxy_url)
                .map_err(|e| format!("bad proxy_url {:?}: {e}", self.proxy_url))?;
            b = b.proxy(p);
        }
        let t = &self.tls_config;
        let custom_tls = !t.ca_file.is_empty()
            || !t.cert_file.is_empty()
            || !t.key_file.is_empty()
            || !t.server_name.is_empty()
            || t.insecure_skip_verify;
        if custom_tls {
            let cfg = storeapi::tls::client_config(
                &storeapi::tls::ClientOptions {
                    skip_verify: t.insecure_skip_verify,
                    cert: t.cert_file.clone(),
                    key: t.key_file.clone(),
                    ca: t.ca_file.clone(),
                    server_name: t.server_name.clone(),
                    min_version: "1.2".into(),
                },
                &[b"http/1.1"],
            )?;
            b = b.tls_backend_preconfigured(std::sync::Arc::unwrap_or_clone(cfg));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_as_thanos_reads_them() {
        let c = HttpClientConfig::parse("basic_auth:\n  username: u\n  password: p\n").unwrap();
        assert_eq!(c.authorization().unwrap().unwrap(), "Basic dTpw");
        let c = HttpClientConfig::parse("bearer_token: abc\n").unwrap();
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer abc");
        assert_eq!(
            HttpClientConfig::parse("")
                .unwrap()
                .authorization()
                .unwrap(),
            None
        );
        assert!(HttpClientConfig::parse("basic_auth:\n  user: u\n").is_err());
        let c = HttpClientConfig::parse("bearer_token: a\nbasic_auth:\n  username: u\n").unwrap();
        assert!(c.authorization().is_err());
    }
}
