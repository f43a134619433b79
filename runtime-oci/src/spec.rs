//! The OCI runtime spec of a container, from its configuration, its image's
//! configuration and its sandbox: pure, so that every choice is testable
//! without containerd.
//!
//! What it holds, as containerd's CRI plugin builds it:
//! - the process: argv by Kubernetes' rules (`command` replaces the
//!   entrypoint, `args` the image's `Cmd`), the image's environment then
//!   the container's (a repeated name takes its last value), the working
//!   directory, the user (numeric, or `root`) and extra groups;
//! - containerd's default capability set, changed by `capabilities.add` /
//!   `drop`; `no_new_privs` unless privilege escalation is allowed;
//! - the default mounts (proc, dev, devpts, shm, mqueue, sysfs, cgroup),
//!   the sandbox's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`,
//!   then the container's bind mounts;
//! - namespaces: its own PID, mount and cgroup namespaces; the sandbox's
//!   IPC and UTS namespaces (joined by path, so every container of a pod
//!   shares them); the node's network until pods get network namespaces;
//! - masked and read-only `/proc` paths, a seccomp filter denying what
//!   Docker's and containerd's default profiles deny, the cgroup (path,
//!   memory and CPU limits, the default device rules);
//! - a privileged container gets every capability, every device, no
//!   seccomp filter and no masked paths.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, LinuxSeccomp,
    LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder, get_default_maskedpaths,
    get_default_readonly_paths,
};
use skiff_sdk::runtime::{ContainerConfig, RuntimeError};

/// The capabilities a container gets unless it adds or drops some:
/// containerd's (and Docker's) default set.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Syscalls the default seccomp filter refuses with EPERM, each with the
/// capability that lifts the refusal: what Docker's and containerd's
/// default profiles leave out for a container without that capability
/// (kernel modules, clocks, mounts and namespaces, keyrings, BPF and perf,
/// reboot, swap, accounting, quotas, NUMA policy, raw I/O ports).
pub const DENIED_SYSCALLS: [(&str, Option<Capability>); 37] = [
    ("acct", Some(Capability::SysPacct)),
    ("add_key", None),
    ("bpf", Some(Capability::SysAdmin)),
    ("clock_adjtime", Some(Capability::SysTime)),
    ("clock_settime", Some(Capability::SysTime)),
    ("create_module", Some(Capability::SysModule)),
    ("delete_module", Some(Capability::SysModule)),
    ("finit_module", Some(Capability::SysModule)),
    ("fsconfig", Some(Capability::SysAdmin)),
    ("fsmount", Some(Capability::SysAdmin)),
    ("fsopen", Some(Capability::SysAdmin)),
    ("fspick", Some(Capability::SysAdmin)),
    ("get_kernel_syms", Some(Capability::SysModule)),
    ("get_mempolicy", Some(Capability::SysNice)),
    ("init_module", Some(Capability::SysModule)),
    ("ioperm", Some(Capability::SysRawio)),
    ("iopl", Some(Capability::SysRawio)),
    ("kexec_file_load", Some(Capability::SysBoot)),
    ("kexec_load", Some(Capability::SysBoot)),
    ("keyctl", None),
    ("lookup_dcookie", Some(Capability::SysAdmin)),
    ("mbind", Some(Capability::SysNice)),
    ("mount", Some(Capability::SysAdmin)),
    ("move_mount", Some(Capability::SysAdmin)),
    ("move_pages", Some(Capability::SysNice)),
    ("open_tree", Some(Capability::SysAdmin)),
    ("perf_event_open", Some(Capability::SysAdmin)),
    ("pivot_root", Some(Capability::SysAdmin)),
    ("quotactl", Some(Capability::SysAdmin)),
    ("reboot", Some(Capability::SysBoot)),
    ("request_key", None),
    ("setns", Some(Capability::SysAdmin)),
    ("settimeofday", Some(Capability::SysTime)),
    ("swapoff", Some(Capability::SysAdmin)),
    ("swapon", Some(Capability::SysAdmin)),
    ("umount2", Some(Capability::SysAdmin)),
    ("unshare", Some(Capability::SysAdmin)),
];

