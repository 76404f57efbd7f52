use std::os::unix::fs::{MetadataExt, PermissionsExt};

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::json;

use super::*;
use crate::envvars::tests::{Store, store};

/// A pod directory whose volumes are cleaned up (tmpfs unmounted) even when a test fails.
struct PodDir(tempfile::TempDir);

impl PodDir {
    fn new() -> PodDir {
        PodDir(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for PodDir {
    fn drop(&mut self) {
        let _ = cleanup(self.0.path());
    }
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
        "spec": spec
    }))
    .unwrap()
}

fn node() -> NodeFacts {
    NodeFacts {
        host_ips: vec!["10.0.0.1".into()],
        allocatable: [(
            "memory".to_string(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
        )]
        .into(),
    }
}

async fn prep(store: &Store, p: &Pod, dir: &PodDir) -> Result<Volumes, VolumeError> {
    prepare(store, p, dir.path(), &node()).await
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn config_map_items_modes_and_updates() {
    let dir = PodDir::new();
    let p = pod(json!({"containers": [{"name": "c"}], "volumes": [
        {"name": "all", "configMap": {"name": "cfg", "defaultMode": 0o600}},
        {"name": "some", "configMap": {"name": "cfg", "items": [{"key": "mode", "path": "conf/mode.txt", "mode": 0o400}]}}
    ]}));
    let mut objects = store();
    let volumes = prep(&objects, &p, &dir).await.unwrap();
    let all = volumes.host_path("all").unwrap().to_path_buf();
    assert_eq!(all, dir.path().join("volumes/kubernetes.io~configmap/all"));
    assert_eq!(read(&all.join("mode")), "fast");
    assert_eq!(read(&all.join("LEVEL")), "3");
    assert_eq!(mode(&all.join("mode")), 0o600);
    let some = volumes.host_path("some").unwrap();
    assert_eq!(read(&some.join("conf/mode.txt")), "fast");
    assert_eq!(mode(&some.join("conf/mode.txt")), 0o400);
    assert!(!some.join("LEVEL").exists());
    assert!(volumes.by_name["all"].read_only);

    // An update of the ConfigMap reaches the same directory on the next prepare.
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "cfg"},
        "data": {"mode": "slow"}}))
    .unwrap();
    objects.config_maps = vec![cm];
    prep(&objects, &p, &dir).await.unwrap();
    assert_eq!(read(&all.join("mode")), "slow");
    assert!(!all.join("LEVEL").exists());
}

#[tokio::test]
async fn config_map_and_secret_errors_are_failed_mount_messages() {
    let dir = PodDir::new();
    let objects = store();
    let missing = pod(json!({"containers": [{"name": "c"}], "volumes": [{"name": "v", "configMap": {"name": "y"}}]}));
    let err = prep(&objects, &missing, &dir).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"v\" : configmap \"y\" not found"
    );
    let key = pod(
        json!({"containers": [{"name": "c"}], "volumes": [{"name": "v", "configMap": {"name": "cfg",
        "items": [{"key": "nope", "path": "x"}]}}]}),
    );
    assert_eq!(
        prep(&objects, &key, &dir).await.unwrap_err().to_string(),
        "MountVolume.SetUp failed for volume \"v\" : configmap references non-existent config key: nope"
    );
    let secret =
        pod(json!({"containers": [{"name": "c"}], "volumes": [{"name": "s", "secret": {"secretName": "gone"}}]}));
    assert_eq!(
        prep(&objects, &secret, &dir).await.unwrap_err().to_string(),
        "MountVolume.SetUp failed for volume \"s\" : secret \"gone\" not found"
    );
    let optional = pod(
        json!({"containers": [{"name": "c"}], "volumes": [{"name": "v", "configMap": {"name": "y", "optional": true}}]}),
    );
    let volumes = prep(&objects, &optional, &dir).await.unwrap();
    assert!(volumes.host_path("v").unwrap().join("..data").exists());
}

#[tokio::test]
async fn secrets_live_on_tmpfs_until_cleanup() {
    let dir = PodDir::new();
    let p =
        pod(json!({"containers": [{"name": "c"}], "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}]}));
    let volumes = prep(&store(), &p, &dir).await.unwrap();
    let path = volumes.host_path("creds").unwrap().to_path_buf();
    assert!(is_mount_point(&path));
    assert_eq!(read(&path.join("password")), "s3cr3t");
    assert_eq!(mode(&path.join("password")), 0o644);
    // Preparing again neither mounts twice nor rewrites.
    let data = fs::read_link(path.join("..data")).unwrap();
    prep(&store(), &p, &dir).await.unwrap();
    assert_eq!(fs::read_link(path.join("..data")).unwrap(), data);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mounts.lines().filter(|l| l.contains(path.to_str().unwrap())).count(), 1);
    cleanup(dir.path()).unwrap();
    assert!(!path.exists());
    assert!(
        !fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(path.to_str().unwrap())
    );
}

fn statfs_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and buffer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut buf) }, 0);
    buf.f_blocks as u64 * buf.f_frsize as u64
}

