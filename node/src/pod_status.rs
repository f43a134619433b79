//! A pod's `status` as the kubelet reports it, computed from what the pod
//! worker knows: its containers' states, readiness and restarts. Pure: the
//! worker gathers the facts, this module turns them into a `PodStatus`
//! (phase, conditions, container statuses), so the rules are tested as
//! tables.

use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Where a container is, in the worker's terms.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Not running: being created, backing off, or unable to start.
    Waiting {
        /// The kubelet's reason: `ContainerCreating`, `PodInitializing`,
        /// `CrashLoopBackOff`, `ErrImagePull`, `ImagePullBackOff`,
        /// `CreateContainerConfigError`, `CreateContainerError`,
        /// `RuntimeUnavailable`.
        reason: String,
        /// Details, e.g. the pull error.
        message: Option<String>,
    },
    /// Running since `started_at`.
    Running {
        /// When it started.
        started_at: Timestamp,
    },
    /// Ended.
    Terminated(Terminated),
}

/// How a container instance ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    /// Its exit code.
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, ...
    pub reason: Option<String>,
    /// The runtime's message, e.g. the trap.
    pub message: Option<String>,
    /// When it started, if it did.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// `<runtime>://<id>`.
    pub container_id: Option<String>,
}

/// One container's facts.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerFacts {
    /// The container's name.
    pub name: String,
    /// Its image, as the spec names it.
    pub image: String,
    /// The pulled image's `repository@digest`, once pulled.
    pub image_id: Option<String>,
    /// `<runtime>://<id>` of the current instance.
    pub container_id: Option<String>,
    /// Where it is.
    pub state: State,
    /// How the previous instance ended.
    pub last_terminated: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Whether it passes its readiness probe (or has none and runs).
    pub ready: bool,
    /// Whether its startup probe passed (or it has none and runs).
    pub started: bool,
}

/// Why the whole pod failed, when it did (`DeadlineExceeded`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct PodFailure {
    /// The pod's `status.reason`.
    pub reason: String,
    /// The pod's `status.message`.
    pub message: String,
}

/// What [`pod_status`] needs.
#[derive(Clone, Debug)]
pub struct PodFacts {
    /// The node's address.
    pub host_ip: IpAddr,
    /// The pod's address, once its sandbox exists.
    pub pod_ip: Option<IpAddr>,
    /// When the worker first took the pod.
    pub start_time: Timestamp,
    /// The init containers, in spec order.
    pub init_containers: Vec<ContainerFacts>,
    /// The containers, in spec order.
    pub containers: Vec<ContainerFacts>,
    /// Whether the sandbox exists (condition `PodReadyToStartContainers`).
    pub sandbox_ready: bool,
    /// Set when the pod as a whole failed.
    pub failure: Option<PodFailure>,
}

/// The pod's status. `pod` is the object as last seen, whose conditions
/// keep their transition times while their status does not change.
pub fn pod_status(pod: &Pod, facts: &PodFacts, now: Timestamp) -> PodStatus {
    let restart_policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let phase = match &facts.failure {
        Some(_) => "Failed",
        None => phase(restart_policy, &facts.init_containers, &facts.containers),
    };
    let initialized = facts
        .init_containers
        .iter()
        .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    let containers_ready = !facts.containers.is_empty()
        && facts.containers.iter().all(|c| c.ready)
        && phase == "Running";
    let previous = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let not_ready_reason = |ready: bool| {
        (!ready).then(|| {
            let unready: Vec<&str> = facts
                .containers
                .iter()
                .filter(|c| !c.ready)
                .map(|c| c.name.as_str())
                .collect();
            (
                "ContainersNotReady",
                format!("containers with unready status: [{}]", unready.join(" ")),
            )
        })
    };
    let init_reason = (!initialized).then(|| {
        let pending: Vec<&str> = facts
            .init_containers
            .iter()
            .filter(|c| !matches!(&c.state, State::Terminated(t) if t.exit_code == 0))
            .map(|c| c.name.as_str())
            .collect();
        (
            "ContainersNotInitialized",
            format!("containers with incomplete status: [{}]", pending.join(" ")),
        )
    });
    let conditions = vec![
        condition(
            previous,
            "PodReadyToStartContainers",
            facts.sandbox_ready,
            None,
            now,
        ),
        condition(previous, "Initialized", initialized, init_reason, now),
        condition(
            previous,
            "Ready",
            containers_ready,
            not_ready_reason(containers_ready),
            now,
        ),
        condition(
            previous,
            "ContainersReady",
            containers_ready,
            not_ready_reason(containers_ready),
            now,
        ),
        condition(previous, "PodScheduled", true, None, now),
    ];
    let pod_ip = facts.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(facts.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: facts.host_ip.to_string(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(Time(facts.start_time)),
        init_container_statuses: (!facts.init_containers.is_empty())
            .then(|| facts.init_containers.iter().map(container_status).collect()),
        container_statuses: Some(facts.containers.iter().map(container_status).collect()),
        qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        reason: facts.failure.as_ref().map(|f| f.reason.clone()),
        message: facts.failure.as_ref().map(|f| f.message.clone()),
        nominated_node_name: pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone()),
        ..PodStatus::default()
    }
}