/// The CPU quota period (CFS), as the kubelet sets it: 100 ms.
const CPU_PERIOD_MICROS: u64 = 100_000;
/// The PATH a container gets when neither its image nor its configuration
/// sets one (containerd's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The errno the seccomp filter answers with.
const EPERM: u32 = 1;

/// What a container shares with its pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxView {
    /// The sandbox's IPC namespace (a bind-mounted nsfs file).
    pub ipc_namespace: PathBuf,
    /// The sandbox's UTS namespace, whose hostname is the pod's.
    pub uts_namespace: PathBuf,
    /// The sandbox's network namespace; `None` for the node's network.
    pub network_namespace: Option<PathBuf>,
    /// The file mounted at `/etc/hosts`.
    pub hosts_file: PathBuf,
    /// The file mounted at `/etc/hostname`.
    pub hostname_file: PathBuf,
    /// The file mounted at `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// The container's cgroup, e.g. `/skiff/pod<uid>/<container id>`.
    pub cgroups_path: String,
    /// The pod's hostname (already that of its UTS namespace).
    pub hostname: String,
}

/// The runtime spec of `config` running `image` in `sandbox`.
///
/// Fails with `InvalidArgument` for what cannot run: no command at all, a
/// user name (only numeric users and `root` are resolved), an unknown
/// capability.
pub fn build(
    config: &ContainerConfig,
    image: &ImageConfiguration,
    sandbox: &SandboxView,
    annotations: BTreeMap<String, String>,
) -> Result<Spec, RuntimeError> {
    let image_config = image.config().as_ref();
    let args = argv(
        config,
        image_config.and_then(|c| c.entrypoint().as_deref()),
        image_config.and_then(|c| c.cmd().as_deref()),
    )?;
    let env = environment(
        image_config.and_then(|c| c.env().as_deref()).unwrap_or(&[]),
        &config.env,
    );
    let cwd = config
        .working_dir
        .clone()
        .or_else(|| {
            image_config
                .and_then(|c| c.working_dir().clone())
                .filter(|d| !d.is_empty())
        })
        .unwrap_or_else(|| "/".to_owned());
    let (uid, image_gid) = user(config, image_config.and_then(|c| c.user().as_deref()))?;
    let gid = config.security.run_as_group.or(image_gid).unwrap_or(0);
    let security = &config.security;
    let privileged = security.privileged;

    let capabilities = capabilities(security)?;
    let granted = capabilities.clone();
    // Nothing inheritable or ambient: a process the container runs as
    // another user gets no capabilities from it.
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(capabilities.clone())
        .effective(capabilities.clone())
        .permitted(capabilities)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(spec_error)?;
    let no_new_privileges = !privileged && security.allow_privilege_escalation != Some(true);
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .additional_gids(security.supplemental_groups.clone())
                .build()
                .map_err(spec_error)?,
        )
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(no_new_privileges)
        .build()
        .map_err(spec_error)?;

    let root = RootBuilder::default()
        .path("rootfs")
        .readonly(security.read_only_root_filesystem)
        .build()
        .map_err(spec_error)?;

    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Pid, None)?,
        namespace(LinuxNamespaceType::Mount, None)?,
        namespace(LinuxNamespaceType::Cgroup, None)?,
        namespace(LinuxNamespaceType::Ipc, Some(sandbox.ipc_namespace.clone()))?,
        namespace(LinuxNamespaceType::Uts, Some(sandbox.uts_namespace.clone()))?,
    ];
    if let Some(network) = &sandbox.network_namespace {
        namespaces.push(namespace(
            LinuxNamespaceType::Network,
            Some(network.clone()),
        )?);
    }

    let mut resources = LinuxResourcesBuilder::default().devices(device_rules(privileged)?);
    if let Some(limit) = config.resources.memory_limit_bytes {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit)
                .build()
                .map_err(spec_error)?,
        );
    }
    if let Some(millis) = config.resources.cpu_limit_millis {
        // The kubelet's rule: quota = millicores × period / 1000, at least
        // 1 ms.
        let quota = (millis * CPU_PERIOD_MICROS / 1000).max(1000);
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(i64::try_from(quota).unwrap_or(i64::MAX))
                .period(CPU_PERIOD_MICROS)
                .build()
                .map_err(spec_error)?,
        );
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(&sandbox.cgroups_path))
        .resources(resources.build().map_err(spec_error)?);
    if privileged {
        linux = linux.masked_paths(Vec::new()).readonly_paths(Vec::new());
    } else {
        linux = linux
            .masked_paths(masked_paths())
            .readonly_paths(get_default_readonly_paths())
            .seccomp(seccomp(&granted)?);
    }

    SpecBuilder::default()
        .version("1.0.2")
        .hostname(sandbox.hostname.clone())
        .process(process)
        .root(root)
        .mounts(mounts(config, sandbox, privileged)?)
        .linux(linux.build().map_err(spec_error)?)
        .annotations(
            annotations
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .map_err(spec_error)
}

