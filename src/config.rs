//! Typed settings (API.md §13), read once at start from an optional config file and the
//! environment, and checked there: a bad value stops the process with a message that
//! names the variable. Nothing else in the crate reads the environment.
//!
//! Layers, lowest first: compiled-in defaults → the file named by `VOICEPAAS_CONFIG`
//! (`KEY=value` lines, `#` comments) → the process environment.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

/// Every key the settings understand, with its default (`None` = unset by default).
const KEYS: &[(&str, Option<&str>)] = &[
    ("VOICEPAAS_LISTEN", Some("127.0.0.1:8080")),
    ("DATABASE_URL", Some("sqlite://./data/voicepaas.db")),
    ("VOICEPAAS_MEDIA", Some("sandbox")),
    ("VOICEPAAS_DIAL_STRING", Some("sofia/gateway/pstn/{number}")),
    ("VOICEPAAS_INSTALLATION", Some("voicepaas")),
    ("VOICEPAAS_SANDBOX_SPEED", Some("1")),
    ("VOICEPAAS_SANDBOX_PASSWORD", Some("ClueCon")),
    ("VOICEPAAS_RECORDINGS_DIR", Some("./data/recordings")),
    ("VOICEPAAS_CONFERENCE_PROFILE", Some("default")),
    ("VOICEPAAS_PROMPTS_DIR", Some("./data/prompts")),
    ("VOICEPAAS_MEDIA_GRACE_SECS", Some("10")),
    ("VOICEPAAS_CHANNEL_MAX_SECS", Some("14400")),
    ("VOICEPAAS_SIP_NUMBER_BASE", Some("80000000")),
    ("VOICEPAAS_SIP_DOMAIN", Some("voicepaas.local")),
    ("VOICEPAAS_WEBPHONE_WSS", Some("")),
    (
        "VOICEPAAS_AGENT_DIAL_STRING",
        Some("user/{sipNumber}@{domain}"),
    ),
    ("VOICEPAAS_CTI_GRACE_SECONDS", Some("60")),
    ("VOICEPAAS_CTI_SILENCE_SECONDS", Some("45")),
    ("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", Some("false")),
    ("VOICEPAAS_ADMIN_TOKEN", None),
    ("VOICEPAAS_FS_DIRECTORY_SECRET", None),
    ("VOICEPAAS_NODE_ID", Some("10000")),
    ("VOICEPAAS_TIMEZONE", Some("Asia/Shanghai")),
    ("VOICEPAAS_WEBHOOK_RETRY_SCALE", Some("1")),
    ("VOICEPAAS_DELIVERY_RETENTION_DAYS", Some("30")),
    ("VOICEPAAS_RECORDING_RETENTION_DAYS", Some("90")),
    ("VOICEPAAS_SOFT_VERSIONS", Some("v1,2019-08-14")),
    ("VOICEPAAS_CAPTCHA_LIMITS", Some("1,5,20")),
    ("VOICEPAAS_LOG", Some("info")),
    ("VOICEPAAS_LOG_FORMAT", Some("text")),
];

/// The name of the variable that points at an optional config file.
pub const CONFIG_FILE_VAR: &str = "VOICEPAAS_CONFIG";

/// A configuration value that could not be used; names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The variable (or file) at fault.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(var: &str, message: impl Into<String>) -> Self {
        Self {
            var: var.to_string(),
            message: message.into(),
        }
    }
}

/// A string that must never reach a log line (tokens, URLs with passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One FreeSWITCH Event Socket endpoint (`esl://:password@host:port[?capacity=N]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EslNode {
    /// Host name or address.
    pub host: String,
    /// TCP port (8021 by default in FreeSWITCH).
    pub port: u16,
    /// The `auth` password.
    pub password: Secret,
    /// Most channels it should carry (`?capacity=N`); new calls go to the node with the
    /// most free capacity.
    pub capacity: usize,
    /// Where its internal SIP profile listens (`?sip=host:port`, default the node's host
    /// and 5060): other nodes reach devices registered here through it.
    pub sip: String,
}

/// Which media servers calls go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSetting {
    /// The in-process sandbox (API.md §12).
    Sandbox,
    /// Real FreeSWITCH nodes.
    Nodes(Vec<EslNode>),
}

