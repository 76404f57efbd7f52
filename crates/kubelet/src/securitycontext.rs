//! Pod and container `securityContext` as the runtime applies it (upstream
//! `kuberuntime/security_context.go`, `security_context_others.go` and
//! `pkg/securitycontext`).
//!
//! The container's settings override the pod's field by field; what remains
//! unset falls to the runtime. Two decisions need the image: `runAsNonRoot`
//! without `runAsUser` is checked against the image's user, and a
//! non-numeric image user is passed on by name. A failed check is not a
//! runtime error but a configuration one: the pod worker reports it as
//! `CreateContainerConfigError` with [`SecurityContextError`]'s text.
//!
//! Seccomp defaults to `Unconfined` as upstream without the `SeccompDefault`
//! gate; AppArmor is left to the runtime (containerd applies its default
//! profile only where AppArmor is enabled on the host).

use k8s_cri::v1::{
    Capability, Int64Value, LinuxContainerSecurityContext, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    SeLinuxOption, SecurityProfile, security_profile::ProfileType,
};
use k8s_openapi::api::core::v1::{
    Container, Pod, PodSecurityContext, SELinuxOptions, SeccompProfile, SecurityContext as ContainerSecurityContext,
};

/// The paths runtimes mask in unprivileged containers (`procMount: Default`).
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// The paths runtimes mount read-only in unprivileged containers.
pub const DEFAULT_READONLY_PATHS: [&str; 5] =
    ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Where `Localhost` seccomp profiles live (upstream's `<root-dir>/seccomp`).
pub const SECCOMP_PROFILE_ROOT: &str = "/var/lib/kubelet/seccomp";

/// The user an image runs as without `runAsUser` (CRI `ImageStatus`'s `uid`
/// or `username`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageUser {
    pub uid: Option<i64>,
    pub username: String,
}

impl ImageUser {
    /// The user of an image as CRI `ImageStatus` reports it.
    pub fn from_cri(image: &k8s_cri::v1::Image) -> ImageUser {
        ImageUser {
            uid: image.uid.as_ref().map(|u| u.value),
            username: image.username.clone(),
        }
    }
}

/// Why a container cannot be configured, in upstream's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityContextError {
    #[error("container's runAsUser breaks non-root policy (pod: \"{pod}\", container: {container})")]
    RunAsUserRoot { pod: String, container: String },
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod}\", container: {container})"
    )]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
    #[error("container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})")]
    ImageRunsAsRoot { pod: String, container: String },
    #[error(
        "container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-(2147483647)): must be between 0 and 2147483647, inclusive (pod: \"{pod}\", container: {container})"
    )]
    InvalidUserId { uid: i64, pod: String, container: String },
}

impl SecurityContextError {
    /// The container status reason this error gives.
    pub const REASON: &'static str = "CreateContainerConfigError";
}

/// Upstream's `format.Pod`: `name_namespace(uid)`.
pub fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn pod_sc(pod: &Pod) -> Option<&PodSecurityContext> {
    pod.spec.as_ref()?.security_context.as_ref()
}

/// Upstream's `DetermineEffectiveSecurityContext`: the container's context
/// with the pod-level fields it leaves unset filled in.
pub fn effective(pod: &Pod, container: &Container) -> ContainerSecurityContext {
    let mut sc = container.security_context.clone().unwrap_or_default();
    if let Some(p) = pod_sc(pod) {
        sc.run_as_user = sc.run_as_user.or(p.run_as_user);
        sc.run_as_group = sc.run_as_group.or(p.run_as_group);
        sc.run_as_non_root = sc.run_as_non_root.or(p.run_as_non_root);
        if sc.se_linux_options.is_none() {
            sc.se_linux_options = p.se_linux_options.clone();
        }
        if sc.seccomp_profile.is_none() {
            sc.seccomp_profile = p.seccomp_profile.clone();
        }
        if sc.app_armor_profile.is_none() {
            sc.app_armor_profile = p.app_armor_profile.clone();
        }
    }
    sc
}

