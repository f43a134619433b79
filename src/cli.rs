//! The command line: subcommands and their flags, parsed with clap derive.
//! Parsing only; what each subcommand does lives in the library crates.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use skiff_control::store::EtcdConfig;

/// skiff: a WebAssembly-first orchestrator. One binary runs a
/// Kubernetes-compatible control plane and the node agent.
#[derive(Debug, Parser)]
#[command(name = "skiff", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `skiff`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (API server, store, scheduler, controllers,
    /// dashboard) and, unless --no-agent, an agent for this node.
    Server(ServerArgs),
    /// Run a node agent that joins the cluster of a server.
    Agent(AgentArgs),
    /// Run a command in a container of a pod, as `kubectl exec`: skiff
    /// exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]. Exits with
    /// the command's exit code.
    Exec(ExecArgs),
    /// Push a Wasm component or module to an OCI registry, as a Wasm OCI
    /// artifact (config application/vnd.wasm.config.v0+json, one
    /// application/wasm layer).
    Push(PushArgs),
    /// Fetch the Wasm binary of an OCI reference (a Wasm artifact, or an
    /// image whose single tar layer holds one .wasm file) into a file.
    Pull(PullArgs),
    /// Print the version.
    Version,
}

/// Flags of `skiff server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Directory for the embedded store, certificates and the local agent's
    /// state [default: /var/lib/skiff as root, else $XDG_DATA_HOME/skiff].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address and port the API server and dashboard listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,

    /// Keep cluster state in an etcd cluster instead of the embedded store,
    /// e.g. etcd://h1:2379,h2:2379. Servers sharing one etcd cluster run side
    /// by side.
    #[arg(long, value_name = "URL", value_parser = parse_store_url)]
    pub store: Option<EtcdConfig>,

    /// Run no agent in this process: the server schedules pods onto agents
    /// started with `skiff agent` only.
    #[arg(long)]
    pub no_agent: bool,

    /// Serve the API over plain HTTP instead of HTTPS (bearer tokens still
    /// required, but they cross the network in clear text): only behind a
    /// TLS-terminating proxy or for local experiments.
    #[arg(long)]
    pub insecure_http: bool,

    /// How long a pod stays on a node whose Ready condition is False
    /// before it is evicted, unless it says otherwise (the toleration
    /// added to every pod, as kube-apiserver's flag of the same name).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,

    /// The same for a node that stopped reporting (unreachable).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,

    /// How long a node may go without a heartbeat before it is marked
    /// `Ready=Unknown` and tainted unreachable.
    #[arg(long, value_name = "SECONDS", default_value_t = 40)]
    pub node_monitor_grace_period: u64,

    /// The range node pod CIDRs are allocated from.
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.0/16", value_parser = parse_cluster_cidr)]
    pub cluster_cidr: String,

    /// The local agent's node (unless --no-agent).
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Flags of `skiff agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// URL of the server's API, e.g. https://10.0.0.1:6443.
    #[arg(long, value_name = "URL")]
    pub server: String,

    /// File holding the join token (the server's `<data dir>/node-token`).
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,

    /// The cluster CA certificate (the server's `<data dir>/tls/ca.crt`)
    /// [default: fetched from the server and checked against the token].
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Directory for the agent's state: pod logs, volumes, the module cache
    /// [default: /var/lib/skiff as root, else $XDG_DATA_HOME/skiff].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address and port of the node API, as --node-api-listen.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "node_api_listen")]
    pub listen: Option<SocketAddr>,

    /// The node.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Flags of a node, shared by `skiff agent` and the local agent of
/// `skiff server`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Name of the Node object [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Labels added to the Node beside those the agent detects, e.g.
    /// zone=a,tier=edge.
    #[arg(
        long,
        value_name = "KEY=VALUE,...",
        value_delimiter = ',',
        value_parser = parse_label
    )]
    pub labels: Vec<(String, String)>,

    /// Address and port of the node API (`kubectl logs` goes through it)
    /// [default: the node IP, port 10250].
    #[arg(long = "node-api-listen", value_name = "ADDR:PORT")]
    pub node_api_listen: Option<SocketAddr>,

    /// The address the node reports and serves pods on, e.g. 127.0.0.2 for
    /// a second agent on one machine [default: the address that routes to
    /// the server].
    #[arg(long, value_name = "ADDR")]
    pub node_ip: Option<IpAddr>,

    /// A registry (HOST:PORT) the node may pull from over plain HTTP;
    /// repeat for several.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,

    /// containerd's socket, for OCI containers.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub containerd_socket: PathBuf,

    /// Give each pod an address of its own from this range of local
    /// addresses (e.g. 127.1.0.0/24 on a one-machine cluster) instead of
    /// the node's, so that pods of one node can serve the same port.
    #[arg(long, value_name = "CIDR")]
    pub pod_address_range: Option<String>,

    /// The most pods this node runs.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_pods: u32,

    /// How long the node's Lease lasts without renewal (renewed every
    /// quarter of it).
    #[arg(long, value_name = "SECONDS", default_value_t = 40)]
    pub lease_duration_seconds: u64,
}

/// Flags of `skiff exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pod.
    #[arg(value_name = "POD")]
    pub pod: String,

    /// The pod's namespace [default: the kubeconfig context's, else
    /// default].
    #[arg(short, long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// The container [default: the pod's default-container annotation, or
    /// its only container].
    #[arg(short, long, value_name = "CONTAINER")]
    pub container: Option<String>,

    /// Pass this process's stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,

    /// Give the command a terminal (stderr then comes on stdout).
    #[arg(short = 't', long)]
    pub tty: bool,

    /// The kubeconfig [default: the one `skiff server` wrote into the
    /// default data dir, else ~/.kube/config].
    #[arg(long, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Flags of `skiff push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The .wasm file to push.
    #[arg(value_name = "FILE.wasm")]
    pub file: PathBuf,

    /// Where to push it, e.g. registry.example:5000/apps/hello:v1.
    #[arg(value_name = "REF")]
    pub reference: String,

    /// How to reach the registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Flags of `skiff pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// What to fetch, e.g. registry.example:5000/apps/hello:v1 or
    /// registry.example:5000/apps/hello@sha256:<hex>.
    #[arg(value_name = "REF")]
    pub reference: String,

    /// The file to write [default: the last path segment of the repository
    /// plus .wasm, in the current directory].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// How to reach the registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Registry flags shared by `skiff push` and `skiff pull`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to the registry instead of HTTPS (a local registry
    /// on loopback, for instance).
    #[arg(long)]
    pub insecure: bool,

    /// User name for the registry; the password (or access token) is read
    /// from standard input with --password-stdin. Registries that hand out
    /// bearer tokens get them with these credentials.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the password for --username from standard input (up to the end
    /// of input; one trailing newline is dropped).
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