/// Per-callee captcha limits for one account (API.md §1a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptchaLimits {
    /// Captchas to one number per rolling minute.
    pub per_minute: u32,
    /// Per rolling hour.
    pub per_hour: u32,
    /// Per rolling day.
    pub per_day: u32,
}

/// All settings of a voicepaas process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server binds (`VOICEPAAS_LISTEN`).
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…` (`DATABASE_URL`).
    pub database_url: Secret,
    /// Sandbox or FreeSWITCH nodes (`VOICEPAAS_MEDIA`).
    pub media: MediaSetting,
    /// Dial string template with `{number}` (`VOICEPAAS_DIAL_STRING`).
    pub dial_string: String,
    /// Tag set on every channel this installation creates (`VOICEPAAS_INSTALLATION`; its
    /// replicas share it, other systems on the same FreeSWITCH must use another).
    pub installation: String,
    /// Sandbox clock speed-up (`VOICEPAAS_SANDBOX_SPEED`).
    pub sandbox_speed: f64,
    /// Event Socket password of the sandbox (`VOICEPAAS_SANDBOX_PASSWORD`).
    pub sandbox_password: Secret,
    /// Where recordings are written (`VOICEPAAS_RECORDINGS_DIR`).
    pub recordings_dir: std::path::PathBuf,
    /// The mod_conference profile of agent conferences (`VOICEPAAS_CONFERENCE_PROFILE`; a
    /// quiet one: no sounds on entering or leaving).
    pub conference_profile: String,
    /// Where prompt files are written for the media servers to play
    /// (`VOICEPAAS_PROMPTS_DIR`; FreeSWITCH must see the same path).
    pub prompts_dir: std::path::PathBuf,
    /// How long a leg waits for its lost media server to come back with the channel
    /// before it ends as failed (`VOICEPAAS_MEDIA_GRACE_SECS`).
    pub media_grace: std::time::Duration,
    /// The longest any channel of this installation may live, from its creation: set on
    /// the channel at originate, so it holds even when no voicepaas process is left to
    /// end it (`VOICEPAAS_CHANNEL_MAX_SECS`, 10–86400).
    pub channel_max_secs: u32,
    /// Agents' sipNumbers are handed out after this number, one by one
    /// (`VOICEPAAS_SIP_NUMBER_BASE`, 1000–4000000000).
    pub sip_number_base: u32,
    /// The SIP domain of agents' devices (`VOICEPAAS_SIP_DOMAIN`).
    pub sip_domain: String,
    /// The WSS address WebPhones register over, handed out as `wsAddr`
    /// (`VOICEPAAS_WEBPHONE_WSS`; empty: none).
    pub webphone_wss: String,
    /// How agents' SIP and WebPhone devices are dialled (`VOICEPAAS_AGENT_DIAL_STRING`;
    /// `{sipNumber}` and `{domain}` are filled in).
    pub agent_dial_string: String,
    /// How long a logged-in agent may be without a socket before it is logged out
    /// (`VOICEPAAS_CTI_GRACE_SECONDS`, 1–3600).
    pub cti_grace_secs: u32,
    /// An agent socket silent this long is closed (4004); the server pings at 4/9 of it
    /// (`VOICEPAAS_CTI_SILENCE_SECONDS`, 2–3600, default 45: pings every 20 s).
    pub cti_silence_secs: u32,
    /// Whether webhooks may target private addresses (`VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS`).
    pub allow_private_webhooks: bool,
    /// Bearer token of the operator API; the API is off when unset (`VOICEPAAS_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// The password FreeSWITCH's mod_xml_curl gives (user `freeswitch`) to read the agents'
    /// directory (`VOICEPAAS_FS_DIRECTORY_SECRET`; unset: no directory).
    pub fs_directory_secret: Option<Secret>,
    /// Five-digit node id put into every id this process makes (`VOICEPAAS_NODE_ID`).
    pub node_id: u32,
    /// Time zone of times in callbacks, CDRs and queries (`VOICEPAAS_TIMEZONE`).
    pub timezone: chrono_tz::Tz,
    /// Multiplier on every webhook retry delay (`VOICEPAAS_WEBHOOK_RETRY_SCALE`).
    pub webhook_retry_scale: f64,
    /// Days delivered and failed callbacks (and their attempts) are kept after they
    /// finish (`VOICEPAAS_DELIVERY_RETENTION_DAYS`, fractions allowed).
    pub delivery_retention_days: f64,
    /// Days a recording file is kept after it was last written; `0` keeps recordings for
    /// ever (`VOICEPAAS_RECORDING_RETENTION_DAYS`, fractions allowed).
    pub recording_retention_days: f64,
    /// Accepted `{SoftVersion}` path segments of click-to-call (`VOICEPAAS_SOFT_VERSIONS`).
    pub soft_versions: Vec<String>,
    /// Per-callee captcha limits: `per minute,per hour,per day` (`VOICEPAAS_CAPTCHA_LIMITS`).
    pub captcha_limits: CaptchaLimits,
    /// Log filter, `tracing_subscriber::EnvFilter` syntax (`VOICEPAAS_LOG`).
    pub log_filter: String,
    /// Log lines as JSON objects (`VOICEPAAS_LOG_FORMAT=json`) instead of text.
    pub log_json: bool,
}