/// Upstream's `verifyRunAsNonRoot`, checked before the container is created.
pub fn verify_run_as_non_root(pod: &Pod, container: &Container, image: &ImageUser) -> Result<(), SecurityContextError> {
    let sc = effective(pod, container);
    if sc.run_as_non_root != Some(true) {
        return Ok(());
    }
    let names = || (format_pod(pod), container.name.clone());
    if let Some(uid) = sc.run_as_user {
        if uid == 0 {
            let (pod, container) = names();
            return Err(SecurityContextError::RunAsUserRoot { pod, container });
        }
        return Ok(());
    }
    match image.uid {
        None if !image.username.is_empty() => {
            let (pod, container) = names();
            Err(SecurityContextError::NonNumericUser {
                user: image.username.clone(),
                pod,
                container,
            })
        }
        Some(0) => {
            let (pod, container) = names();
            Err(SecurityContextError::ImageRunsAsRoot { pod, container })
        }
        Some(uid) if !(0..=i64::from(i32::MAX)).contains(&uid) => {
            let (pod, container) = names();
            Err(SecurityContextError::InvalidUserId { uid, pod, container })
        }
        _ => Ok(()),
    }
}

/// The pod's namespaces: host network/PID/IPC when asked, otherwise the
/// pod's own, with one PID namespace per container unless
/// `shareProcessNamespace`.
pub fn namespace_options(pod: &Pod) -> NamespaceOption {
    let spec = pod.spec.as_ref();
    let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| spec.and_then(f).unwrap_or(false);
    let mode = |host: bool, otherwise: NamespaceMode| if host { NamespaceMode::Node } else { otherwise } as i32;
    let pid_otherwise = if flag(|s| s.share_process_namespace) {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    NamespaceOption {
        network: mode(flag(|s| s.host_network), NamespaceMode::Pod),
        pid: mode(flag(|s| s.host_pid), pid_otherwise),
        ipc: mode(flag(|s| s.host_ipc), NamespaceMode::Pod),
        ..Default::default()
    }
}

/// The pod's supplemental groups: `supplementalGroups` then `fsGroup`, so
/// that processes can use volumes handed to the fsGroup.
pub fn supplemental_groups(pod: &Pod) -> Vec<i64> {
    let Some(p) = pod_sc(pod) else { return Vec::new() };
    let mut groups = p.supplemental_groups.clone().unwrap_or_default();
    if let Some(fs_group) = p.fs_group {
        groups.push(fs_group);
    }
    groups
}

/// What volumes do for `fsGroup`: their files belong to this group,
/// group-readable (and writable unless read-only), directories setgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsGroup {
    pub gid: u32,
    /// `fsGroupChangePolicy: OnRootMismatch`: skip the walk when the volume
    /// root already has the right group and mode.
    pub on_root_mismatch: bool,
}

/// The pod's `fsGroup` for volume ownership, if any.
pub fn fs_group(pod: &Pod) -> Option<FsGroup> {
    let p = pod_sc(pod)?;
    let gid = u32::try_from(p.fs_group?).ok()?;
    Some(FsGroup {
        gid,
        on_root_mismatch: p.fs_group_change_policy.as_deref() == Some("OnRootMismatch"),
    })
}

fn selinux(options: Option<&SELinuxOptions>) -> Option<SeLinuxOption> {
    options.map(|o| SeLinuxOption {
        user: o.user.clone().unwrap_or_default(),
        role: o.role.clone().unwrap_or_default(),
        r#type: o.type_.clone().unwrap_or_default(),
        level: o.level.clone().unwrap_or_default(),
    })
}

/// The CRI seccomp profile and its deprecated path form (runtimes of
/// containerd 1.6's age read either).
fn seccomp(profile: Option<&SeccompProfile>) -> (SecurityProfile, String) {
    match profile.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())) {
        Some(("RuntimeDefault", _)) => (
            SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            },
            "runtime/default".into(),
        ),
        Some(("Localhost", Some(path))) => {
            let full = format!("{SECCOMP_PROFILE_ROOT}/{path}");
            (
                SecurityProfile {
                    profile_type: ProfileType::Localhost as i32,
                    localhost_ref: full.clone(),
                },
                format!("localhost/{full}"),
            )
        }
        _ => (
            SecurityProfile {
                profile_type: ProfileType::Unconfined as i32,
                localhost_ref: String::new(),
            },
            "unconfined".into(),
        ),
    }
}