/// An IPv4 CIDR that /24 node ranges can be carved from.
fn parse_cluster_cidr(text: &str) -> Result<String, String> {
    skiff_control::controllers::node_lifecycle::CidrAllocator::new(text, 24)
        .map(|_| text.to_owned())
        .map_err(|error| error.to_string())
}

/// Parses `--store etcd://host:port[,host:port...][/prefix]` with the
/// store's own parser, so the flag and the library agree on the syntax.
fn parse_store_url(url: &str) -> Result<EtcdConfig, String> {
    EtcdConfig::from_url(url).map_err(|error| error.to_string())
}

/// Parses one `key=value` label; the value may be empty, as in Kubernetes.
fn parse_label(label: &str) -> Result<(String, String), String> {
    match label.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {label:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn store_urls_use_the_store_parser() {
        assert!(parse_store_url("etcd://h1:2379,h2:2379").is_ok());
        let error = parse_store_url("http://h1:2379").unwrap_err();
        assert!(error.contains("http://h1:2379"), "{error}");
    }

    #[test]
    fn labels() {
        assert_eq!(parse_label("zone=a"), Ok(("zone".into(), "a".into())));
        assert_eq!(
            parse_label("skiff.dev/x="),
            Ok(("skiff.dev/x".into(), String::new()))
        );
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_label("zone").is_err());
        assert!(parse_label("=a").is_err());
    }

    #[test]
    fn server_defaults_and_flags() {
        let Command::Server(args) = Cli::parse_from(["skiff", "server"]).command else {
            panic!("not server");
        };
        assert_eq!(args.listen, "127.0.0.1:6443".parse().unwrap());
        assert_eq!(
            (
                args.data_dir,
                args.store.is_none(),
                args.no_agent,
                args.insecure_http
            ),
            (None, true, false, false)
        );

        let cli = Cli::parse_from([
            "skiff",
            "server",
            "--data-dir",
            "/d",
            "--listen",
            "0.0.0.0:7443",
            "--store",
            "etcd://h1:2379,h2:2379",
            "--no-agent",
            "--insecure-http",
        ]);
        let Command::Server(args) = cli.command else {
            panic!("not server")
        };
        assert_eq!(args.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(args.listen, "0.0.0.0:7443".parse().unwrap());
        assert_eq!(
            args.store.as_ref().map(|c| c.endpoint_addresses().to_vec()),
            Some(vec!["h1:2379".to_owned(), "h2:2379".to_owned()])
        );
        assert!(args.no_agent);
        assert!(args.insecure_http);
    }

    #[test]
    fn agent_flags() {
        let cli = Cli::parse_from([
            "skiff",
            "agent",
            "--server",
            "https://s:6443",
            "--token-file",
            "/t",
            "--name",
            "n1",
            "--node-ip",
            "127.0.0.2",
            "--listen",
            "127.0.0.2:10250",
            "--insecure-registry",
            "127.0.0.1:5000",
            "--labels",
            "zone=a,tier=edge",
            "--labels",
            "gpu=",
        ]);
        let Command::Agent(args) = cli.command else {
            panic!("not agent")
        };
        assert_eq!(args.server, "https://s:6443");
        assert_eq!(args.token_file, PathBuf::from("/t"));
        assert_eq!(args.listen, Some("127.0.0.2:10250".parse().unwrap()));
        let args = args.node;
        assert_eq!(args.name.as_deref(), Some("n1"));
        assert_eq!(args.node_ip, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(args.insecure_registries, ["127.0.0.1:5000"]);
        let labels = [("zone", "a"), ("tier", "edge"), ("gpu", "")];
        assert_eq!(
            args.labels,
            labels.map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn push_and_pull_flags() {
        let cli = Cli::parse_from([
            "skiff",
            "push",
            "app.wasm",
            "127.0.0.1:5000/app:v1",
            "--insecure",
            "--username",
            "ci",
            "--password-stdin",
        ]);
        let Command::Push(args) = cli.command else {
            panic!("not push")
        };
        assert_eq!(args.file, PathBuf::from("app.wasm"));
        assert_eq!(args.reference, "127.0.0.1:5000/app:v1");
        assert!(args.registry.insecure && args.registry.password_stdin);
        assert_eq!(args.registry.username.as_deref(), Some("ci"));

        let cli = Cli::parse_from(["skiff", "pull", "r.io/a/b:v1", "-o", "/tmp/b.wasm"]);
        let Command::Pull(args) = cli.command else {
            panic!("not pull")
        };
        assert_eq!(args.reference, "r.io/a/b:v1");
        assert_eq!(args.output, Some(PathBuf::from("/tmp/b.wasm")));
        assert!(!args.registry.insecure);
        assert_eq!(args.registry.username, None);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for argv in [
            &["skiff", "server", "--listen", "localhost"][..],
            &["skiff", "server", "--store", "etcd://h1:port"],
            &["skiff", "agent"],
            &["skiff", "agent", "--server", "https://s:6443"],
            &[
                "skiff",
                "agent",
                "--server",
                "https://s:6443",
                "--token-file",
                "/t",
                "--labels",
                "nokey",
            ],
            &["skiff", "push", "app.wasm"],
            &["skiff", "pull", "r.io/a:v1", "--username", "ci"],
            &["skiff", "pull", "r.io/a:v1", "--password-stdin"],
        ] {
            let error = Cli::try_parse_from(argv).expect_err(&argv.join(" "));
            assert_eq!(error.exit_code(), 2, "{}", argv.join(" "));
        }
    }
}