#[tokio::test]
async fn empty_dirs_on_disk_and_in_memory() {
    let dir = PodDir::new();
    let p = pod(json!({"containers": [{"name": "c"}], "volumes": [
        {"name": "scratch", "emptyDir": {"sizeLimit": "10Mi"}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"}},
        {"name": "mem", "emptyDir": {"medium": "Memory"}}
    ]}));
    let volumes = prep(&store(), &p, &dir).await.unwrap();
    let scratch = &volumes.by_name["scratch"];
    assert_eq!(scratch.size_limit, Some(10 << 20));
    assert!(!is_mount_point(&scratch.host_path));
    assert_eq!(mode(&scratch.host_path), 0o777);
    let shm = volumes.host_path("shm").unwrap();
    assert!(is_mount_point(shm));
    assert_eq!(statfs_bytes(shm), 4 << 20);
    assert_eq!(mode(shm), 0o777);
    // Without sizeLimit the tmpfs is bounded by node allocatable.
    assert_eq!(statfs_bytes(volumes.host_path("mem").unwrap()), 1 << 30);
    assert_eq!(volumes.by_name["shm"].size_limit, None);
}

#[tokio::test]
async fn fs_group_owns_writable_volumes() {
    let dir = PodDir::new();
    let p = pod(
        json!({"securityContext": {"fsGroup": 4242}, "containers": [{"name": "c"}], "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o400}}
        ]}),
    );
    let volumes = prep(&store(), &p, &dir).await.unwrap();
    let data = fs::metadata(volumes.host_path("data").unwrap()).unwrap();
    assert_eq!(data.gid(), 4242);
    assert_eq!(data.mode() & 0o2000, 0o2000);
    let file = volumes.host_path("cfg").unwrap().join("mode");
    assert_eq!(fs::metadata(&file).unwrap().gid(), 4242);
    assert_eq!(mode(&file), 0o440);
}

#[tokio::test]
async fn host_path_types() {
    let dir = PodDir::new();
    let base = dir.path().join("host");
    fs::create_dir_all(&base).unwrap();
    fs::write(base.join("file"), "x").unwrap();
    let check = |path: &Path, kind: &str| hostpath::check_type(path, kind);
    let made = base.join("made/deep");
    check(&made, "DirectoryOrCreate").unwrap();
    assert!(made.is_dir());
    assert_eq!(mode(&made), 0o755);
    check(&made, "Directory").unwrap();
    let f = base.join("file");
    assert_eq!(
        check(&f, "Directory").unwrap_err(),
        format!("hostPath type check failed: {} is not a directory", f.display())
    );
    assert_eq!(
        check(&f, "DirectoryOrCreate").unwrap_err(),
        format!("hostPath type check failed: {} is not a directory", f.display())
    );
    let new_file = base.join("new");
    check(&new_file, "FileOrCreate").unwrap();
    assert!(new_file.is_file());
    assert_eq!(mode(&new_file) & !0o644, 0, "created 0644 (less the umask)");
    check(&f, "File").unwrap();
    assert_eq!(
        check(&made, "File").unwrap_err(),
        format!("hostPath type check failed: {} is not a file", made.display())
    );
    assert!(check(&base.join("missing"), "File").is_err());
    assert_eq!(
        check(&f, "Socket").unwrap_err(),
        format!("hostPath type check failed: {} is not a socket file", f.display())
    );
    let sock_path = base.join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    check(&sock_path, "Socket").unwrap();
    check(Path::new("/dev/null"), "CharDevice").unwrap();
    assert_eq!(
        check(Path::new("/dev/null"), "BlockDevice").unwrap_err(),
        "hostPath type check failed: /dev/null is not a block device"
    );
    assert_eq!(
        check(&f, "CharDevice").unwrap_err(),
        format!("hostPath type check failed: {} is not a character device", f.display())
    );
    assert_eq!(check(&f, "Weird").unwrap_err(), "Weird is an invalid volume type");
    check(&base.join("anything"), "").unwrap();

    let p = pod(json!({"containers": [{"name": "c"}], "volumes": [
        {"name": "h", "hostPath": {"path": f.to_str().unwrap(), "type": "Directory"}}]}));
    assert_eq!(
        prep(&store(), &p, &dir).await.unwrap_err().to_string(),
        format!(
            "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {} is not a directory",
            f.display()
        )
    );
}

#[tokio::test]
async fn downward_api_files() {
    let dir = PodDir::new();
    let p = pod(
        json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}], "volumes": [
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o400},
                {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
            ]}}
        ]}),
    );
    let volumes = prep(&store(), &p, &dir).await.unwrap();
    let info = volumes.host_path("info").unwrap();
    assert_eq!(info, dir.path().join("volumes/kubernetes.io~downward-api/info"));
    assert_eq!(read(&info.join("labels")), "app=\"web\"");
    assert_eq!(read(&info.join("name")), "web");
    assert_eq!(mode(&info.join("name")), 0o400);
    assert_eq!(read(&info.join("cpu")), "500");
    assert_eq!(read(&info.join("mem")), "64");
}