impl Settings {
    /// Reads the config file (if `VOICEPAAS_CONFIG` is set) and the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        if let Ok(path) = std::env::var(CONFIG_FILE_VAR) {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(CONFIG_FILE_VAR, format!("cannot read {path}: {e}"))
            })?;
            values.extend(parse_config_file(&text)?);
        }
        for (key, _) in KEYS {
            if let Ok(value) = std::env::var(key) {
                values.insert((*key).to_string(), value);
            }
        }
        Self::from_values(&values)
    }

    /// Builds settings from explicit key/value pairs over the defaults (used by tests).
    pub fn from_values(values: &HashMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(key) = values
            .keys()
            .find(|k| !KEYS.iter().any(|(known, _)| known == k))
        {
            return Err(ConfigError::new(key, "unknown setting"));
        }
        let get = |key: &str| -> Option<String> {
            values.get(key).cloned().or_else(|| {
                KEYS.iter()
                    .find(|(k, _)| *k == key)
                    .and_then(|(_, d)| d.map(str::to_string))
            })
        };
        let required = |key: &str| get(key).unwrap_or_default();

        let listen = required("VOICEPAAS_LISTEN");
        let listen = listen.parse().map_err(|_| {
            ConfigError::new(
                "VOICEPAAS_LISTEN",
                format!("expected host:port like 127.0.0.1:8080, got {listen:?}"),
            )
        })?;
        let database_url = required("DATABASE_URL");
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "expected sqlite://… or postgres://…",
            ));
        }
        let dial_string = required("VOICEPAAS_DIAL_STRING");
        if !dial_string.contains("{number}") {
            return Err(ConfigError::new(
                "VOICEPAAS_DIAL_STRING",
                "must contain {number}",
            ));
        }
        let name = |var: &str| {
            let value = required(var);
            let fine = !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            match fine {
                true => Ok(value),
                false => Err(ConfigError::new(
                    var,
                    "must be 1-64 letters, digits, '_' or '-'",
                )),
            }
        };
        let installation = name("VOICEPAAS_INSTALLATION")?;
        let conference_profile = name("VOICEPAAS_CONFERENCE_PROFILE")?;
        let node_id = match required("VOICEPAAS_NODE_ID").as_str() {
            // One per pod of a Deployment: derived from the host name (unique per pod).
            "auto" => node_id_of_host(&std::env::var("HOSTNAME").unwrap_or_default()).to_string(),
            given => given.to_string(),
        };
        let node_id = node_id
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 99_999)
            .ok_or_else(|| {
                ConfigError::new(
                    "VOICEPAAS_NODE_ID",
                    format!("expected a number 0-99999 or auto, got {node_id:?}"),
                )
            })?;
        let timezone = required("VOICEPAAS_TIMEZONE");
        let timezone = timezone.parse().map_err(|_| {
            ConfigError::new(
                "VOICEPAAS_TIMEZONE",
                format!("unknown time zone {timezone:?} (use an IANA name like Asia/Shanghai)"),
            )
        })?;
        let soft_versions: Vec<String> = required("VOICEPAAS_SOFT_VERSIONS")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if soft_versions.is_empty() || soft_versions.iter().any(|v| v.contains('/')) {
            return Err(ConfigError::new(
                "VOICEPAAS_SOFT_VERSIONS",
                "expected a comma list of path segments like v1,2019-08-14",
            ));
        }
        Ok(Self {
            listen,
            database_url: Secret::new(database_url),
            media: parse_media(&required("VOICEPAAS_MEDIA"))?,
            dial_string,
            installation,
            sandbox_speed: parse_positive(
                "VOICEPAAS_SANDBOX_SPEED",
                &required("VOICEPAAS_SANDBOX_SPEED"),
                false,
            )?,
            sandbox_password: Secret::new(required("VOICEPAAS_SANDBOX_PASSWORD")),
            recordings_dir: required("VOICEPAAS_RECORDINGS_DIR").into(),
            conference_profile,
            prompts_dir: required("VOICEPAAS_PROMPTS_DIR").into(),
            media_grace: std::time::Duration::from_secs_f64(
                parse_positive(
                    "VOICEPAAS_MEDIA_GRACE_SECS",
                    &required("VOICEPAAS_MEDIA_GRACE_SECS"),
                    true,
                )?
                .min(86_400.0),
            ),
            channel_max_secs: parse_whole_in(
                "VOICEPAAS_CHANNEL_MAX_SECS",
                &required("VOICEPAAS_CHANNEL_MAX_SECS"),
                10..=86_400,
            )?,
            sip_number_base: parse_whole_in(
                "VOICEPAAS_SIP_NUMBER_BASE",
                &required("VOICEPAAS_SIP_NUMBER_BASE"),
                1000..=4_000_000_000,
            )?,
            sip_domain: required("VOICEPAAS_SIP_DOMAIN"),
            webphone_wss: get("VOICEPAAS_WEBPHONE_WSS").unwrap_or_default(),
            agent_dial_string: agent_dial_string(&required("VOICEPAAS_AGENT_DIAL_STRING"))?,
            cti_grace_secs: parse_whole_in(
                "VOICEPAAS_CTI_GRACE_SECONDS",
                &required("VOICEPAAS_CTI_GRACE_SECONDS"),
                1..=3600,
            )?,
            cti_silence_secs: parse_whole_in(
                "VOICEPAAS_CTI_SILENCE_SECONDS",
                &required("VOICEPAAS_CTI_SILENCE_SECONDS"),
                2..=3600,
            )?,
            allow_private_webhooks: parse_bool(
                "VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS",
                &required("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS"),
            )?,
            admin_token: get("VOICEPAAS_ADMIN_TOKEN")
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            fs_directory_secret: get("VOICEPAAS_FS_DIRECTORY_SECRET")
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            node_id,
            timezone,
            webhook_retry_scale: parse_positive(
                "VOICEPAAS_WEBHOOK_RETRY_SCALE",
                &required("VOICEPAAS_WEBHOOK_RETRY_SCALE"),
                true,
            )?,
            delivery_retention_days: parse_positive(
                "VOICEPAAS_DELIVERY_RETENTION_DAYS",
                &required("VOICEPAAS_DELIVERY_RETENTION_DAYS"),
                false,
            )?,
            recording_retention_days: parse_positive(
                "VOICEPAAS_RECORDING_RETENTION_DAYS",
                &required("VOICEPAAS_RECORDING_RETENTION_DAYS"),
                true,
            )?,
            soft_versions,
            captcha_limits: parse_captcha_limits(&required("VOICEPAAS_CAPTCHA_LIMITS"))?,
            log_filter: required("VOICEPAAS_LOG"),
            log_json: match required("VOICEPAAS_LOG_FORMAT").as_str() {
                "text" => false,
                "json" => true,
                other => {
                    return Err(ConfigError::new(
                        "VOICEPAAS_LOG_FORMAT",
                        format!("expected text or json, got {other:?}"),
                    ));
                }
            },
        })
    }

    /// Whether `url` points at PostgreSQL (otherwise SQLite).
    pub fn uses_postgres(&self) -> bool {
        !self.database_url.expose().starts_with("sqlite:")
    }
}