/// The kubelet's `getPhase`.
fn phase(
    restart_policy: &str,
    init: &[ContainerFacts],
    containers: &[ContainerFacts],
) -> &'static str {
    let mut pending_init = false;
    for c in init {
        match &c.state {
            State::Terminated(t) if t.exit_code == 0 => {}
            State::Terminated(_) if restart_policy == "Never" => return "Failed",
            State::Waiting { .. } if c.last_terminated.is_some() && restart_policy == "Never" => {
                return "Failed";
            }
            _ => pending_init = true,
        }
    }
    if pending_init {
        return "Pending";
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } => match &c.last_terminated {
                Some(last) => {
                    stopped += 1;
                    if last.exit_code == 0 {
                        succeeded += 1;
                    }
                }
                None => waiting += 1,
            },
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if restart_policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if restart_policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

fn condition(
    previous: &[PodCondition],
    type_: &str,
    value: bool,
    reason: Option<(&str, String)>,
    now: Timestamp,
) -> PodCondition {
    let status = if value { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let (reason, message) = match reason {
        Some((reason, message)) => (Some(reason.to_owned()), Some(message)),
        None => (None, None),
    };
    PodCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        last_transition_time: Some(last_transition_time),
        reason,
        message,
        ..PodCondition::default()
    }
}

fn container_status(facts: &ContainerFacts) -> ContainerStatus {
    let running = matches!(facts.state, State::Running { .. });
    ContainerStatus {
        name: facts.name.clone(),
        image: facts.image.clone(),
        image_id: facts.image_id.clone().unwrap_or_default(),
        container_id: facts.container_id.clone(),
        state: Some(state(&facts.state)),
        last_state: facts
            .last_terminated
            .as_ref()
            .map(|t| state(&State::Terminated(t.clone()))),
        ready: facts.ready && running,
        restart_count: facts.restart_count,
        started: Some(facts.started && running),
        ..ContainerStatus::default()
    }
}

