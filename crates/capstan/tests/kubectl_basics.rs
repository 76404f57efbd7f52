//! kubectl against `capstan server`: discovery, CRUD, patches, watches and
//! the upstream error texts. Every assertion compares with what kubectl
//! prints against upstream Kubernetes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use std::time::Duration;

use common::Cluster;

#[test]
fn version_cluster_info_and_discovery() {
    let c = Cluster::start();
    let version = c.get_json(&["version"]);
    let server = version["serverVersion"]["gitVersion"].as_str().unwrap();
    assert!(server.starts_with("v1.33.0+capstan"), "{server}");

    let info = c.ok(&["cluster-info"]);
    assert!(
        info.contains(&format!("is running at https://127.0.0.1:{}", c.port)),
        "{info}"
    );

    let resources = c.ok(&["api-resources"]);
    let deployments = resources
        .lines()
        .find(|l| l.starts_with("deployments "))
        .expect("deployments listed");
    assert!(deployments.contains("deploy") && deployments.contains("apps/v1") && deployments.contains("Deployment"));
    let namespaces = resources.lines().find(|l| l.starts_with("namespaces ")).unwrap();
    assert!(
        namespaces.contains("false"),
        "namespaces are cluster-scoped: {namespaces}"
    );

    let versions = c.ok(&["api-versions"]);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "autoscaling/v2",
        "autoscaling/v1",
        "rbac.authorization.k8s.io/v1",
    ] {
        assert!(versions.lines().any(|l| l == gv), "{gv} missing from:\n{versions}");
    }

    let namespaces = c.ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(&format!("namespace/{ns}")), "{namespaces}");
    }
    let svc = c.get_json(&["get", "service", "kubernetes"]);
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
}

#[test]
fn requests_without_credentials_are_unauthorized() {
    let c = Cluster::start();
    let anonymous = c.data_dir().join("anonymous.kubeconfig");
    // The same cluster and CA, but no client certificate.
    let ca = c.ok(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca}\ncontexts:\n- name: c\n  context: {{cluster: c, user: nobody}}\ncurrent-context: c\nusers:\n- name: nobody\n  user: {{token: not-a-valid-token}}\n",
        c.port
    );
    std::fs::write(&anonymous, kubeconfig).unwrap();
    let out = Command::new("kubectl")
        .args(["get", "namespaces"])
        .env("KUBECONFIG", &anonymous)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: You must be logged in to the server"),
        "{stderr}"
    );
    // Health and version stay open, as upstream.
    let health = c.kubectl_as(&anonymous, &["get", "--raw", "/readyz"]);
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok");
}