/// argv by Kubernetes' rules.
fn argv(
    config: &ContainerConfig,
    entrypoint: Option<&[String]>,
    cmd: Option<&[String]>,
) -> Result<Vec<String>, RuntimeError> {
    let entrypoint = entrypoint.unwrap_or(&[]);
    let cmd = cmd.unwrap_or(&[]);
    let argv: Vec<String> = match (config.command.is_empty(), config.args.is_empty()) {
        (false, _) => config.command.iter().chain(&config.args).cloned().collect(),
        (true, false) => entrypoint.iter().chain(&config.args).cloned().collect(),
        (true, true) => entrypoint.iter().chain(cmd).cloned().collect(),
    };
    if argv.is_empty() {
        return Err(RuntimeError::InvalidArgument {
            field: "command".into(),
            message: "no command specified: neither the container nor its image sets one".into(),
        });
    }
    Ok(argv)
}

/// The image's `NAME=value` list, then the container's variables; a name
/// set again keeps its place and takes the new value. PATH defaults to
/// containerd's.
fn environment(image: &[String], container: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |name: &str, value: &str| {
        if values.insert(name.to_owned(), value.to_owned()).is_none() {
            names.push(name.to_owned());
        }
    };
    for entry in image {
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        set(name, value);
    }
    for (name, value) in container {
        set(name, value);
    }
    if !values.contains_key("PATH") {
        names.insert(0, "PATH".to_owned());
        values.insert("PATH".to_owned(), DEFAULT_PATH.to_owned());
    }
    names
        .into_iter()
        .map(|name| {
            let value = &values[&name];
            format!("{name}={value}")
        })
        .collect()
}

/// The process's uid and the group the image's `USER` names, if any.
fn user(
    config: &ContainerConfig,
    image_user: Option<&str>,
) -> Result<(u32, Option<u32>), RuntimeError> {
    let image = image_user.filter(|u| !u.is_empty());
    let (image_uid, image_gid) = match image {
        None => (None, None),
        Some(spec) => {
            let (user, group) = match spec.split_once(':') {
                Some((user, group)) => (user, Some(group)),
                None => (spec, None),
            };
            let numeric = |name: &str, what: &str| -> Result<u32, RuntimeError> {
                match name {
                    "root" => Ok(0),
                    _ => name.parse().map_err(|_| RuntimeError::InvalidArgument {
                        field: "image.config.User".into(),
                        message: format!(
                            "the image runs as {what} {name:?}: only numeric IDs and root are \
                             supported; set securityContext.runAsUser/runAsGroup"
                        ),
                    }),
                }
            };
            let uid = match config.security.run_as_user {
                Some(_) => None,
                None => Some(numeric(user, "user")?),
            };
            let gid = match (group, config.security.run_as_group) {
                (Some(group), None) => Some(numeric(group, "group")?),
                _ => None,
            };
            (uid, gid)
        }
    };
    Ok((
        config.security.run_as_user.or(image_uid).unwrap_or(0),
        image_gid,
    ))
}

