//! cuFile's configuration, as far as objget needs it: where NVIDIA's library writes its log
//! (never the caller's working directory) and which RDMA devices it lists.
//!
//! libcuobjclient runs on cuFile, which reads `CUFILE_ENV_PATH_JSON` (default
//! `/etc/cufile.json`) and, unconfigured, writes `cufile.log` into the current directory. Before
//! the client is created, [`place_log`] points `CUFILE_LOGFILE_PATH` at a file under the
//! temporary directory (or `OBJGET_RDMA_LOG`) at warning level, unless the user chose a place
//! already (`CUFILE_LOGFILE_PATH`, or the JSON's `logging.dir`).

use std::path::PathBuf;

use crate::options::rdma_env;

/// The parts of cuFile's JSON objget reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// `properties.rdma_dev_addr_list`.
    pub(crate) devices: Vec<String>,
    /// `logging.dir`.
    pub(crate) log_dir: Option<String>,
}

/// The file cuFile reads its configuration from.
fn path() -> PathBuf {
    std::env::var_os("CUFILE_ENV_PATH_JSON")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/etc/cufile.json"), PathBuf::from)
}

/// cuFile's JSON, read tolerantly: NVIDIA's sample file carries `//` comment lines, which are
/// dropped first. A missing or unreadable file is an empty configuration.
pub(crate) fn config() -> Config {
    std::fs::read_to_string(path())
        .map(|t| parse(&t))
        .unwrap_or_default()
}

fn parse(text: &str) -> Config {
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Config::default();
    };
    let devices = v
        .pointer("/properties/rdma_dev_addr_list")
        .and_then(|l| l.as_array())
        .map(|l| {
            l.iter()
                .filter_map(|a| a.as_str().filter(|a| !a.is_empty()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let log_dir = v
        .pointer("/logging/dir")
        .and_then(|d| d.as_str())
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    Config { devices, log_dir }
}

/// Direct cuFile's log away from the working directory before the library initialises, and
/// say where it goes: the user's `CUFILE_LOGFILE_PATH` or JSON `logging.dir` when set, else
/// `OBJGET_RDMA_LOG`, else `<temp dir>/objget-cufile-<uid>.log`; level WARN unless
/// `CUFILE_LOGGING_LEVEL` says otherwise.
pub(crate) fn place_log() -> String {
    if let Some(p) = std::env::var_os("CUFILE_LOGFILE_PATH").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).display().to_string();
    }
    if let Some(dir) = config().log_dir {
        return dir;
    }
    let file = rdma_env::log().unwrap_or_else(|| std::env::temp_dir().join(default_name()));
    // Set once, before the library that reads them is loaded. Other threads of the process
    // may read the environment meanwhile; glibc's setenv never frees the old value, so a
    // concurrent getenv sees the old or the new value, never freed memory.
    std::env::set_var("CUFILE_LOGFILE_PATH", &file);
    if std::env::var_os("CUFILE_LOGGING_LEVEL").is_none() {
        std::env::set_var("CUFILE_LOGGING_LEVEL", "WARN");
    }
    file.display().to_string()
}

fn default_name() -> String {
    #[cfg(unix)]
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    #[cfg(not(unix))]
    let uid = 0;
    format!("objget-cufile-{uid}.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_devices_and_log_dir_past_comment_lines() {
        let c = parse(
            "{\n  // a comment, as in NVIDIA's sample\n  \"logging\": {\"dir\": \"/var/log/x\"},\n  \"properties\": {\"rdma_dev_addr_list\": [\"10.0.0.5\", \"\"]}\n}",
        );
        assert_eq!(c.devices, vec!["10.0.0.5".to_string()]);
        assert_eq!(c.log_dir.as_deref(), Some("/var/log/x"));
        assert_eq!(parse("{ not json"), Config::default());
    }
}