fn apparmor(sc: &ContainerSecurityContext) -> Option<SecurityProfile> {
    let profile = sc.app_armor_profile.as_ref()?;
    let (profile_type, localhost_ref) = match profile.type_.as_str() {
        "Unconfined" => (ProfileType::Unconfined, String::new()),
        "Localhost" => (
            ProfileType::Localhost,
            profile.localhost_profile.clone().unwrap_or_default(),
        ),
        _ => (ProfileType::RuntimeDefault, String::new()),
    };
    Some(SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref,
    })
}

/// The container's CRI security context: user and group (or the image's
/// user by name), privileged, read-only root, capabilities, `no_new_privs`
/// from `allowPrivilegeEscalation: false`, masked and read-only /proc paths
/// unless privileged or `procMount: Unmasked`, seccomp, SELinux and the
/// pod's groups and namespaces. Fails as [`verify_run_as_non_root`] does.
// The deprecated seccomp path is set beside the profile, as upstream does,
// for runtimes that read only the path.
#[allow(deprecated)]
pub fn linux_container_security_context(
    pod: &Pod,
    container: &Container,
    image: &ImageUser,
) -> Result<LinuxContainerSecurityContext, SecurityContextError> {
    verify_run_as_non_root(pod, container, image)?;
    let sc = effective(pod, container);
    let privileged = sc.privileged.unwrap_or(false);
    let unmasked = privileged || sc.proc_mount.as_deref() == Some("Unmasked");
    let (seccomp, seccomp_profile_path) = seccomp(sc.seccomp_profile.as_ref());
    let capabilities = sc.capabilities.as_ref().map(|c| Capability {
        add_capabilities: c.add.clone().unwrap_or_default(),
        drop_capabilities: c.drop.clone().unwrap_or_default(),
        add_ambient_capabilities: Vec::new(),
    });
    let run_as_username = match (sc.run_as_user, image.uid) {
        (None, None) => image.username.clone(),
        _ => String::new(),
    };
    let paths = |list: &[&str]| {
        if unmasked {
            Vec::new()
        } else {
            list.iter().map(|p| p.to_string()).collect()
        }
    };
    Ok(LinuxContainerSecurityContext {
        capabilities,
        privileged,
        namespace_options: Some(namespace_options(pod)),
        selinux_options: selinux(sc.se_linux_options.as_ref()),
        run_as_user: sc.run_as_user.map(|value| Int64Value { value }),
        run_as_group: sc.run_as_group.map(|value| Int64Value { value }),
        run_as_username,
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: supplemental_groups(pod),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: paths(&DEFAULT_MASKED_PATHS),
        readonly_paths: paths(&DEFAULT_READONLY_PATHS),
        apparmor: apparmor(&sc),
        seccomp: Some(seccomp),
        seccomp_profile_path,
        ..Default::default()
    })
}

/// Whether any container (init containers included) is privileged; the
/// sandbox must then be privileged too.
pub fn has_privileged_container(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|c| c.security_context.as_ref().and_then(|sc| sc.privileged) == Some(true))
    })
}