#[test]
fn service_account_tokens_authenticate_until_revoked() {
    let c = Cluster::start();
    c.ok_in(
        &["create", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder}\n",
    );
    let request = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":600}}"#;
    let path = "/api/v1/namespaces/default/serviceaccounts/builder/token";
    let answer: serde_json::Value =
        serde_json::from_str(&c.ok_in(&["create", "--raw", path, "-f", "-"], request)).unwrap();
    let token = answer["status"]["token"].as_str().expect("a token");
    assert!(answer["status"]["expirationTimestamp"].as_str().is_some());

    // The token authenticates as the service account, which may do nothing yet.
    let as_builder = c.kubeconfig_with_token(token);
    let out = c.kubectl_as(&as_builder, &["get", "pods"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:builder" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{stderr}"
    );

    // Deleting the service account revokes its tokens.
    c.ok(&["delete", "serviceaccount", "builder"]);
    let out = c.kubectl_as(&as_builder, &["get", "pods"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("You must be logged in to the server"));

    let short = r#"{"spec":{"expirationSeconds":10}}"#;
    c.ok_in(
        &["create", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder}\n",
    );
    let out = c.kubectl_in(&["create", "--raw", path, "-f", "-"], Some(short));
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not specify a duration less than 10 minutes"));
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: web}
data:
  mode: fast
";

#[test]
fn create_get_label_patch_delete() {
    let c = Cluster::start();
    let dir = c.data_dir();
    let file = common::write(&dir, "cm.yaml", CONFIGMAP);
    let file = file.to_str().unwrap();
    assert_eq!(
        c.ok(&["create", "--validate=false", "-f", file]),
        "configmap/settings created\n"
    );

    let cm = c.get_json(&["get", "configmap", "settings"]);
    assert_eq!(cm["data"]["mode"], "fast");
    assert!(cm["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(cm["metadata"]["creationTimestamp"].as_str().is_some());
    // Every namespace also holds the cluster CA, as upstream's root-ca-cert-publisher makes it.
    let names = c.ok(&["get", "cm", "-o", "name"]);
    assert!(names.lines().any(|l| l == "configmap/settings"), "{names}");
    assert_eq!(c.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.mode}"]), "fast");

    c.ok(&["label", "configmap", "settings", "tier=backend"]);
    c.ok(&["annotate", "configmap", "settings", "owner=team-a"]);
    c.ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"slow"}}"#,
    ]);
    c.ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/extra","value":"1"}]"#,
    ]);
    let cm = c.get_json(&["get", "configmap", "settings"]);
    assert_eq!(cm["metadata"]["labels"]["tier"], "backend");
    assert_eq!(cm["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(cm["data"], serde_json::json!({"mode": "slow", "extra": "1"}));

    assert_eq!(
        c.ok(&["get", "cm", "-l", "tier=backend", "-o", "name"]),
        "configmap/settings\n"
    );
    assert_eq!(c.ok(&["get", "cm", "-l", "tier=frontend", "-o", "name"]), "");
    assert_eq!(
        c.ok(&["get", "cm", "--field-selector", "metadata.name=settings", "-o", "name"]),
        "configmap/settings\n"
    );

    assert_eq!(
        c.ok(&["delete", "configmap", "settings"]),
        "configmap \"settings\" deleted\n"
    );
    let err = c.fails(&["get", "configmap", "settings"]);
    assert_eq!(err, "Error from server (NotFound): configmaps \"settings\" not found\n");
}

#[test]
fn upstream_error_texts() {
    let c = Cluster::start();
    let dir = c.data_dir();
    let file = common::write(&dir, "cm.yaml", CONFIGMAP);
    let file = file.to_str().unwrap();
    c.ok(&["create", "--validate=false", "-f", file]);

    let err = c.fails(&["create", "--validate=false", "-f", file]);
    assert!(
        err.contains("Error from server (AlreadyExists): error when creating")
            && err.contains("configmaps \"settings\" already exists"),
        "{err}"
    );

    let err = c.fails(&["get", "deployment", "nope"]);
    assert_eq!(
        err,
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );

    // A replace carrying a stale resourceVersion conflicts.
    let mut stale = c.get_json(&["get", "configmap", "settings"]);
    c.ok(&["label", "configmap", "settings", "bump=1"]);
    stale["data"]["mode"] = "stale".into();
    let stale_file = common::write(&dir, "stale.json", &stale.to_string());
    let err = c.fails(&["replace", "--validate=false", "-f", stale_file.to_str().unwrap()]);
    assert!(
        err.contains("Error from server (Conflict)")
            && err.contains("Operation cannot be fulfilled on configmaps \"settings\": the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );

    let bad = common::write(
        &dir,
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    );
    let err = c.fails(&["create", "--validate=false", "-f", bad.to_str().unwrap()]);
    assert!(
        err.contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"),
        "{err}"
    );

    let err = c.fails(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(err.contains("field label not supported: spec.bogus"), "{err}");
}

#[test]
fn watch_sees_an_update() {
    let c = Cluster::start();
    let dir = c.data_dir();
    let file = common::write(&dir, "cm.yaml", CONFIGMAP);
    c.ok(&["create", "--validate=false", "-f", file.to_str().unwrap()]);

    let mut watch = Command::new("kubectl")
        .args([
            "get",
            "configmaps",
            "settings",
            "--watch",
            "--output-watch-events",
            "-o",
            "jsonpath={.type} {.object.data.mode}{\"\\n\"}",
        ])
        .env("KUBECONFIG", c.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "ADDED fast");
    c.ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"watched"}}"#,
    ]);
    let update = rx.recv_timeout(Duration::from_secs(10));
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(update.unwrap(), "MODIFIED watched");
}

