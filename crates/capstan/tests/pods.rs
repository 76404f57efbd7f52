//! Real pods end to end: `capstan server` with its node (containerd and the
//! kubelet), driven by the real kubectl; containers run the busybox test
//! image the harness builds. Each test's node is cleaned up and checked
//! for leftovers when its cluster is dropped.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{BUSYBOX, Cluster, tail, wait_event, wait_pod};
use serde_json::Value;

/// Watches the waiting reason of pod `name`'s first container with
/// `kubectl get -w` (started before the pod exists, so no change is missed).
struct ReasonWatch {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ReasonWatch {
    fn start(c: &Cluster, name: &str) -> ReasonWatch {
        use std::io::BufRead;
        let mut child = std::process::Command::new("kubectl")
            .args([
                "get",
                "pods",
                "-w",
                "--field-selector",
                &format!("metadata.name={name}"),
                "-o",
            ])
            .arg("jsonpath={.status.containerStatuses[0].state.waiting.reason}{\"\\n\"}")
            .env("KUBECONFIG", c.kubeconfig())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("kubectl get -w");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // Let the watch be established first.
        std::thread::sleep(Duration::from_millis(500));
        ReasonWatch { child, lines }
    }

    /// The reasons seen, until `last` shows up (or the timeout).
    fn until(mut self, last: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut reasons: Vec<String> = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if !line.is_empty() && reasons.last() != Some(&line) => {
                    let done = line == last;
                    reasons.push(line);
                    if done {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        reasons
    }
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

fn condition<'a>(pod: &'a Value, kind: &str) -> &'a Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn running_and_ready(pod: &Value) -> bool {
    phase(pod) == "Running" && condition(pod, "Ready")["status"] == "True"
}

/// A pod of the busybox image running `script` with `sh -c`.
fn pod_yaml(name: &str, script: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n{extra_spec}  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", {script:?}]\n"
    )
}

/// A web server answering `text` on port 80.
fn httpd_script(text: &str) -> String {
    format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www")
}

/// `GET /` on `ip:80` from the host.
fn http_get(ip: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&format!("{ip}:80").parse().expect("addr"), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}

#[test]
fn node_registers_with_host_facts_and_becomes_ready() {
    let started = Instant::now();
    let c = Cluster::start_node();
    eprintln!("capstan server start -> node Ready: {:?}", started.elapsed());
    let node = c.get_json(&["get", "node", c.node_name()]);
    let status = &node["status"];
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], c.node_name());
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
    for resource in ["cpu", "memory", "ephemeral-storage", "pods"] {
        assert!(
            status["capacity"][resource].is_string(),
            "capacity {resource}: {status}"
        );
        assert!(status["allocatable"][resource].is_string(), "allocatable {resource}");
    }
    assert_eq!(status["capacity"]["pods"], "110");
    let info = &status["nodeInfo"];
    assert!(
        info["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("containerd://1.6"),
        "{info}"
    );
    assert!(!info["kernelVersion"].as_str().unwrap().is_empty());
    assert!(info["osImage"].as_str().unwrap().contains("Debian"), "{info}");
    let port = c.node.as_ref().unwrap().kubelet_port;
    assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], port);
    let kinds: Vec<(&str, &str)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    for expected in [
        ("MemoryPressure", "False"),
        ("DiskPressure", "False"),
        ("PIDPressure", "False"),
        ("Ready", "True"),
    ] {
        assert!(kinds.contains(&expected), "{kinds:?}");
    }
    assert!(status["addresses"][0]["type"] == "InternalIP", "{status}");
    let lease = c.get_json(&["get", "lease", "-n", "kube-node-lease", c.node_name()]);
    assert_eq!(lease["spec"]["holderIdentity"], c.node_name());
    assert!(node["spec"]["podCIDR"].is_string(), "node IPAM gave the node a range");
}

