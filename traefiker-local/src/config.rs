//! What the local backend runs and how: the command template, the image it reports, how long
//! a narrative gets to stop, and which of traefiker's own environment it may see.

use std::time::Duration;

use traefiker_core::{InvalidInput, Naming};

/// Environment variables of traefiker itself that a narrative inherits by default: what a
/// program needs to be found and to run (PATH, HOME, locale, Python and Jupyter locations),
/// and nothing else. traefiker's environment holds its own secrets (auth2 and admin tokens),
/// which a narrative run by a user must never see.
pub const DEFAULT_PASS_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PYTHONPATH",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR",
    "RUST_LOG",
];

/// How the local backend starts and stops narratives.
///
/// Built with [`LocalConfig::new`] from the `local_command` template, then adjusted field by
/// field; [`crate::LocalManager::new`] validates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    /// The program and its arguments. In every element `{port}` becomes the port the
    /// narrative must listen on and `{name}` its container name at start, e.g.
    /// `["traefiker", "narrative-standin", "--port", "{port}", "--name", "{name}"]`.
    ///
    /// `{name_file}` becomes the path of a file holding the narrative's *current* name
    /// (also in `NARRATIVE_NAME_FILE`): a waiting narrative given to a user is renamed
    /// without restarting, so only this file tells it its new name.
    pub command: Vec<String>,
    /// The naming scheme that tells user narratives from waiting ones.
    pub naming: Naming,
    /// The image every narrative reports (`<image_name>:<tag>`), so the pool and the status
    /// pages treat local narratives like containers; nothing is pulled.
    pub image: String,
    /// How long a narrative has between SIGTERM and SIGKILL when it is removed.
    pub grace: Duration,
    /// The address narratives listen on and are reached at. Loopback: only traefiker and a
    /// Traefik on this machine should reach them.
    pub bind_host: String,
    /// When set, `create` waits this long for the narrative to accept TCP connections on its
    /// port and fails if it exits or does not listen in time. `None` returns as soon as the
    /// process is started, like the Rancher backend.
    pub ready_timeout: Option<Duration>,
    /// Names of traefiker's environment variables a narrative inherits (see
    /// [`DEFAULT_PASS_ENV`]); the narrative's own environment (`NARRENV_*`) comes on top.
    pub pass_env: Vec<String>,
}

impl LocalConfig {
    /// A configuration running `command`, reporting image `local/narrative:dev`, with the
    /// default naming, a 10 s grace period, loopback, no readiness wait and
    /// [`DEFAULT_PASS_ENV`].
    pub fn new<I, S>(command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: command.into_iter().map(Into::into).collect(),
            naming: Naming::default(),
            image: "local/narrative:dev".to_owned(),
            grace: Duration::from_secs(10),
            bind_host: "127.0.0.1".to_owned(),
            ready_timeout: None,
            pass_env: DEFAULT_PASS_ENV.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Checks the configuration can start anything at all.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        match self.command.first() {
            None => {
                return Err(InvalidInput::new(
                    "local_command",
                    "is empty: give the program to run and its arguments, e.g. \
                     [\"traefiker\", \"narrative-standin\", \"--port\", \"{port}\", \"--name\", \"{name}\"]",
                ))
            }
            Some(program) if program.trim().is_empty() => {
                return Err(InvalidInput::new(
                    "local_command",
                    "its first element (the program) is empty",
                ))
            }
            Some(_) => {}
        }
        if !self.command.iter().any(|arg| arg.contains("{port}")) {
            return Err(InvalidInput::new(
                "local_command",
                "never mentions {port}: the narrative must listen on the port traefiker picks, \
                 or Traefik cannot reach it",
            ));
        }
        if self.bind_host.parse::<std::net::IpAddr>().is_err() {
            return Err(InvalidInput::new(
                "local bind_host",
                format!(
                    "must be an IP address such as 127.0.0.1: {:?}",
                    self.bind_host
                ),
            ));
        }
        if self.image.trim().is_empty() {
            return Err(InvalidInput::new(
                "local image",
                "is empty: give the image name local narratives report",
            ));
        }
        Ok(())
    }

    /// Whether narratives are told their current name through a file (`{name_file}`).
    pub fn uses_name_file(&self) -> bool {
        self.command.iter().any(|arg| arg.contains("{name_file}"))
    }

    /// The command line for a narrative named `name` on `port`, whose name file (if any) is
    /// `name_file`.
    pub(crate) fn render(&self, name: &str, port: u16, name_file: &str) -> Vec<String> {
        let port = port.to_string();
        self.command
            .iter()
            .map(|arg| {
                arg.replace("{port}", &port)
                    .replace("{name_file}", name_file)
                    .replace("{name}", name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_inside_arguments() {
        let config = LocalConfig::new([
            "run",
            "--port={port}",
            "{name}",
            "{name}-{port}",
            "--name-file={name_file}",
        ]);
        assert!(config.uses_name_file());
        assert_eq!(
            config.render("narrative-a", 8123, "/tmp/n"),
            [
                "run",
                "--port=8123",
                "narrative-a",
                "narrative-a-8123",
                "--name-file=/tmp/n"
            ]
        );
    }

    #[test]
    fn a_command_without_a_port_is_refused() {
        assert_eq!(
            LocalConfig::new(Vec::<String>::new())
                .validate()
                .map_err(|e| e.what),
            Err("local_command")
        );
        assert!(LocalConfig::new(["sleep", "300"]).validate().is_err());
        assert!(LocalConfig::new(["serve", "{port}"]).validate().is_ok());
        let mut config = LocalConfig::new(["serve", "{port}"]);
        config.bind_host = "localhost".into();
        assert!(config.validate().is_err());
    }
}