/// `kubectl create <kind>` sends protobuf bodies; the server decodes them
/// and applies upstream's defaults.
#[test]
fn create_subcommands_protobuf_path() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "shop"]);
    let ns = ["-n", "shop"];
    let run = |args: &[&str]| c.ok(&[&ns[..], args].concat());
    run(&["create", "configmap", "settings", "--from-literal=mode=fast"]);
    run(&["create", "secret", "generic", "creds", "--from-literal=password=s3cret"]);
    run(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"]);
    run(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    run(&["create", "job", "once", "--image=busybox"]);
    run(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=0 3 * * *",
    ]);
    run(&["create", "serviceaccount", "robot"]);
    let token = run(&["create", "token", "robot"]);
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");

    let secret = c.get_json(&["-n", "shop", "get", "secret", "creds"]);
    assert_eq!(secret["data"]["password"], "czNjcmV0", "base64 of s3cret");
    assert_eq!(secret["type"], "Opaque");
    let deploy = c.get_json(&["-n", "shop", "get", "deployment", "web"]);
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    let svc = c.get_json(&["-n", "shop", "get", "service", "web"]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    let cron = c.get_json(&["-n", "shop", "get", "cronjob", "nightly"]);
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cron["spec"]["successfulJobsHistoryLimit"], 3);

    let all = c.ok(&["-n", "shop", "get", "all"]);
    for name in [
        "deployment.apps/web",
        "service/web",
        "job.batch/once",
        "cronjob.batch/nightly",
    ] {
        assert!(all.contains(name), "`get all` misses {name}:\n{all}");
    }
    let columns = c.ok(&[
        "-n",
        "shop",
        "get",
        "deploy",
        "-o",
        "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas",
    ]);
    assert_eq!(columns, "NAME   REPLICAS\nweb    3\n");
    let wide = c.ok(&["-n", "shop", "get", "deploy", "-o", "wide"]);
    assert!(
        wide.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES       SELECTOR"),
        "{wide}"
    );
}

#[test]
fn scale_replace_edit_and_delete() {
    let c = Cluster::start();
    c.ok(&["create", "deployment", "web", "--image=nginx:1.27"]);
    c.ok(&["scale", "deployment", "web", "--replicas=4"]);
    let scale = c.ok(&["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale"]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(4))
    );
    assert_eq!(scale["status"]["selector"], "app=web");

    // edit: kubectl runs $EDITOR on a temp file and sends the change.
    let out = std::process::Command::new("kubectl")
        .args(["edit", "deployment", "web"])
        .env("KUBECONFIG", c.kubeconfig())
        .env("EDITOR", "sed -i s/nginx:1.27/nginx:1.28/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let image = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "nginx:1.28");
    let generation = c.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.generation}"]);
    assert_eq!(generation, "3", "scale and edit each changed the spec");

    let mut current = c.get_json(&["get", "deploy", "web"]);
    current["spec"]["replicas"] = 1.into();
    c.ok_in(&["replace", "-f", "-", "--validate=false"], &current.to_string());
    assert_eq!(c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "1");

    c.ok(&["create", "configmap", "a", "--from-literal=x=1"]);
    c.ok(&["create", "configmap", "b", "--from-literal=x=1"]);
    c.ok(&["label", "configmap", "a", "b", "batch=old"]);
    assert_eq!(
        c.ok(&["delete", "configmap", "-l", "batch=old"]),
        "configmap \"a\" deleted\nconfigmap \"b\" deleted\n"
    );
    assert_eq!(
        c.ok(&["delete", "deployment", "web", "--wait"]),
        "deployment.apps \"web\" deleted\n"
    );
    assert!(c.fails(&["get", "deployment", "web"]).contains("NotFound"));
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env: [{name: A, value: \"1\"}]
        ports: [{containerPort: 80}]
";

/// Client-side apply twice: list changes are merged by key (strategic
/// merge patch), keeping what another writer added in between.
#[test]
fn apply_twice_merges_lists() {
    let c = Cluster::start();
    assert_eq!(
        c.ok_in(&["apply", "-f", "-"], DEPLOYMENT),
        "deployment.apps/web created\n"
    );
    c.ok(&["set", "env", "deployment/web", "FROM_ELSEWHERE=kept"]);
    let changed = DEPLOYMENT
        .replace("value: \"1\"}]", "value: \"1\"}, {name: B, value: \"2\"}]")
        .replace("containerPort: 80}]", "containerPort: 80}, {containerPort: 443}]");
    assert_eq!(
        c.ok_in(&["apply", "-f", "-"], &changed),
        "deployment.apps/web configured\n"
    );
    let container = &c.get_json(&["get", "deployment", "web"])["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(env, vec!["A", "B", "FROM_ELSEWHERE"]);
    let ports: Vec<i64> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["containerPort"].as_i64())
        .collect();
    assert_eq!(ports, vec![80, 443]);
    // Applying the same file again changes nothing on the server.
    let generation = c.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.generation}"]);
    c.ok_in(&["apply", "-f", "-"], &changed);
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.generation}"]),
        generation
    );
    let diff = c.kubectl_in(
        &["diff", "-f", "-"],
        Some(&changed.replace("replicas: 2", "replicas: 5")),
    );
    assert_eq!(
        diff.status.code(),
        Some(1),
        "kubectl diff exits 1 when there are differences"
    );
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+  replicas: 5"));
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2",
        "diff persists nothing"
    );
}