fn state(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..ContainerState::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                reason: t.reason.clone(),
                message: t.message.clone(),
                started_at: t.started_at.map(Time),
                finished_at: t.finished_at.map(Time),
                container_id: t.container_id.clone(),
                signal: None,
            }),
            ..ContainerState::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    fn running() -> State {
        State::Running {
            started_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn exited(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            reason: None,
            message: None,
            started_at: None,
            finished_at: None,
            container_id: None,
        }
    }

    fn facts(state: State, last: Option<Terminated>) -> ContainerFacts {
        ContainerFacts {
            name: "c".into(),
            image: "i".into(),
            image_id: None,
            container_id: None,
            state,
            last_terminated: last,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }

    /// One row: restart policy, init container states, container states,
    /// the expected phase.
    fn check(
        policy: &str,
        init: Vec<ContainerFacts>,
        containers: Vec<ContainerFacts>,
        expect: &str,
    ) {
        assert_eq!(
            phase(policy, &init, &containers),
            expect,
            "{policy} {init:?} {containers:?}"
        );
    }

    #[test]
    fn phases_follow_the_kubelet() {
        use State::Terminated as T;
        check(
            "Always",
            vec![],
            vec![facts(waiting("ContainerCreating"), None)],
            "Pending",
        );
        check("Always", vec![], vec![facts(running(), None)], "Running");
        check("Always", vec![], vec![facts(T(exited(0)), None)], "Running");
        check(
            "Never",
            vec![],
            vec![facts(T(exited(0)), None)],
            "Succeeded",
        );
        check(
            "OnFailure",
            vec![],
            vec![facts(T(exited(0)), None)],
            "Succeeded",
        );
        check("Never", vec![], vec![facts(T(exited(1)), None)], "Failed");
        check(
            "OnFailure",
            vec![],
            vec![facts(T(exited(1)), None)],
            "Running",
        );
        // Backing off after a crash counts as stopped, not as waiting.
        check(
            "Always",
            vec![],
            vec![facts(waiting("CrashLoopBackOff"), Some(exited(1)))],
            "Running",
        );
        check(
            "Never",
            vec![],
            vec![facts(running(), None), facts(T(exited(1)), None)],
            "Running",
        );
        check(
            "Always",
            vec![facts(running(), None)],
            vec![facts(waiting("PodInitializing"), None)],
            "Pending",
        );
        check(
            "Always",
            vec![facts(T(exited(0)), None)],
            vec![facts(running(), None)],
            "Running",
        );
        check(
            "Never",
            vec![facts(T(exited(2)), None)],
            vec![facts(waiting("PodInitializing"), None)],
            "Failed",
        );
        check(
            "OnFailure",
            vec![facts(waiting("CrashLoopBackOff"), Some(exited(2)))],
            vec![facts(waiting("PodInitializing"), None)],
            "Pending",
        );
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]}
        }))
        .unwrap()
    }

    fn pod_facts(containers: Vec<ContainerFacts>) -> PodFacts {
        PodFacts {
            host_ip: "127.0.0.2".parse().unwrap(),
            pod_ip: Some("127.0.0.2".parse().unwrap()),
            start_time: Timestamp::UNIX_EPOCH,
            init_containers: vec![],
            containers,
            sandbox_ready: true,
            failure: None,
        }
    }

    fn condition_of<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn ready_needs_every_container_ready_and_keeps_transition_times() {
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let status = pod_status(&pod(), &pod_facts(vec![facts(running(), None)]), now);
        let ready = condition_of(&status, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [c]")
        );
        // Unchanged status: the old transition time stays.
        assert_eq!(
            ready.last_transition_time.as_ref().unwrap().0.to_string(),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            condition_of(&status, "PodScheduled")
                .last_transition_time
                .as_ref()
                .unwrap()
                .0
                .to_string(),
            "2026-01-01T00:00:00Z"
        );

        let mut ready_container = facts(running(), None);
        ready_container.ready = true;
        ready_container.started = true;
        let status = pod_status(&pod(), &pod_facts(vec![ready_container]), now);
        let ready = condition_of(&status, "Ready");
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_transition_time.as_ref().unwrap().0, now);
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.2"));
        let container = &status.container_statuses.as_ref().unwrap()[0];
        assert!(container.ready);
        assert_eq!(container.started, Some(true));
        assert!(container.state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn a_pod_failure_overrides_the_phase_and_says_why() {
        let mut facts = pod_facts(vec![facts(State::Terminated(exited(137)), None)]);
        facts.failure = Some(PodFailure {
            reason: "DeadlineExceeded".into(),
            message: "Pod was active on the node longer than the specified deadline".into(),
        });
        let status = pod_status(&pod(), &facts, Timestamp::UNIX_EPOCH);
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(condition_of(&status, "Ready").status, "False");
    }

    #[test]
    fn last_state_and_waiting_reason_are_reported() {
        let mut crashing = facts(
            State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some("back-off 10s restarting failed container".into()),
            },
            Some(exited(3)),
        );
        crashing.restart_count = 2;
        let status = pod_status(&pod(), &pod_facts(vec![crashing]), Timestamp::UNIX_EPOCH);
        let container = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(container.restart_count, 2);
        let waiting = container.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = container
            .last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap();
        assert_eq!(last.exit_code, 3);
        assert_eq!(container.started, Some(false));
    }
}