/// The default set with `add` and `drop` applied (`ALL` in either); every
/// capability when privileged.
fn capabilities(
    security: &skiff_sdk::runtime::Security,
) -> Result<HashSet<Capability>, RuntimeError> {
    if security.privileged {
        return Ok(all_capabilities());
    }
    let parse = |name: &str| -> Result<Capability, RuntimeError> {
        let bare = name.strip_prefix("CAP_").unwrap_or(name);
        bare.to_ascii_uppercase()
            .parse()
            .map_err(|_| RuntimeError::InvalidArgument {
                field: "securityContext.capabilities".into(),
                message: format!("unknown capability {name:?}"),
            })
    };
    let is_all = |name: &String| name.eq_ignore_ascii_case("ALL");
    let mut set: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
    if security.capabilities_add.iter().any(is_all) {
        set = all_capabilities();
    } else {
        for name in &security.capabilities_add {
            set.insert(parse(name)?);
        }
    }
    if security.capabilities_drop.iter().any(is_all) {
        set.clear();
    } else {
        for name in &security.capabilities_drop {
            set.remove(&parse(name)?);
        }
    }
    // Added back after a drop of ALL, as the kubelet does.
    if security.capabilities_drop.iter().any(is_all) {
        for name in security.capabilities_add.iter().filter(|n| !is_all(n)) {
            set.insert(parse(name)?);
        }
    }
    Ok(set)
}

/// Every capability the kernels skiff runs on know.
fn all_capabilities() -> HashSet<Capability> {
    use Capability::*;
    [
        AuditControl,
        AuditRead,
        AuditWrite,
        BlockSuspend,
        Bpf,
        CheckpointRestore,
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        IpcLock,
        IpcOwner,
        Kill,
        Lease,
        LinuxImmutable,
        MacAdmin,
        MacOverride,
        Mknod,
        NetAdmin,
        NetBindService,
        NetBroadcast,
        NetRaw,
        Perfmon,
        Setgid,
        Setfcap,
        Setpcap,
        Setuid,
        SysAdmin,
        SysBoot,
        SysChroot,
        SysModule,
        SysNice,
        SysPacct,
        SysPtrace,
        SysRawio,
        SysResource,
        SysTime,
        SysTtyConfig,
        Syslog,
        WakeAlarm,
    ]
    .into_iter()
    .collect()
}

fn namespace(
    typ: LinuxNamespaceType,
    path: Option<PathBuf>,
) -> Result<LinuxNamespace, RuntimeError> {
    let mut builder = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(path) = path {
        builder = builder.path(path);
    }
    builder.build().map_err(spec_error)
}

/// containerd's masked paths (the spec crate's defaults plus what
/// containerd adds).
fn masked_paths() -> Vec<String> {
    let mut paths = get_default_maskedpaths();
    for extra in [
        "/proc/asound",
        "/proc/interrupts",
        "/sys/devices/virtual/powercap",
    ] {
        if !paths.iter().any(|p| p == extra) {
            paths.push(extra.to_owned());
        }
    }
    paths
}

/// Deny every device, then allow what a container needs (null, zero, full,
/// random, urandom, tty, console, ptmx and the pty slaves), as containerd's
/// defaults; a privileged container may use every device.
fn device_rules(privileged: bool) -> Result<Vec<LinuxDeviceCgroup>, RuntimeError> {
    let rule =
        |allow: bool, typ: Option<LinuxDeviceType>, major: Option<i64>, minor: Option<i64>| {
            let mut builder = LinuxDeviceCgroupBuilder::default()
                .allow(allow)
                .access("rwm");
            if let Some(typ) = typ {
                builder = builder.typ(typ);
            }
            if let Some(major) = major {
                builder = builder.major(major);
            }
            if let Some(minor) = minor {
                builder = builder.minor(minor);
            }
            builder.build().map_err(spec_error)
        };
    if privileged {
        return Ok(vec![rule(true, None, None, None)?]);
    }
    let char = Some(LinuxDeviceType::C);
    let mut rules = vec![rule(false, None, None, None)?];
    for (major, minor) in [
        (1, Some(3)), // null
        (1, Some(5)), // zero
        (1, Some(7)), // full
        (1, Some(8)), // random
        (1, Some(9)), // urandom
        (5, Some(0)), // tty
        (5, Some(1)), // console
        (5, Some(2)), // ptmx
        (136, None),  // pty slaves
    ] {
        rules.push(rule(true, char, Some(major), minor)?);
    }
    Ok(rules)
}

