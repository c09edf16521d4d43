//! Flags from files: Debian's memcached.conf format (`--conf`) and TOML
//! (`--config`). Both become command-line tokens, so a file accepts
//! exactly what the command line does.

use super::ConfigError;

/// Lines of a conf file that are not flags: Debian's `logfile PATH`,
/// which its start scripts turn into a redirect of the daemon's output.
const DIRECTIVES: &[(&str, &str)] = &[("logfile", "--logfile")];

/// Flags from a Debian-style conf file: one or more flags per line, as
/// the shell would split them (Debian's wrapper joins the lines into one
/// command), `#` starts a comment, and `logfile PATH` names the log.
///
/// # Errors
/// `ConfigError::File` when the file cannot be read or a line is neither
/// a flag nor a known directive.
pub fn conf_args(path: &str) -> Result<Vec<String>, ConfigError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('-') {
            // As sh splits it: Debian's wrapper hands the lines to the
            // shell, so `-o "hashpower=20"` loses its quotes there.
            let words = shlex::split(line).ok_or_else(|| ConfigError::File {
                path: path.to_string(),
                reason: format!("line {}: unbalanced quotes: {line}", n + 1),
            })?;
            out.extend(words);
            continue;
        }
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match DIRECTIVES.iter().find(|(d, _)| *d == word) {
            Some((_, flag)) if !rest.trim().is_empty() => {
                out.push(flag.to_string());
                out.push(rest.trim().to_string());
            }
            _ => {
                return Err(ConfigError::File {
                    path: path.to_string(),
                    reason: format!("line {}: not a flag or a known directive: {line}", n + 1),
                })
            }
        }
    }
    Ok(out)
}

/// Flags from a TOML file: `key = value` per long flag name, arrays for
/// repeatable flags, `true` for switches.
///
/// # Errors
/// `ConfigError::File` when the file cannot be read, is not TOML, or
/// holds a value that is not a string, number, boolean or array of them.
pub fn toml_args(path: &str) -> Result<Vec<String>, ConfigError> {
    let text = read(path)?;
    let bad = |reason: String| ConfigError::File {
        path: path.to_string(),
        reason,
    };
    let table: toml::Table = text.parse().map_err(|e| bad(format!("{e}")))?;
    let mut out = Vec::new();
    for (k, v) in table {
        let flag = format!("--{k}");
        let scalar = |v: &toml::Value| -> Result<String, ConfigError> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                other => Err(bad(format!("unsupported value for {k}: {other:?}"))),
            }
        };
        match &v {
            toml::Value::Boolean(true) => out.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for i in items {
                    out.push(flag.clone());
                    out.push(scalar(i)?);
                }
            }
            other => {
                out.push(flag);
                out.push(scalar(other)?);
            }
        }
    }
    Ok(out)
}

fn read(path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_string(),
        reason: format!("cannot read: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> String {
        let p = std::env::temp_dir().join(format!("cc-{name}-{}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn conf_lines_become_flags() {
        let p = temp(
            "conf",
            "# comment\n-d\nlogfile /var/log/x.log\n\n-m 64   # trailing\n-vv\n-l 127.0.0.1 -c 10\n",
        );
        let a = conf_args(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(
            a,
            [
                "-d",
                "--logfile",
                "/var/log/x.log",
                "-m",
                "64",
                "-vv",
                "-l",
                "127.0.0.1",
                "-c",
                "10"
            ]
        );
    }

    #[test]
    fn conf_lines_are_split_as_the_shell_splits_them() {
        let p = temp("quoted", "-o \"hashpower=20\"\n-l '127.0.0.1'\n");
        let a = conf_args(&p).unwrap();
        assert_eq!(a, ["-o", "hashpower=20", "-l", "127.0.0.1"]);
        std::fs::write(&p, "-m 64\n-o \"x\n").unwrap();
        let e = conf_args(&p).unwrap_err();
        std::fs::remove_file(&p).unwrap();
        assert!(e.to_string().contains("line 2: unbalanced quotes"), "{e}");
    }

    #[test]
    fn unknown_directive_names_its_line() {
        let p = temp("bad", "-m 64\nbogus 1\n");
        let e = conf_args(&p).unwrap_err();
        std::fs::remove_file(&p).unwrap();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(conf_args("/nonexistent/x.conf").is_err());
    }

    #[test]
    fn toml_becomes_flags() {
        let p = temp(
            "toml",
            "port = 1234\nlisten = [\"127.0.0.1\", \"::1\"]\ndisable-evictions = true\nextended = [\"eviction=fifo\"]\n",
        );
        let a = toml_args(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(a.windows(2).any(|w| w == ["--port", "1234"]));
        assert!(a.windows(2).any(|w| w == ["--listen", "::1"]));
        assert!(a.contains(&"--disable-evictions".to_string()));
    }
}
