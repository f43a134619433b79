//! Where skiff keeps its state when `--data-dir` is not given: the system
//! location for root, the user's XDG data directory for everyone else.

use std::ffi::OsString;
use std::path::PathBuf;

/// The data directory of a server or agent run by root.
pub const SYSTEM_DATA_DIR: &str = "/var/lib/skiff";

/// The default data directory of this process, or `None` when it is not root
/// and neither `XDG_DATA_HOME` nor `HOME` names a directory.
pub fn default_data_dir() -> Option<PathBuf> {
    let effective_uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| effective_uid_from_proc_status(&status));
    default_data_dir_for(
        effective_uid,
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
}

/// The default data directory for a process with this effective uid (unknown
/// counts as not root) and these values of `XDG_DATA_HOME` and `HOME`.
///
/// As the XDG base directory spec says, an `XDG_DATA_HOME` that is empty or
/// relative is ignored and `$HOME/.local/share` used instead.
pub fn default_data_dir_for(
    effective_uid: Option<u32>,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    if effective_uid == Some(0) {
        return Some(PathBuf::from(SYSTEM_DATA_DIR));
    }
    let xdg_data_home = xdg_data_home
        .map(PathBuf::from)
        .filter(|path| path.is_absolute());
    let data_home = xdg_data_home.or_else(|| {
        home.filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(".local/share"))
    })?;
    Some(data_home.join("skiff"))
}

/// The effective uid from the text of `/proc/self/status`, whose `Uid:` line
/// holds the real, effective, saved and filesystem uids in that order. (Read
/// from procfs because the workspace forbids the `unsafe` that `geteuid`
/// needs.)
pub fn effective_uid_from_proc_status(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_default(
        effective_uid: Option<u32>,
        xdg_data_home: Option<&str>,
        home: Option<&str>,
        expect: Option<&str>,
    ) {
        let actual = default_data_dir_for(
            effective_uid,
            xdg_data_home.map(OsString::from),
            home.map(OsString::from),
        );
        assert_eq!(
            actual,
            expect.map(PathBuf::from),
            "uid {effective_uid:?}, XDG_DATA_HOME {xdg_data_home:?}, HOME {home:?}"
        );
    }

    #[test]
    fn default_data_dir_by_uid_and_environment() {
        let root = Some(0);
        let user = Some(1000);
        // Root always gets the system location, whatever its environment.
        check_default(root, Some("/x"), Some("/root"), Some("/var/lib/skiff"));
        check_default(root, None, None, Some("/var/lib/skiff"));
        // Others: XDG_DATA_HOME when absolute, else ~/.local/share.
        check_default(user, Some("/data"), Some("/home/a"), Some("/data/skiff"));
        check_default(
            user,
            None,
            Some("/home/a"),
            Some("/home/a/.local/share/skiff"),
        );
        check_default(
            user,
            Some(""),
            Some("/home/a"),
            Some("/home/a/.local/share/skiff"),
        );
        check_default(
            user,
            Some("rel"),
            Some("/home/a"),
            Some("/home/a/.local/share/skiff"),
        );
        check_default(user, None, None, None);
        check_default(user, None, Some(""), None);
        // An unknown uid is treated as not root.
        check_default(
            None,
            None,
            Some("/home/a"),
            Some("/home/a/.local/share/skiff"),
        );
    }

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        let status = "Name:\tskiff\nUmask:\t0022\nUid:\t1000\t0\t1000\t1000\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid_from_proc_status(status), Some(0));
        assert_eq!(effective_uid_from_proc_status("Name:\tskiff\n"), None);
        assert_eq!(effective_uid_from_proc_status("Uid:\t1000\n"), None);
        assert_eq!(effective_uid_from_proc_status("Uid:\t1\tx\t1\t1\n"), None);
    }

    #[test]
    fn this_process_status_has_an_effective_uid() {
        let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
        assert!(
            effective_uid_from_proc_status(&status).is_some(),
            "{status}"
        );
    }
}