/// Allow by default, refuse [`DENIED_SYSCALLS`] with EPERM but those the
/// container's capabilities allow.
fn seccomp(granted: &HashSet<Capability>) -> Result<LinuxSeccomp, RuntimeError> {
    let names: Vec<String> = DENIED_SYSCALLS
        .iter()
        .filter(|(_, lifted_by)| lifted_by.is_none_or(|c| !granted.contains(&c)))
        .map(|(name, _)| (*name).to_owned())
        .collect();
    let denied = LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(EPERM)
        .build()
        .map_err(spec_error)?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![denied])
        .build()
        .map_err(spec_error)
}

/// The default mounts, the sandbox's files, then the container's mounts
/// (which win over a default at the same path).
fn mounts(
    config: &ContainerConfig,
    sandbox: &SandboxView,
    privileged: bool,
) -> Result<Vec<Mount>, RuntimeError> {
    let mount = |destination: &str, typ: &str, source: &str, options: &[&str]| {
        MountBuilder::default()
            .destination(destination)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
            .build()
            .map_err(spec_error)
    };
    let bind = |destination: &str, source: &PathBuf, read_only: bool| {
        let mut options = vec!["rbind", "rprivate"];
        options.push(if read_only { "ro" } else { "rw" });
        mount(destination, "bind", &source.to_string_lossy(), &options)
    };
    let sys_mode = if privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        )?,
        bind("/etc/hosts", &sandbox.hosts_file, false)?,
        bind("/etc/hostname", &sandbox.hostname_file, false)?,
        bind("/etc/resolv.conf", &sandbox.resolv_conf, false)?,
    ];
    for (index, user) in config.mounts.iter().enumerate() {
        if !user.container_path.starts_with('/') {
            return Err(RuntimeError::InvalidArgument {
                field: format!("mounts[{index}].container_path"),
                message: format!("{:?} is not absolute", user.container_path),
            });
        }
        let destination = user.container_path.trim_end_matches('/');
        let destination = if destination.is_empty() {
            "/"
        } else {
            destination
        };
        mounts.retain(|m| m.destination().to_str() != Some(destination));
        mounts.push(bind(destination, &user.host_path, user.read_only)?);
    }
    Ok(mounts)
}