#[test]
fn explain_and_strict_validation() {
    let c = Cluster::start();
    let explain = c.ok(&["explain", "deployment.spec.strategy"]);
    assert!(
        explain.contains("KIND:       Deployment") && explain.contains("FIELD: strategy <DeploymentStrategy>"),
        "{explain}"
    );
    let out = c.kubectl_in(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\nfoo: bar\n"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "foo""#
        ),
        "{stderr}"
    );
}

#[test]
fn namespaces_are_finalized_and_get_default_service_accounts() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "temp"]);
    c.ok(&["-n", "temp", "create", "configmap", "x", "--from-literal=a=b"]);
    // The serviceaccount controller adds `default` to every namespace.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c
        .kubectl(&["-n", "temp", "get", "serviceaccount", "default"])
        .status
        .code()
        != Some(0)
    {
        assert!(std::time::Instant::now() < deadline, "no default service account");
        std::thread::sleep(Duration::from_millis(100));
    }
    // delete waits until the namespace controller emptied and finalized it.
    assert_eq!(
        c.ok(&["delete", "namespace", "temp", "--timeout=30s"]),
        "namespace \"temp\" deleted\n"
    );
    assert!(c.fails(&["get", "namespace", "temp"]).contains("NotFound"));
}

const SSA_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
spec:
  replicas: 2
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
";

/// Server-side apply: field ownership, a conflict with another manager,
/// and `--force-conflicts` taking the field over.
#[test]
fn server_side_apply_conflicts_and_force() {
    let c = Cluster::start();
    assert_eq!(
        c.ok_in(&["apply", "--server-side", "-f", "-"], SSA_DEPLOYMENT),
        "deployment.apps/ssa serverside-applied\n"
    );
    c.ok(&["scale", "deployment", "ssa", "--replicas=5"]);
    let changed = SSA_DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let out = c.kubectl_in(&["apply", "--server-side", "-f", "-"], Some(&changed));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Apply failed with 1 conflict: conflict with") && stderr.contains(".spec.replicas"),
        "{stderr}"
    );
    assert_eq!(c.ok(&["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}"]), "5");

    c.ok_in(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &changed);
    assert_eq!(c.ok(&["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}"]), "3");
    let managers = c.ok(&[
        "get",
        "deploy",
        "ssa",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}:{.operation}{\"\\n\"}{end}",
    ]);
    assert!(managers.lines().any(|l| l == "kubectl:Apply"), "{managers}");
    // Every write records its manager, not only applies.
    c.ok(&["create", "configmap", "plain", "--from-literal=a=b"]);
    let managers = c.ok(&[
        "get",
        "cm",
        "plain",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[0].manager}",
    ]);
    assert_eq!(managers, "kubectl-create");
}

/// Bodies over 3 MiB are refused with 413 before anything is stored.
#[test]
fn oversized_bodies_are_rejected() {
    let c = Cluster::start();
    let big = "x".repeat(3 * 1024 * 1024 + 1);
    let body = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"x\":\"{big}\"}}}}"
    );
    let out = c.kubectl_in(
        &["create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", "-"],
        Some(&body),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Request entity too large") || stderr.contains("413"),
        "{stderr}"
    );
    assert!(c.fails(&["get", "configmap", "big"]).contains("NotFound"));
}