#[tokio::test]
async fn projected_api_access_with_bound_token() {
    let dir = PodDir::new();
    let p = pod(
        json!({"serviceAccountName": "robot", "containers": [{"name": "c"}], "volumes": [
            {"name": "kube-api-access-x", "projected": {"defaultMode": 0o644, "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607, "audience": "vault"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                {"secret": {"name": "creds", "items": [{"key": "password", "path": "pw"}]}}
            ]}}
        ]}),
    );
    let objects = store();
    let volumes = prep(&objects, &p, &dir).await.unwrap();
    let v = volumes.host_path("kube-api-access-x").unwrap();
    assert!(is_mount_point(v));
    assert_eq!(read(&v.join("namespace")), "ns");
    assert_eq!(read(&v.join("pw")), "s3cr3t");
    // The CA ConfigMap is not published in this store: mounted without it.
    assert!(!v.join("ca.crt").exists());
    let token = read(&v.join("token"));
    assert!(projected::is_fresh(&token, jiff::Timestamp::now().as_second()));
    {
        let requests = objects.tokens.lock().unwrap();
        assert_eq!(requests.len(), 1);
        let spec = &requests[0].spec;
        assert_eq!(spec.audiences, vec!["vault".to_string()]);
        assert_eq!(spec.expiration_seconds, Some(3607));
        let bound = spec.bound_object_ref.as_ref().unwrap();
        assert_eq!(
            (bound.kind.as_deref(), bound.name.as_deref(), bound.uid.as_deref()),
            (Some("Pod"), Some("web"), Some("u1"))
        );
    }
    // A fresh token is kept on the next prepare.
    prep(&objects, &p, &dir).await.unwrap();
    assert_eq!(objects.tokens.lock().unwrap().len(), 1);
    assert_eq!(read(&v.join("token")), token);
}

#[test]
fn token_freshness() {
    use base64::Engine;
    let jwt = |iat: i64, exp: i64| {
        let claims = json!({"iat": iat, "exp": exp}).to_string();
        format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
        )
    };
    assert!(projected::is_fresh(&jwt(1000, 2000), 1500));
    assert!(!projected::is_fresh(&jwt(1000, 2000), 1800)); // 80% of the lifetime
    assert!(!projected::is_fresh(&jwt(0, 10 * 86400), 86400)); // older than a day
    assert!(!projected::is_fresh("not-a-jwt", 0));
}

#[tokio::test]
async fn container_mounts() {
    let dir = PodDir::new();
    let p = pod(json!({"containers": [{"name": "c", "volumeMounts": [
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/logs", "subPath": "logs/app", "readOnly": true},
        {"name": "data", "mountPath": "/per-pod", "subPathExpr": "$(POD_NAME)"},
        {"name": "cfg", "mountPath": "/etc/cfg", "mountPropagation": "HostToContainer"}
    ]}], "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}]}));
    let volumes = prep(&store(), &p, &dir).await.unwrap();
    let container = &p.spec.as_ref().unwrap().containers[0];
    let env = [KeyValue {
        key: "POD_NAME".into(),
        value: "web".into(),
    }];
    let mounts = volumes.mounts_for(container, &env).unwrap();
    let data = volumes.host_path("data").unwrap().canonicalize().unwrap();
    assert_eq!(mounts.len(), 4);
    assert_eq!(
        (mounts[0].container_path.as_str(), mounts[0].readonly),
        ("/data", false)
    );
    assert_eq!(mounts[1].host_path, data.join("logs/app").to_string_lossy());
    assert!(mounts[1].readonly);
    assert!(data.join("logs/app").is_dir());
    assert_eq!(mounts[2].host_path, data.join("web").to_string_lossy());
    assert!(mounts[3].readonly, "configMap volumes are read-only");
    assert_eq!(
        mounts[3].propagation,
        MountPropagation::PropagationHostToContainer as i32
    );
    assert_eq!(mounts[0].propagation, MountPropagation::PropagationPrivate as i32);

    // A symlink planted in the volume cannot lead a subPath out of it.
    std::os::unix::fs::symlink("/etc", data.join("escape")).unwrap();
    let bad: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
        {"name": "data", "mountPath": "/x", "subPath": "escape"}]}))
    .unwrap();
    assert_eq!(
        volumes.mounts_for(&bad, &[]).unwrap_err().to_string(),
        "failed to prepare subPath for volumeMount \"data\" of container \"c\""
    );
    let unknown: Container =
        serde_json::from_value(json!({"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]})).unwrap();
    assert_eq!(
        volumes.mounts_for(&unknown, &[]).unwrap_err().to_string(),
        "cannot find volume \"nope\" to mount into container \"c\""
    );
}

#[test]
fn unknown_plugins_fail() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = PodDir::new();
    let p = pod(
        json!({"containers": [{"name": "c"}], "volumes": [{"name": "pvc", "persistentVolumeClaim": {"claimName": "x"}}]}),
    );
    let err = rt.block_on(prep(&store(), &p, &dir)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"pvc\" : no volume plugin matched"
    );
}