/// `VOICEPAAS_NODE_ID=auto`: a node id 10000-99999 from the host name (FNV-1a). Two pods
/// meeting on one id is unlikely and harmless: ids also carry a counter that starts at a
/// random point, and the database refuses a duplicate id rather than losing a row.
fn node_id_of_host(host: &str) -> u32 {
    let hash = host.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    10_000 + (hash % 90_000) as u32
}

fn parse_config_file(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut values = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            ConfigError::new(
                CONFIG_FILE_VAR,
                format!("line {}: expected KEY=value", n + 1),
            )
        })?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        values.insert(key.trim().to_string(), value.to_string());
    }
    Ok(values)
}

fn parse_bool(var: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::new(
            var,
            format!("expected true or false, got {value:?}"),
        )),
    }
}

fn parse_positive(var: &str, value: &str, zero_ok: bool) -> Result<f64, ConfigError> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) => Ok(v),
        _ => Err(ConfigError::new(
            var,
            format!("expected a positive number, got {value:?}"),
        )),
    }
}

/// `VOICEPAAS_AGENT_DIAL_STRING`, which must name the device (`{sipNumber}`).
fn agent_dial_string(template: &str) -> Result<String, ConfigError> {
    if !template.contains("{sipNumber}") {
        return Err(ConfigError::new(
            "VOICEPAAS_AGENT_DIAL_STRING",
            "must contain {sipNumber}",
        ));
    }
    Ok(template.to_string())
}

