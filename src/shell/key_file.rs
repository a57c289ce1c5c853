//! The failover key file. The core never opens files: before the
//! [`Appliance`](twinwall::Appliance) is built (and on every reload) the shell
//! reads `[failover] key_file`, checks it, and hands the core the key as
//! [`KeySource::Inline`].
//!
//! A relative path is taken relative to the directory of the config file, so
//! a config and its key can travel together.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use twinwall::config::KeySource;
use twinwall::ha::crypto::{KeyError, KeyMaterial};
use twinwall::Config;

/// Why the failover key file cannot be used. Each message names the file
/// and says how to fix it.
#[derive(Debug)]
pub enum KeyFileError {
    /// [failover] key_file {0}: does not exist
    Missing(PathBuf),
    /// [failover] key_file {0}: cannot read: {1}
    Unreadable(PathBuf, io::Error),
    /// [failover] key_file {0}: {1}
    BadKey(PathBuf, KeyError),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Missing(p) => write!(
                f,
                "[failover] key_file {}: no such file; create it with the same key on both units, e.g. \
                 `umask 077; openssl rand -hex 32 > {}`, or fix the path (relative paths are taken from the \
                 config file's directory)",
                p.display(),
                p.display()
            ),
            KeyFileError::Unreadable(p, e) => write!(
                f,
                "[failover] key_file {}: cannot read: {e}; twinwall must be able to read it (run as root, or \
                 `chown` it to the user twinwall runs as and `chmod 600` it)",
                p.display()
            ),
            KeyFileError::BadKey(p, e) => write!(f, "[failover] key_file {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// Where `key_file` points, relative paths taken from the config's directory.
fn key_path(cfg_path: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        return p.to_owned();
    }
    match cfg_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p.to_owned(),
    }
}

/// If the config names a key file, read and check it and put the key inline.
/// Returns a warning to log loudly (group/other may read the file) when the
/// key is usable but exposed.
pub fn resolve_key(cfg: &mut Config, cfg_path: &Path) -> Result<Option<String>, KeyFileError> {
    let Some(fo) = cfg.failover.as_mut() else { return Ok(None) };
    let KeySource::File(file) = &fo.key else { return Ok(None) };
    let path = key_path(cfg_path, file);
    let (key, warning) = read_key_file(&path)?;
    fo.key = KeySource::Inline(key);
    Ok(warning)
}