#[test]
fn httpd_pod_answers_on_its_pod_ip() {
    let c = Cluster::start_node();
    let created = Instant::now();
    c.ok_in(
        &["apply", "-f", "-"],
        &pod_yaml("web", &httpd_script("hello-from-capstan"), ""),
    );
    let pod = wait_pod(&c, "web", Duration::from_secs(60), running_and_ready);
    eprintln!("pod create -> Running and Ready: {:?}", created.elapsed());
    let ip = pod["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(ip.starts_with("10.42."), "pod IP from the node's range: {ip}");
    assert_eq!(pod["status"]["podIPs"][0]["ip"], ip.as_str());
    assert!(pod["status"]["hostIP"].is_string());
    assert!(pod["status"]["startTime"].is_string());
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    let main = container(&pod, "main");
    assert!(
        main["containerID"].as_str().unwrap().starts_with("containerd://"),
        "{main}"
    );
    assert_eq!(
        (
            main["ready"].as_bool(),
            main["started"].as_bool(),
            main["restartCount"].as_i64()
        ),
        (Some(true), Some(true), Some(0))
    );
    assert!(main["state"]["running"]["startedAt"].is_string());
    assert_eq!(main["image"], format!("docker.io/{BUSYBOX}"));
    assert!(!main["imageID"].as_str().unwrap_or("").is_empty(), "{main}");
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert_eq!(condition(&pod, kind)["status"], "True", "{kind}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        match http_get(&ip) {
            Ok(body) => break body,
            Err(err) if Instant::now() > deadline => panic!("GET http://{ip}/: {err}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(body.contains("hello-from-capstan"), "{body}");
    wait_event(&c, "web", "Created", "Created container main");
    wait_event(&c, "web", "Started", "Started container main");
}

#[test]
fn deployment_pods_get_distinct_ips_and_reach_each_other() {
    let c = Cluster::start_node();
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {BUSYBOX}\n        command: [\"sh\", \"-c\", {:?}]\n",
        "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"
    );
    c.ok_in(&["apply", "-f", "-"], &deployment);
    let deadline = Instant::now() + Duration::from_secs(90);
    let ips: Vec<String> = loop {
        let pods = c.get_json(&["get", "pods", "-l", "app=web"]);
        let ready: Vec<String> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| running_and_ready(p))
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .collect();
        if ready.len() == 3 {
            break ready;
        }
        assert!(Instant::now() < deadline, "3 ready pods: {pods}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{ips:?}");
    // A pod fetches from each of them and reports what it got as its
    // termination message (with nc: Debian's static busybox wget segfaults).
    let fetch = ips
        .iter()
        .map(|ip| {
            format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 80 >> /dev/termination-log 2>&1 || exit 1")
        })
        .collect::<Vec<_>>()
        .join("; ");
    c.ok_in(
        &["apply", "-f", "-"],
        &pod_yaml("client", &fetch, "  restartPolicy: Never\n"),
    );
    let client = wait_pod(&c, "client", Duration::from_secs(60), |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    });
    let done = &container(&client, "main")["state"]["terminated"];
    assert_eq!(phase(&client), "Succeeded", "{done}");
    let message = done["message"].as_str().unwrap_or("");
    let pods = c.get_json(&["get", "pods", "-l", "app=web"]);
    for pod in pods["items"].as_array().unwrap() {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(message.contains(name), "{name} answered: {message}");
    }
}

#[test]
fn crashing_container_backs_off_with_growing_delays() {
    let c = Cluster::start_node();
    c.ok_in(&["apply", "-f", "-"], &pod_yaml("crash", "echo crashing; exit 3", ""));
    let pod = wait_pod(&c, "crash", Duration::from_secs(60), |p| {
        container(p, "main")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let main = container(&pod, "main");
    let message = main["state"]["waiting"]["message"].as_str().unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        message,
        format!("back-off 10s restarting failed container=main pod=crash_default({uid})")
    );
    assert_eq!(main["restartCount"], 1);
    let last = &main["lastState"]["terminated"];
    assert_eq!(
        (last["exitCode"].as_i64(), last["reason"].as_str()),
        (Some(3), Some("Error")),
        "{main}"
    );
    assert_eq!(phase(&pod), "Running");
    assert_eq!(condition(&pod, "Ready")["status"], "False");
    // After 10 s it runs again, crashes again and waits twice as long.
    let pod = wait_pod(&c, "crash", Duration::from_secs(40), |p| {
        let m = container(p, "main");
        m["restartCount"] == 2 && m["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let message = container(&pod, "main")["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("back-off 20s restarting failed container=main"),
        "{message}"
    );
}

#[test]
fn container_over_its_memory_limit_is_oom_killed() {
    let c = Cluster::start_node();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hog\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [\"tail\", \"/dev/zero\"]\n    resources:\n      limits: {{memory: 32Mi}}\n"
    );
    c.ok_in(&["apply", "-f", "-"], &yaml);
    let pod = wait_pod(&c, "hog", Duration::from_secs(60), |p| phase(p) == "Failed");
    let done = &container(&pod, "main")["state"]["terminated"];
    assert_eq!(done["reason"], "OOMKilled", "{done}");
    assert_eq!(done["exitCode"], 137);
    assert_eq!(pod["status"]["qosClass"], "Burstable");
}

#[test]
fn failures_show_upstream_reasons_while_other_pods_keep_running() {
    let c = Cluster::start_node();
    c.ok_in(&["apply", "-f", "-"], &pod_yaml("steady", &httpd_script("steady"), ""));
    wait_pod(&c, "steady", Duration::from_secs(60), running_and_ready);
    let watch = ReasonWatch::start(&c, "missing");
    let missing = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: missing\nspec:\n  containers:\n  - name: main\n    image: 127.0.0.1:1/capstan-e2e/missing:1\n";
    c.ok_in(&["apply", "-f", "-"], missing);
    let never = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nocmd\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [\"/no/such/binary\"]\n"
    );
    c.ok_in(&["apply", "-f", "-"], &never);
    // ErrImagePull may last less than a second: every change is watched.
    let reasons = watch.until("ImagePullBackOff", Duration::from_secs(60));
    let first = reasons.iter().position(|r| r == "ErrImagePull");
    let then = reasons.iter().position(|r| r == "ImagePullBackOff");
    assert!(
        first.is_some() && first < then,
        "ErrImagePull, then ImagePullBackOff: {reasons:?}"
    );
    let pod = c.get_json(&["get", "pod", "missing"]);
    assert_eq!(phase(&pod), "Pending");
    let message = container(&pod, "main")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("127.0.0.1:1/capstan-e2e/missing:1"), "{message}");
    let pod = wait_pod(&c, "nocmd", Duration::from_secs(60), |p| phase(p) == "Failed");
    let done = &container(&pod, "main")["state"]["terminated"];
    assert_eq!(done["reason"], "StartError", "{done}");
    assert_eq!(done["exitCode"], 128);
    assert!(
        done["message"].as_str().unwrap_or("").contains("/no/such/binary"),
        "{done}"
    );
    let steady = c.get_json(&["get", "pod", "steady"]);
    assert!(running_and_ready(&steady));
    assert_eq!(container(&steady, "main")["restartCount"], 0);
    let ip = steady["status"]["podIP"].as_str().unwrap();
    assert!(http_get(ip).unwrap().contains("steady"));
}

#[test]
fn a_jobs_pod_runs_to_completion() {
    let c = Cluster::start_node();
    let job = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: {BUSYBOX}\n        command: [\"sh\", \"-c\", \"echo computing; sleep 1; echo done\"]\n"
    );
    c.ok_in(&["apply", "-f", "-"], &job);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let job = c.get_json(&["get", "job", "once"]);
        if job["status"]["succeeded"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job did not complete: {}\n{}",
            job["status"],
            tail(&c.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pods = c.get_json(&["get", "pods", "-l", "job-name=once"]);
    let pod = &pods["items"][0];
    assert_eq!(phase(pod), "Succeeded");
    let done = &container(pod, "main")["state"]["terminated"];
    assert_eq!(
        (done["exitCode"].as_i64(), done["reason"].as_str()),
        (Some(0), Some("Completed"))
    );
    assert_eq!(condition(pod, "Ready")["reason"], "PodCompleted");
}

#[test]
fn deleting_a_pod_stops_its_container_within_the_grace_period() {
    let c = Cluster::start_node();
    // Ignores SIGTERM: only SIGKILL at the end of the grace period stops it.
    let stubborn = pod_yaml(
        "stubborn",
        "trap '' TERM; while true; do sleep 1; done",
        "  terminationGracePeriodSeconds: 3\n",
    );
    c.ok_in(&["apply", "-f", "-"], &stubborn);
    let pod = wait_pod(&c, "stubborn", Duration::from_secs(60), running_and_ready);
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let started = Instant::now();
    c.ok(&["delete", "pod", "stubborn", "--wait=true"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "SIGKILL only after the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    // The pod's cgroup is gone with its processes.
    let cgroup_root = c.node.as_ref().unwrap().cgroup_root.clone();
    let dir = format!("/sys/fs/cgroup/memory{cgroup_root}/pod{uid}");
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left");
    // A pod that exits on SIGTERM goes at once.
    c.ok_in(
        &["apply", "-f", "-"],
        &pod_yaml(
            "polite",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
            "  terminationGracePeriodSeconds: 30\n",
        ),
    );
    wait_pod(&c, "polite", Duration::from_secs(60), running_and_ready);
    let started = Instant::now();
    c.ok(&["delete", "pod", "polite", "--wait=true"]);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
fn restarting_the_server_leaves_pods_running() {
    let mut c = Cluster::start_node();
    c.ok_in(&["apply", "-f", "-"], &pod_yaml("web", &httpd_script("still-here"), ""));
    let before = wait_pod(&c, "web", Duration::from_secs(60), running_and_ready);
    let id = container(&before, "main")["containerID"].as_str().unwrap().to_string();
    let ip = before["status"]["podIP"].as_str().unwrap().to_string();
    c.restart();
    assert!(
        http_get(&ip).unwrap().contains("still-here"),
        "served while and after the server restarted"
    );
    // The kubelet adopted it: same container, not restarted.
    std::thread::sleep(Duration::from_secs(2));
    let after = wait_pod(&c, "web", Duration::from_secs(30), running_and_ready);
    let main = container(&after, "main");
    assert_eq!(main["containerID"], id.as_str());
    assert_eq!(main["restartCount"], 0);
    assert_eq!(after["status"]["podIP"], ip.as_str());
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let c = Cluster::start_node();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sick\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", \"touch /tmp/alive; sleep 3; rm /tmp/alive; exec sleep 3600\"]\n    livenessProbe:\n      exec: {{command: [\"test\", \"-f\", \"/tmp/alive\"]}}\n      periodSeconds: 1\n      failureThreshold: 2\n"
    );
    c.ok_in(&["apply", "-f", "-"], &yaml);
    let first = wait_pod(&c, "sick", Duration::from_secs(60), running_and_ready);
    let first_id = container(&first, "main")["containerID"].as_str().unwrap().to_string();
    let pod = wait_pod(&c, "sick", Duration::from_secs(60), |p| {
        let m = container(p, "main");
        m["restartCount"].as_i64() >= Some(1) && m["state"]["running"].is_object()
    });
    let main = container(&pod, "main");
    assert_ne!(main["containerID"], first_id.as_str(), "a new container");
    let last = &main["lastState"]["terminated"];
    assert_eq!(last["containerID"], first_id.as_str(), "{main}");
    assert!(last["exitCode"].as_i64().unwrap() != 0, "{last}");
}

#[test]
fn readiness_probe_gates_ready() {
    let c = Cluster::start_node();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: warming\nspec:\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", \"sleep 4; touch /tmp/ready; exec sleep 3600\"]\n    readinessProbe:\n      exec: {{command: [\"test\", \"-f\", \"/tmp/ready\"]}}\n      periodSeconds: 1\n"
    );
    c.ok_in(&["apply", "-f", "-"], &yaml);
    let pod = wait_pod(&c, "warming", Duration::from_secs(60), |p| phase(p) == "Running");
    let main = container(&pod, "main");
    assert_eq!(
        (main["ready"].as_bool(), main["started"].as_bool()),
        (Some(false), Some(true)),
        "{main}"
    );
    let ready = condition(&pod, "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ContainersNotReady");
    assert_eq!(ready["message"], "containers with unready status: [main]");
    let pod = wait_pod(&c, "warming", Duration::from_secs(30), running_and_ready);
    assert_eq!(container(&pod, "main")["ready"], true);
    assert_eq!(container(&pod, "main")["restartCount"], 0);
}

#[test]
fn configmap_secret_and_downward_api_reach_the_container() {
    let c = Cluster::start_node();
    c.ok(&["create", "configmap", "cfg", "--from-literal=greeting=hello-config"]);
    c.ok(&["create", "secret", "generic", "sec", "--from-literal=password=s3cret"]);
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: reader
  labels: {{tier: backend}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "echo env: $GREETING $PASSWORD $POD_NAME $MEMORY_MI $LITERAL > /dev/termination-log; cat /etc/cfg/greeting /etc/sec/password /etc/pod/name /etc/pod/labels >> /dev/termination-log"]
    resources:
      limits: {{memory: 64Mi}}
    env:
    - {{name: LITERAL, value: plain}}
    - name: GREETING
      valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: sec, key: password}}}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    - name: MEMORY_MI
      valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: sec, mountPath: /etc/sec}}
    - {{name: pod, mountPath: /etc/pod}}
  volumes:
  - name: cfg
    configMap: {{name: cfg}}
  - name: sec
    secret: {{secretName: sec}}
  - name: pod
    downwardAPI:
      items:
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
"#
    );
    c.ok_in(&["apply", "-f", "-"], &yaml);
    let pod = wait_pod(&c, "reader", Duration::from_secs(60), |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    });
    let done = &container(&pod, "main")["state"]["terminated"];
    assert_eq!(phase(&pod), "Succeeded", "{done}");
    let message = done["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("env: hello-config s3cret reader 64 plain\n"),
        "{message}"
    );
    assert!(
        message.contains("hello-configs3cretreadertier=\"backend\""),
        "{message}"
    );
    // A missing configMap key reference is a configuration error, shown as upstream.
    let broken = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: broken\nspec:\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [\"sleep\", \"3600\"]\n    env:\n    - name: X\n      valueFrom: {{configMapKeyRef: {{name: nope, key: k}}}}\n"
    );
    c.ok_in(&["apply", "-f", "-"], &broken);
    let pod = wait_pod(&c, "broken", Duration::from_secs(60), |p| {
        container(p, "main")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let message = container(&pod, "main")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(message, "configmap \"nope\" not found");
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let c = Cluster::start_node();
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: staged
spec:
  restartPolicy: Never
  initContainers:
  - name: first
    image: {BUSYBOX}
    command: ["sh", "-c", "sleep 1; echo one > /work/log"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: second
    image: {BUSYBOX}
    command: ["sh", "-c", "echo two >> /work/log"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "cat /work/log > /dev/termination-log"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  volumes:
  - name: work
    emptyDir: {{}}
"#
    );
    c.ok_in(&["apply", "-f", "-"], &yaml);
    let pod = wait_pod(&c, "staged", Duration::from_secs(60), |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    });
    assert_eq!(phase(&pod), "Succeeded", "{}", pod["status"]);
    let message = container(&pod, "main")["state"]["terminated"]["message"]
        .as_str()
        .unwrap_or("");
    assert_eq!(message, "one\ntwo\n");
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .expect("init statuses");
    assert_eq!(inits.len(), 2);
    for init in inits {
        assert_eq!(init["state"]["terminated"]["reason"], "Completed", "{init}");
    }
    assert_eq!(condition(&pod, "Initialized")["status"], "True");
}

#[test]
fn host_network_and_host_port_pods_answer_on_the_node() {
    let c = Cluster::start_node();
    let host_port = common::free_port();
    let host_net_port = common::free_port();
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: mapped
spec:
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www && echo via-host-port > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
    - {{containerPort: 80, hostPort: {host_port}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: hostnet
spec:
  hostNetwork: true
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www && echo via-host-network > /www/index.html && exec httpd -f -p {host_net_port} -h /www"]
"#
    );
    c.ok_in(&["apply", "-f", "-"], &yaml);
    let mapped = wait_pod(&c, "mapped", Duration::from_secs(60), running_and_ready);
    let hostnet = wait_pod(&c, "hostnet", Duration::from_secs(60), running_and_ready);
    let node_ip = mapped["status"]["hostIP"].as_str().unwrap().to_string();
    assert_eq!(
        hostnet["status"]["podIP"],
        node_ip.as_str(),
        "a hostNetwork pod has the node's IP"
    );
    let get = |addr: String| -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt =
                TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                    let mut body = String::new();
                    s.read_to_string(&mut body)?;
                    Ok(body)
                });
            match attempt {
                Ok(body) => return body,
                Err(err) if Instant::now() > deadline => panic!("GET http://{addr}/: {err}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    };
    assert!(get(format!("{node_ip}:{host_port}")).contains("via-host-port"));
    assert!(get(format!("{node_ip}:{host_net_port}")).contains("via-host-network"));
}

#[test]
fn a_new_image_in_the_pod_spec_restarts_the_container() {
    let c = Cluster::start_node();
    let images = tempfile::tempdir().unwrap();
    let tarball = images.path().join("busybox-2.tar");
    let busybox = std::fs::read("/bin/busybox").unwrap();
    capstan_containerd::archive::busybox(
        "docker.io/capstan-e2e/busybox:2",
        busybox,
        capstan_containerd::archive::BUSYBOX_APPLETS,
    )
    .env("VERSION=2") // another image, not the same one under a second name
    .write_to(&tarball)
    .unwrap();
    c.import_image(&tarball);
    c.ok_in(
        &["apply", "-f", "-"],
        &pod_yaml("upgrade", "exec sleep 3600", "  terminationGracePeriodSeconds: 1\n"),
    );
    let first = wait_pod(&c, "upgrade", Duration::from_secs(60), running_and_ready);
    let first_id = container(&first, "main")["containerID"].as_str().unwrap().to_string();

    c.ok(&["set", "image", "pod/upgrade", "main=capstan-e2e/busybox:2"]);
    let pod = wait_pod(&c, "upgrade", Duration::from_secs(60), |p| {
        let m = container(p, "main");
        m["image"] == "docker.io/capstan-e2e/busybox:2" && m["state"]["running"].is_object()
    });
    let main = container(&pod, "main");
    assert_ne!(main["containerID"], first_id.as_str(), "a new container");
    assert_eq!(main["restartCount"], 1, "{main}");
    assert_eq!(
        main["lastState"]["terminated"]["containerID"],
        first_id.as_str(),
        "{main}"
    );
    wait_event(
        &c,
        "upgrade",
        "Killing",
        "Container main definition changed, will be restarted",
    );
}