fn parse_whole_in(
    var: &str,
    value: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    match value.trim().parse::<u32>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(ConfigError::new(
            var,
            format!(
                "expected a whole number from {} to {}, got {value:?}",
                range.start(),
                range.end()
            ),
        )),
    }
}

fn parse_captcha_limits(value: &str) -> Result<CaptchaLimits, ConfigError> {
    let parts: Vec<Option<u32>> = value.split(',').map(|p| p.trim().parse().ok()).collect();
    match parts.as_slice() {
        [Some(per_minute), Some(per_hour), Some(per_day)] => Ok(CaptchaLimits {
            per_minute: *per_minute,
            per_hour: *per_hour,
            per_day: *per_day,
        }),
        _ => Err(ConfigError::new(
            "VOICEPAAS_CAPTCHA_LIMITS",
            format!(
                "expected three counts `per minute,per hour,per day` like 1,5,20, got {value:?}"
            ),
        )),
    }
}

/// Channels a media node is assumed to carry when its URL does not say.
pub const DEFAULT_NODE_CAPACITY: usize = 10_000;

fn parse_media(value: &str) -> Result<MediaSetting, ConfigError> {
    const VAR: &str = "VOICEPAAS_MEDIA";
    if value.trim() == "sandbox" {
        return Ok(MediaSetting::Sandbox);
    }
    let mut nodes = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || {
            ConfigError::new(
                VAR,
                format!("expected `sandbox` or esl://:password@host:port, got {item:?}"),
            )
        };
        let rest = item.strip_prefix("esl://").ok_or_else(bad)?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut capacity = DEFAULT_NODE_CAPACITY;
        let mut sip = None;
        for param in query.split('&').filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some(("capacity", n)) => {
                    capacity = n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(bad)?;
                }
                Some(("sip", addr)) if is_host_port(addr) => sip = Some(addr.to_string()),
                _ => return Err(bad()),
            }
        }
        // No default password: FreeSWITCH's stock `ClueCon` on a reachable node is an
        // open door, so the operator must name the one the node uses.
        let (password, hostport) = rest
            .rsplit_once('@')
            .map(|(userinfo, hostport)| (userinfo.strip_prefix(':').unwrap_or(userinfo), hostport))
            .filter(|(password, _)| !password.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    VAR,
                    format!(
                        "{} has no password: write esl://:<password>@host:port",
                        item.split('@').next_back().unwrap_or_default()
                    ),
                )
            })?;
        let hostport = hostport.trim_end_matches('/');
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
            None => (hostport, 8021),
        };
        if host.is_empty() {
            return Err(bad());
        }
        nodes.push(EslNode {
            host: host.to_string(),
            port,
            password: Secret::new(password),
            capacity,
            sip: sip.unwrap_or_else(|| format!("{host}:5060")),
        });
    }
    if nodes.is_empty() {
        return Err(ConfigError::new(VAR, "no media nodes given"));
    }
    Ok(MediaSetting::Nodes(nodes))
}