/// The key in `path`, whitespace trimmed, checked the way the core will
/// check it; and a warning if the file's mode lets group or others in.
pub fn read_key_file(path: &Path) -> Result<(String, Option<String>), KeyFileError> {
    let text = fs::read_to_string(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => KeyFileError::Missing(path.to_owned()),
        _ => KeyFileError::Unreadable(path.to_owned(), e),
    })?;
    let key = text.trim().to_owned();
    KeyMaterial::from_key_text(&key).map_err(|e| KeyFileError::BadKey(path.to_owned(), e))?;
    // The file was readable, so its metadata is too.
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "[failover] key_file {}: mode {mode:04o} lets other users read the failover key; anyone who has it \
             can forge and read state sync. Fix with `chmod 600 {}` (continuing anyway)",
            path.display(),
            path.display()
        )
    });
    Ok((key, warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let d = std::env::temp_dir().join(format!("twinwall-keyfile-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap();
            TempDir(d)
        }
        fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let p = self.0.join(name);
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn reads_and_trims() {
        let d = TempDir::new("trim");
        let p = d.write("k", &format!("  {HEX}\n\n"), 0o600);
        let (key, warning) = read_key_file(&p).unwrap();
        assert_eq!(key, HEX);
        assert_eq!(warning, None);
    }

    #[test]
    fn wide_permissions_warn_but_load() {
        let d = TempDir::new("perm");
        let p = d.write("k", HEX, 0o644);
        let (key, warning) = read_key_file(&p).unwrap();
        assert_eq!(key, HEX);
        let w = warning.expect("0644 must warn");
        assert!(w.contains("0644") && w.contains("chmod 600") && w.contains(&p.display().to_string()), "{w}");
    }

    #[test]
    fn missing_file_says_how_to_fix() {
        let e = read_key_file(Path::new("/nonexistent/twinwall.key")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/twinwall.key") && e.contains("no such file") && e.contains("openssl"), "{e}");
    }

    #[test]
    fn unreadable_file() {
        // A directory cannot be read as text; this works as root too.
        let d = TempDir::new("dir");
        let e = read_key_file(&d.0).unwrap_err();
        assert!(matches!(e, KeyFileError::Unreadable(..)), "{e:?}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn bad_key_names_the_file() {
        let d = TempDir::new("bad");
        let p = d.write("k", "short\n", 0o600);
        let e = read_key_file(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("[failover] key_file {}:", p.display())), "{e}");
        assert!(e.contains("16"), "{e}");
        let p = d.write("e", " \n", 0o600);
        assert!(read_key_file(&p).unwrap_err().to_string().contains("empty"));
    }

    fn config_with_key(key: KeySource) -> Config {
        use twinwall::config::{FailoverCfg, Mode, Unit};
        use twinwall::time::Duration;
        Config {
            hostname: "fw".into(),
            mode: Mode::Routed,
            control_socket: "/tmp/x".into(),
            interfaces: vec![],
            routes: vec![],
            acls: vec![],
            nat: vec![],
            bridge_groups: vec![],
            timeouts: Default::default(),
            limits: Default::default(),
            failover: Some(FailoverCfg {
                unit: Unit::Primary,
                interface: "fo0".into(),
                local: [169, 254, 73, 1].into(),
                peer: [169, 254, 73, 2].into(),
                port: 7340,
                hello_group: [239, 255, 73, 40].into(),
                hello_port: 7341,
                key,
                poll: Duration::from_millis(50),
                hold: Duration::from_millis(250),
                interface_poll: Duration::from_millis(50),
                interface_hold: Duration::from_millis(250),
                preempt: None,
            }),
        }
    }

    #[test]
    fn resolve_puts_the_key_inline() {
        let d = TempDir::new("resolve");
        d.write("fo.key", &format!("{HEX}\n"), 0o600);
        // Relative to the config file's directory.
        let cfg_path = d.0.join("unit.toml");
        let mut cfg = config_with_key(KeySource::File("fo.key".into()));
        assert_eq!(resolve_key(&mut cfg, &cfg_path).unwrap(), None);
        assert_eq!(cfg.failover.as_ref().unwrap().key, KeySource::Inline(HEX.into()));
        // Inline keys and configs without failover are left alone.
        let before = cfg.clone();
        assert_eq!(resolve_key(&mut cfg, &cfg_path).unwrap(), None);
        assert_eq!(cfg, before);
        cfg.failover = None;
        assert_eq!(resolve_key(&mut cfg, &cfg_path).unwrap(), None);
        // A missing file fails and leaves the config as it was.
        let mut cfg = config_with_key(KeySource::File("nope.key".into()));
        let e = resolve_key(&mut cfg, &cfg_path).unwrap_err();
        assert!(matches!(e, KeyFileError::Missing(ref p) if p == &d.0.join("nope.key")), "{e:?}");
        assert_eq!(cfg.failover.unwrap().key, KeySource::File("nope.key".into()));
    }

    #[test]
    fn relative_paths_follow_the_config() {
        assert_eq!(key_path(Path::new("/etc/tw/a.toml"), "fo.key"), PathBuf::from("/etc/tw/fo.key"));
        assert_eq!(key_path(Path::new("a.toml"), "fo.key"), PathBuf::from("fo.key"));
        assert_eq!(key_path(Path::new("/etc/tw/a.toml"), "/k"), PathBuf::from("/k"));
    }
}