/// `pods/binding` assigns a pod once; `pods/eviction` honours disruption
/// budgets (429) and otherwise deletes gracefully.
#[test]
fn binding_and_eviction() {
    let c = Cluster::start();
    c.ok(&["run", "web", "--image=nginx:1.27", "--labels=app=web"]);
    let binding =
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"web"},"target":{"kind":"Node","name":"node-1"}}"#;
    let path = "/api/v1/namespaces/default/pods/web/binding";
    c.ok_in(&["create", "--raw", path, "-f", "-"], binding);
    let pod = c.get_json(&["get", "pod", "web"]);
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    assert_eq!(pod["status"]["conditions"][0]["type"], "PodScheduled");
    let again = c.kubectl_in(&["create", "--raw", path, "-f", "-"], Some(binding));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is already assigned to node"),
        "bound once only"
    );
    c.ok(&[
        "patch",
        "pod",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);

    c.ok(&[
        "create",
        "poddisruptionbudget",
        "web",
        "--selector=app=web",
        "--min-available=1",
    ]);
    c.ok(&[
        "patch",
        "pdb",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"disruptionsAllowed":0,"currentHealthy":1,"desiredHealthy":1,"expectedPods":1}}"#,
    ]);
    let eviction = r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"web","namespace":"default"}}"#;
    let evict = "/api/v1/namespaces/default/pods/web/eviction";
    let refused = c.kubectl_in(&["create", "--raw", evict, "-f", "-"], Some(eviction));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );

    c.ok(&[
        "patch",
        "pdb",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"disruptionsAllowed":1}}"#,
    ]);
    c.ok_in(&["create", "--raw", evict, "-f", "-"], eviction);
    // Bound to a node, the pod terminates gracefully: marked, not yet gone.
    let pod = c.get_json(&["get", "pod", "web"]);
    assert!(pod["metadata"]["deletionTimestamp"].as_str().is_some(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(c.get_json(&["get", "pdb", "web"])["status"]["disruptionsAllowed"], 0);
}

/// One stored object, served in every version of its resource: HPAs in
/// autoscaling v1 and v2, Events in core v1 and events.k8s.io/v1.
#[test]
fn multi_version_resources_share_objects() {
    let c = Cluster::start();
    let hpa = r#"{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{"name":"web"},
        "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"minReplicas":1,"maxReplicas":5,"targetCPUUtilizationPercentage":60}}"#;
    c.ok_in(&["create", "-f", "-"], hpa);
    let v2 = c.get_json(&["get", "horizontalpodautoscalers.v2.autoscaling", "web"]);
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 60);
    c.ok(&[
        "patch",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxReplicas":7}}"#,
    ]);
    let v1 = c.get_json(&["get", "horizontalpodautoscalers.v1.autoscaling", "web"]);
    assert_eq!(
        (
            v1["spec"]["maxReplicas"].as_i64(),
            v1["spec"]["targetCPUUtilizationPercentage"].as_i64()
        ),
        (Some(7), Some(60))
    );

    let event = r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"e1"},"involvedObject":{"kind":"Pod","name":"p","namespace":"default"},
        "reason":"Tested","message":"hello","type":"Normal","source":{"component":"test"}}"#;
    c.ok_in(&["create", "-f", "-"], event);
    let modern = c.get_json(&["get", "events.v1.events.k8s.io", "e1"]);
    assert_eq!(
        (modern["note"].as_str(), modern["regarding"]["name"].as_str()),
        (Some("hello"), Some("p"))
    );
}

/// Review kinds are answered, not stored: `kubectl auth can-i` and
/// `kubectl auth whoami` for the admin and for a service account.
#[test]
fn auth_can_i_and_whoami() {
    let c = Cluster::start();
    assert_eq!(c.ok(&["auth", "can-i", "create", "deployments"]), "yes\n");
    let whoami = c.ok(&["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(whoami, "system:admin");
    // An admin may impersonate; the impersonated account may do nothing yet.
    let out = c.kubectl(&[
        "auth",
        "can-i",
        "list",
        "pods",
        "--as=system:serviceaccount:default:nobody",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no\n");
    let who = c.ok(&[
        "auth",
        "whoami",
        "--as=jane",
        "--as-group=devs",
        "-o",
        "jsonpath={.status.userInfo}",
    ]);
    assert_eq!(who, r#"{"groups":["devs","system:authenticated"],"username":"jane"}"#);

    c.ok(&["create", "serviceaccount", "reader"]);
    let token = c.ok(&["create", "token", "reader"]);
    let as_reader = c.kubeconfig_with_token(token.trim());
    let out = c.kubectl_as(&as_reader, &["auth", "can-i", "list", "pods"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no\n");
    let out = c.kubectl_as(
        &as_reader,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "system:serviceaccount:default:reader"
    );
    // Reviews are never stored, so they cannot be listed.
    assert!(
        c.fails(&["get", "selfsubjectaccessreviews"])
            .contains("MethodNotAllowed")
    );
}