fn spec_error(error: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::InvalidArgument {
        field: "spec".into(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};
    use skiff_sdk::runtime::{ImageSpec, Mount as UserMount, Resources, Security};

    fn sandbox() -> SandboxView {
        SandboxView {
            ipc_namespace: "/run/skiff/ns/s1/ipc".into(),
            uts_namespace: "/run/skiff/ns/s1/uts".into(),
            network_namespace: None,
            hosts_file: "/var/lib/skiff/s1/hosts".into(),
            hostname_file: "/var/lib/skiff/s1/hostname".into(),
            resolv_conf: "/var/lib/skiff/s1/resolv.conf".into(),
            cgroups_path: "/skiff/podu1/c1".into(),
            hostname: "pod-one".into(),
        }
    }

    fn image(entrypoint: &[&str], cmd: &[&str], env: &[&str], user: &str) -> ImageConfiguration {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let config = ConfigBuilder::default()
            .entrypoint(strings(entrypoint))
            .cmd(strings(cmd))
            .env(strings(env))
            .user(user)
            .working_dir("/srv")
            .build()
            .unwrap();
        ImageConfigurationBuilder::default()
            .config(config)
            .build()
            .unwrap()
    }

    fn container() -> ContainerConfig {
        ContainerConfig::new("c", 0, ImageSpec::new("bb"))
    }

    fn spec(config: &ContainerConfig, image: &ImageConfiguration) -> Spec {
        build(config, image, &sandbox(), BTreeMap::new()).unwrap()
    }

    fn args(spec: &Spec) -> Vec<String> {
        spec.process().as_ref().unwrap().args().clone().unwrap()
    }

    #[test]
    fn argv_follows_kubernetes_rules() {
        let img = image(&["/bin/entry"], &["default"], &[], "");
        assert_eq!(args(&spec(&container(), &img)), ["/bin/entry", "default"]);
        let with_args = container().args(vec!["a".into()]);
        assert_eq!(args(&spec(&with_args, &img)), ["/bin/entry", "a"]);
        let with_command = container().command(vec!["sh".into()]);
        assert_eq!(args(&spec(&with_command, &img)), ["sh"]);
        let both = container()
            .command(vec!["sh".into()])
            .args(vec!["-c".into(), "true".into()]);
        assert_eq!(args(&spec(&both, &img)), ["sh", "-c", "true"]);
        let empty = image(&[], &[], &[], "");
        let error = build(&container(), &empty, &sandbox(), BTreeMap::new()).unwrap_err();
        assert!(error.to_string().contains("no command"), "{error}");
    }

    #[test]
    fn environment_merges_image_and_container() {
        let img = image(&["x"], &[], &["PATH=/bin", "A=image", "B=b"], "");
        let config = container().env("A", "one").env("C", "c").env("A", "two");
        let spec = spec(&config, &img);
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(env, ["PATH=/bin", "A=two", "B=b", "C=c"]);
        let bare = image(&["x"], &[], &[], "");
        let env = super::build(&container(), &bare, &sandbox(), BTreeMap::new())
            .unwrap()
            .process()
            .as_ref()
            .unwrap()
            .env()
            .clone()
            .unwrap();
        assert_eq!(env, [format!("PATH={DEFAULT_PATH}")]);
    }

    #[test]
    fn users_numeric_root_and_overrides() {
        let uid_gid = |config: &ContainerConfig, user: &str| {
            let spec = spec(config, &image(&["x"], &[], &[], user));
            let user = spec.process().as_ref().unwrap().user().clone();
            (user.uid(), user.gid())
        };
        assert_eq!(uid_gid(&container(), ""), (0, 0));
        assert_eq!(uid_gid(&container(), "root"), (0, 0));
        assert_eq!(uid_gid(&container(), "1000:2000"), (1000, 2000));
        assert_eq!(uid_gid(&container(), "65534"), (65534, 0));
        let runs_as = container().security(Security {
            run_as_user: Some(7),
            run_as_group: Some(8),
            ..Security::default()
        });
        assert_eq!(uid_gid(&runs_as, "nobody:nogroup"), (7, 8));
        let error = build(
            &container(),
            &image(&["x"], &[], &[], "nobody"),
            &sandbox(),
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("runAsUser"), "{error}");
    }

    #[test]
    fn hardening_by_default() {
        let spec = spec(&container(), &image(&["x"], &[], &[], ""));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().unwrap();
        let effective = caps.effective().clone().unwrap();
        assert_eq!(effective, DEFAULT_CAPABILITIES.into_iter().collect());
        assert!(!effective.contains(&Capability::SysAdmin));
        assert_eq!(caps.inheritable().clone().unwrap(), HashSet::new());
        assert_eq!(caps.ambient().clone().unwrap(), HashSet::new());
        assert_eq!(spec.hostname().as_deref(), Some("pod-one"));
        let linux = spec.linux().as_ref().unwrap();
        let masked = linux.masked_paths().clone().unwrap();
        assert!(masked.iter().any(|p| p == "/proc/kcore"));
        let readonly = linux.readonly_paths().clone().unwrap();
        assert!(readonly.iter().any(|p| p == "/proc/sys"));
        let seccomp = linux.seccomp().as_ref().unwrap();
        let denied = seccomp.syscalls().as_ref().unwrap()[0].names().clone();
        assert!(denied.iter().any(|n| n == "mount"));
        assert!(denied.iter().any(|n| n == "keyctl"));
        assert!(!spec.root().as_ref().unwrap().readonly().unwrap());
        let namespaces = linux.namespaces().clone().unwrap();
        let ipc = namespaces
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Ipc)
            .unwrap();
        assert_eq!(
            ipc.path().as_deref(),
            Some(std::path::Path::new("/run/skiff/ns/s1/ipc"))
        );
        assert!(
            !namespaces
                .iter()
                .any(|n| n.typ() == LinuxNamespaceType::Network),
            "the node's network"
        );
    }

    #[test]
    fn security_context_changes_capabilities_and_root() {
        let config = container().security(Security {
            capabilities_add: vec!["NET_ADMIN".into()],
            capabilities_drop: vec!["CAP_CHOWN".into(), "kill".into()],
            read_only_root_filesystem: true,
            allow_privilege_escalation: Some(true),
            ..Security::default()
        });
        let spec = spec(&config, &image(&["x"], &[], &[], ""));
        let process = spec.process().as_ref().unwrap();
        let effective = process
            .capabilities()
            .as_ref()
            .unwrap()
            .effective()
            .clone()
            .unwrap();
        assert!(effective.contains(&Capability::NetAdmin));
        let denied = spec
            .linux()
            .as_ref()
            .unwrap()
            .seccomp()
            .as_ref()
            .unwrap()
            .syscalls()
            .as_ref()
            .unwrap()[0]
            .names()
            .clone();
        assert!(denied.iter().any(|n| n == "mount"), "no SYS_ADMIN");
        assert!(!effective.contains(&Capability::Chown));
        assert!(!effective.contains(&Capability::Kill));
        assert_eq!(process.no_new_privileges(), Some(false));
        assert!(spec.root().as_ref().unwrap().readonly().unwrap());

        let drop_all = container().security(Security {
            capabilities_drop: vec!["ALL".into()],
            capabilities_add: vec!["NET_BIND_SERVICE".into()],
            ..Security::default()
        });
        let spec = super::build(
            &drop_all,
            &image(&["x"], &[], &[], ""),
            &sandbox(),
            BTreeMap::new(),
        )
        .unwrap();
        let effective = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
            .effective()
            .clone()
            .unwrap();
        assert_eq!(
            effective,
            [Capability::NetBindService].into_iter().collect()
        );

        let unknown = container().security(Security {
            capabilities_add: vec!["FLY".into()],
            ..Security::default()
        });
        let error = super::build(
            &unknown,
            &image(&["x"], &[], &[], ""),
            &sandbox(),
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown capability \"FLY\""),
            "{error}"
        );
    }

    #[test]
    fn privileged_lifts_the_restrictions() {
        let config = container().security(Security {
            privileged: true,
            ..Security::default()
        });
        let spec = spec(&config, &image(&["x"], &[], &[], ""));
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert_eq!(linux.masked_paths().clone().unwrap(), Vec::<String>::new());
        let effective = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
            .effective()
            .clone()
            .unwrap();
        assert!(effective.contains(&Capability::SysAdmin));
    }

    #[test]
    fn limits_and_mounts() {
        let config = container()
            .resources(Resources {
                memory_limit_bytes: Some(64 << 20),
                cpu_limit_millis: Some(250),
            })
            .mount(UserMount::read_only("/data/cfg", "/etc/config/"))
            .mount(UserMount::read_write("/data/hosts", "/etc/hosts"));
        let spec = spec(&config, &image(&["x"], &[], &[], ""));
        let resources = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(64 << 20));
        let cpu = resources.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(25_000), Some(100_000)));
        let mounts = spec.mounts().clone().unwrap();
        let config_mount = mounts
            .iter()
            .find(|m| m.destination() == std::path::Path::new("/etc/config"))
            .unwrap();
        assert!(
            config_mount
                .options()
                .as_ref()
                .unwrap()
                .iter()
                .any(|o| o == "ro")
        );
        let hosts: Vec<_> = mounts
            .iter()
            .filter(|m| m.destination() == std::path::Path::new("/etc/hosts"))
            .collect();
        assert_eq!(hosts.len(), 1, "the container's mount replaces the default");
        assert_eq!(
            hosts[0].source().as_deref(),
            Some(std::path::Path::new("/data/hosts"))
        );
    }
}