/// The sandbox's CRI security context from the pod's: user, group,
/// groups, namespaces, SELinux, seccomp and privileged.
#[allow(deprecated)]
pub fn linux_sandbox_security_context(pod: &Pod) -> LinuxSandboxSecurityContext {
    let p = pod_sc(pod);
    let (seccomp, seccomp_profile_path) = seccomp(p.and_then(|p| p.seccomp_profile.as_ref()));
    LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(pod)),
        selinux_options: selinux(p.and_then(|p| p.se_linux_options.as_ref())),
        run_as_user: p.and_then(|p| p.run_as_user).map(|value| Int64Value { value }),
        run_as_group: p.and_then(|p| p.run_as_group).map(|value| Int64Value { value }),
        supplemental_groups: supplemental_groups(pod),
        privileged: has_privileged_container(pod),
        seccomp: Some(seccomp),
        seccomp_profile_path,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}, "spec": spec}))
            .unwrap()
    }

    fn first(pod: &Pod) -> &Container {
        &pod.spec.as_ref().unwrap().containers[0]
    }

    #[test]
    #[allow(deprecated)]
    fn container_overrides_pod_fields() {
        let p = pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000], "fsGroup": 2000},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 2000, "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}]
        }));
        let sc = linux_container_security_context(&p, first(&p), &ImageUser::default()).unwrap();
        assert_eq!(sc.run_as_user, Some(Int64Value { value: 2000 }));
        assert_eq!(sc.run_as_group, Some(Int64Value { value: 3000 }));
        assert!(sc.readonly_rootfs);
        assert!(sc.no_new_privs);
        assert!(!sc.privileged);
        assert_eq!(sc.supplemental_groups, vec![4000, 2000]);
        let caps = sc.capabilities.unwrap();
        assert_eq!(
            (caps.add_capabilities, caps.drop_capabilities),
            (vec!["NET_ADMIN".into()], vec!["ALL".into()])
        );
        assert_eq!(sc.masked_paths.len(), DEFAULT_MASKED_PATHS.len());
        assert_eq!(sc.seccomp.unwrap().profile_type, ProfileType::Unconfined as i32);
        assert_eq!(sc.seccomp_profile_path, "unconfined");
    }

    #[test]
    fn privileged_unmasks_and_makes_the_sandbox_privileged() {
        let p = pod(json!({"containers": [{"name": "c", "securityContext": {"privileged": true}}]}));
        let sc = linux_container_security_context(&p, first(&p), &ImageUser::default()).unwrap();
        assert!(sc.privileged);
        assert!(sc.masked_paths.is_empty() && sc.readonly_paths.is_empty());
        assert!(!sc.no_new_privs);
        assert!(linux_sandbox_security_context(&p).privileged);
    }

    #[test]
    fn run_as_non_root_messages() {
        let root =
            pod(json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}, "containers": [{"name": "c"}]}));
        let err = verify_run_as_non_root(&root, first(&root), &ImageUser::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container's runAsUser breaks non-root policy (pod: \"web_ns(u1)\", container: c)"
        );
        let p = pod(json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}));
        let image_root = ImageUser {
            uid: Some(0),
            username: String::new(),
        };
        assert_eq!(
            verify_run_as_non_root(&p, first(&p), &image_root)
                .unwrap_err()
                .to_string(),
            "container has runAsNonRoot and image will run as root (pod: \"web_ns(u1)\", container: c)"
        );
        let named = ImageUser {
            uid: None,
            username: "nginx".into(),
        };
        assert_eq!(
            verify_run_as_non_root(&p, first(&p), &named).unwrap_err().to_string(),
            "container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root (pod: \"web_ns(u1)\", container: c)"
        );
        let user = ImageUser {
            uid: Some(65534),
            username: String::new(),
        };
        assert!(verify_run_as_non_root(&p, first(&p), &user).is_ok());
        // Unknown image user (uid None, no name): upstream lets it through.
        assert!(verify_run_as_non_root(&p, first(&p), &ImageUser::default()).is_ok());
        assert!(linux_container_security_context(&p, first(&p), &image_root).is_err());
    }

    #[test]
    fn image_username_is_passed_on_without_run_as_user() {
        let p = pod(json!({"containers": [{"name": "c"}]}));
        let named = ImageUser {
            uid: None,
            username: "www".into(),
        };
        let sc = linux_container_security_context(&p, first(&p), &named).unwrap();
        assert_eq!((sc.run_as_user, sc.run_as_username.as_str()), (None, "www"));
    }

    #[test]
    #[allow(deprecated)]
    fn namespaces_and_seccomp() {
        let p = pod(json!({"hostNetwork": true, "shareProcessNamespace": true,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}}]}));
        let ns = namespace_options(&p);
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Pod as i32);
        assert_eq!(ns.ipc, NamespaceMode::Pod as i32);
        let sc = linux_container_security_context(&p, first(&p), &ImageUser::default()).unwrap();
        let seccomp = sc.seccomp.unwrap();
        assert_eq!(seccomp.profile_type, ProfileType::Localhost as i32);
        assert_eq!(seccomp.localhost_ref, "/var/lib/kubelet/seccomp/x.json");
        let sandbox = linux_sandbox_security_context(&p);
        assert_eq!(sandbox.seccomp_profile_path, "runtime/default");
        let plain = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(namespace_options(&plain).pid, NamespaceMode::Container as i32);
    }

    #[test]
    fn fs_group_hint() {
        let p = pod(
            json!({"securityContext": {"fsGroup": 2000, "fsGroupChangePolicy": "OnRootMismatch"}, "containers": [{"name": "c"}]}),
        );
        assert_eq!(
            fs_group(&p),
            Some(FsGroup {
                gid: 2000,
                on_root_mismatch: true
            })
        );
        assert_eq!(fs_group(&pod(json!({"containers": [{"name": "c"}]}))), None);
    }
}