/// `host:port` with a port number and a host of address or name characters only.
fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_values(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = with(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url.expose(), "sqlite://./data/voicepaas.db");
        assert_eq!(s.media, MediaSetting::Sandbox);
        assert_eq!(s.node_id, 10000);
        assert_eq!(s.timezone, chrono_tz::Asia::Shanghai);
        assert!(s.admin_token.is_none());
        assert!(!s.allow_private_webhooks);
        assert_eq!(s.soft_versions, vec!["v1", "2019-08-14"]);
        assert_eq!(
            s.captcha_limits,
            CaptchaLimits {
                per_minute: 1,
                per_hour: 5,
                per_day: 20
            }
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (key, value) in [
            ("VOICEPAAS_NODE_ID", "123456"),
            ("VOICEPAAS_NODE_ID", "abc"),
            ("VOICEPAAS_LISTEN", "nowhere"),
            ("VOICEPAAS_TIMEZONE", "Mars/Olympus"),
            ("VOICEPAAS_SANDBOX_SPEED", "0"),
            ("VOICEPAAS_ALLOW_PRIVATE_WEBHOOKS", "maybe"),
            ("VOICEPAAS_MEDIA", "http://x"),
            ("DATABASE_URL", "mysql://x"),
            ("VOICEPAAS_DIAL_STRING", "sofia/gateway/pstn/"),
            ("VOICEPAAS_CAPTCHA_LIMITS", "1,2"),
            ("VOICEPAAS_CONFERENCE_PROFILE", "quiet profile"),
            ("VOICEPAAS_INSTALLATION", ""),
        ] {
            let err = with(&[(key, value)]).unwrap_err();
            assert_eq!(err.var, key, "{key}={value}");
            assert!(err.to_string().starts_with(key));
        }
        assert_eq!(
            with(&[("VOICEPAAS_NODEID", "1")]).unwrap_err().var,
            "VOICEPAAS_NODEID"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = with(&[
            ("VOICEPAAS_MEDIA", "esl://:s3cret-pw@fs1:8021"),
            ("DATABASE_URL", "postgres://u:db-pw@h/d"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret-pw") && !shown.contains("db-pw"),
            "{shown}"
        );
        let secret = Secret::from("whsec_abc".to_string());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn media_nodes_parse() {
        let s = with(&[(
            "VOICEPAAS_MEDIA",
            "esl://:secret@fs1:8021?capacity=500&sip=10.0.0.1:5080, esl://:ClueCon@fs2",
        )])
        .unwrap();
        let MediaSetting::Nodes(nodes) = s.media else {
            panic!("expected nodes")
        };
        assert_eq!((nodes[0].host.as_str(), nodes[0].capacity), ("fs1", 500));
        assert_eq!(nodes[1].capacity, DEFAULT_NODE_CAPACITY);
        for bad in [
            "esl://fs1?capacity=0",
            "esl://fs1?cap=5",
            "esl://fs1?capacity=x",
            "esl://fs1:8021",
            "esl://:@fs1:8021",
            "esl://:pw@fs1?sip=nohost",
            "esl://:pw@fs1?sip=a b:5060",
        ] {
            assert!(with(&[("VOICEPAAS_MEDIA", bad)]).is_err(), "{bad}");
        }
        assert_eq!(nodes[0].password.expose(), "secret");
        assert_eq!(
            (nodes[0].sip.as_str(), nodes[1].sip.as_str()),
            ("10.0.0.1:5080", "fs2:5060")
        );
        assert_eq!(
            (
                nodes[1].host.as_str(),
                nodes[1].port,
                nodes[1].password.expose()
            ),
            ("fs2", 8021, "ClueCon")
        );
    }

    #[test]
    fn config_file_lines() {
        let v = parse_config_file("# comment\nVOICEPAAS_NODE_ID=42\n\nVOICEPAAS_LOG=\"debug\"\n")
            .unwrap();
        assert_eq!(v["VOICEPAAS_NODE_ID"], "42");
        assert_eq!(v["VOICEPAAS_LOG"], "debug");
        let a = node_id_of_host("voicepaas-7d9f4c8b6f-2xkpt");
        assert!((10_000..=99_999).contains(&a));
        assert_eq!(a, node_id_of_host("voicepaas-7d9f4c8b6f-2xkpt"));
        assert_ne!(a, node_id_of_host("voicepaas-7d9f4c8b6f-9qwzr"));
        assert!(parse_config_file("oops").is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = with(&[("VOICEPAAS_ADMIN_TOKEN", "hunter2")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
