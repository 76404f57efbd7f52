//! `kubectl logs`, `exec`, `attach` and `port-forward` end to end: the real kubectl 1.32 against
//! `capstan server` with its real node — through the API server's proxy and the kubelet's streaming
//! server to containerd. kubectl tries WebSocket first; each test also forces the SPDY fallback once
//! (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`), so both
//! transports are proven. The Python client (WebSocket `v4.channel.k8s.io` for exec and port-forward) is
//! checked too.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{BUSYBOX, Cluster};
use serde_json::Value;

/// A pod of the busybox image running `script` with `sh -c`.
fn pod_yaml(name: &str, script: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra_spec}  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [\"sh\", \"-c\", {script:?}]\n"
    )
}

/// Polls the pod until `done` holds; returns it.
fn wait_pod(c: &Cluster, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let out = c.kubectl(&["get", "pod", name, "-o", "json"]);
        if out.status.success() {
            last = serde_json::from_slice(&out.stdout).expect("pod JSON");
            if done(&last) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pod {name} did not get there; status:\n{}", last["status"]);
}

fn running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// kubectl with extra environment variables.
fn kubectl_env(c: &Cluster, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new("kubectl");
    command
        .args(args)
        .env("KUBECONFIG", c.kubeconfig())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("kubectl");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("kubectl output")
}

/// Kills a child process on drop (by PID), so a failing assertion leaves no kubectl behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn logs_follow_tail_timestamps_previous_and_errors() {
    let c = Cluster::start_node();
    let ticker = "echo first; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done";
    c.ok_in(&["apply", "-f", "-"], &pod_yaml("ticker", ticker, ""));
    let restarting = "echo attempt; sleep 1; exit 1";
    c.ok_in(&["apply", "-f", "-"], &pod_yaml("restarting", restarting, ""));
    let missing = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: missing\nspec:\n  containers:\n  - name: main\n    image: capstan-e2e/missing:1\n    imagePullPolicy: Never\n";
    c.ok_in(&["apply", "-f", "-"], missing);
    wait_pod(&c, "ticker", running);
    std::thread::sleep(Duration::from_secs(1));

    let all = c.ok(&["logs", "ticker"]);
    assert!(all.starts_with("first\ntick 0\n"), "{all}");
    let tail = c.ok(&["logs", "ticker", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("tick "), "{tail}");
    let stamped = c.ok(&["logs", "ticker", "--tail=2", "--timestamps"]);
    for line in stamped.lines() {
        let (stamp, rest) = line.split_once(' ').expect("timestamp and line");
        assert!(stamp.contains('T') && stamp.len() >= 20, "{line}");
        assert!(rest.starts_with("tick "), "{line}");
    }
    let limited = c.ok(&["logs", "ticker", "--limit-bytes=3"]);
    assert_eq!(limited, "fir");

    // -f streams lines written after it started.
    let mut follow = Killed(
        Command::new("kubectl")
            .args(["logs", "-f", "ticker", "--tail=0"])
            .env("KUBECONFIG", c.kubeconfig())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl logs -f"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut streamed = Vec::new();
    while streamed.len() < 3 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("kubectl logs -f streams new lines");
        streamed.push(line);
    }
    assert!(streamed.iter().all(|l| l.starts_with("tick ")), "{streamed:?}");
    drop(follow);

    // --previous: the instance before the restart.
    wait_pod(&c, "restarting", |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    assert_eq!(c.ok(&["logs", "restarting", "--previous"]), "attempt\n");
    let err = c.fails(&["logs", "ticker", "--previous"]);
    assert!(
        err.contains("previous terminated container \"main\" in pod \"ticker\" not found"),
        "{err}"
    );

    // Upstream's errors for containers without logs and bad options.
    wait_pod(&c, "missing", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    });
    let err = c.fails(&["logs", "missing"]);
    assert!(
        err.contains("container \"main\" in pod \"missing\" is waiting to start: ErrImageNeverPull"),
        "{err}"
    );
    let err = c.fails(&["logs", "ticker", "-c", "nope"]);
    assert!(err.contains("container nope is not valid for pod ticker"), "{err}");
}

#[test]
fn exec_output_exit_codes_stdin_and_both_transports() {
    let c = Cluster::start_node();
    c.ok_in(&["apply", "-f", "-"], &pod_yaml("shell", "exec sleep 3600", ""));
    wait_pod(&c, "shell", running);

    for env in [&[][..], &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..]] {
        // Output on both streams.
        let out = kubectl_env(
            &c,
            env,
            &["exec", "shell", "--", "sh", "-c", "echo out; echo err >&2"],
            None,
        );
        assert!(out.status.success(), "{env:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "out\n");
        assert!(text(&out.stderr).contains("err"), "{}", text(&out.stderr));

        // The exit code is kubectl's.
        let out = kubectl_env(&c, env, &["exec", "shell", "--", "sh", "-c", "exit 3"], None);
        assert_eq!(out.status.code(), Some(3), "{env:?}: {}", text(&out.stderr));

        // Standard input, ending with EOF.
        let out = kubectl_env(
            &c,
            env,
            &["exec", "-i", "shell", "--", "sh", "-c", "cat; echo done"],
            Some("in\n"),
        );
        assert!(out.status.success(), "{env:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "in\ndone\n");
    }

    // Which transport each mode used: client-go logs the WebSocket sub-protocol it negotiated.
    let websocket = kubectl_env(&c, &[], &["exec", "shell", "-v=4", "--", "true"], None);
    assert!(
        text(&websocket.stderr).contains("The subprotocol is v5.channel.k8s.io"),
        "{}",
        text(&websocket.stderr)
    );
    let spdy = kubectl_env(
        &c,
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")],
        &["exec", "shell", "-v=4", "--", "true"],
        None,
    );
    assert!(spdy.status.success());
    assert!(
        !text(&spdy.stderr).contains("The subprotocol is"),
        "{}",
        text(&spdy.stderr)
    );

    // The kubelet's stats through the API server's node proxy: the pod and its container with cpu and memory.
    let node = c.node_name().to_string();
    assert_eq!(
        c.ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/healthz")]),
        "ok"
    );
    let summary: Value =
        serde_json::from_str(&c.ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/stats/summary")])).unwrap();
    assert_eq!(summary["node"]["nodeName"], node.as_str());
    let pod = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "shell")
        .unwrap_or_else(|| panic!("pod shell in {summary}"));
    assert!(pod["memory"]["workingSetBytes"].as_u64().is_some(), "{pod}");
    assert!(pod["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0, "{pod}");
    assert_eq!(pod["containers"][0]["name"], "main", "{pod}");
    assert!(
        pod["containers"][0]["memory"]["usageBytes"].as_u64().unwrap() > 0,
        "{pod}"
    );

    // Errors from the kubelet's side become kubectl errors.
    let err = c.fails(&["exec", "shell", "-c", "nope", "--", "true"]);
    assert!(err.contains("container nope is not valid for pod shell"), "{err}");
}

/// `kubectl attach -i` to a container reading its stdin: what kubectl reads reaches the process, whose output
/// comes back; with `stdinOnce` the process sees EOF when kubectl's input ends. Both transports.
#[test]
fn attach_to_a_running_container() {
    let c = Cluster::start_node();
    for (name, env) in [
        ("attach-ws", &[][..]),
        ("attach-spdy", &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..]),
    ] {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    stdin: true\n    stdinOnce: true\n    command: [\"sh\", \"-c\", \"read line; echo got $line\"]\n"
        );
        c.ok_in(&["apply", "-f", "-"], &yaml);
        wait_pod(&c, name, running);
        let out = kubectl_env(&c, env, &["attach", "-i", name], Some("hello\n"));
        assert!(out.status.success(), "{env:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("got hello"),
            "{env:?}: {}",
            text(&out.stdout)
        );
        let done = wait_pod(&c, name, |p| p["status"]["phase"] == "Succeeded");
        assert_eq!(
            done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
    }
}

/// `kubectl exec -it` under a pseudo-terminal (util-linux `script`): the terminal size arrives through the
/// resize stream, the process has a tty, and the exit code comes back.
#[test]
fn exec_it_with_a_pseudo_terminal() {
    let c = Cluster::start_node();
    c.ok_in(&["apply", "-f", "-"], &pod_yaml("tty", "exec sleep 3600", ""));
    wait_pod(&c, "tty", running);
    for env in ["", "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false "] {
        let inner = format!(
            "stty cols 101 rows 31; {env}kubectl --kubeconfig {} exec -it tty -- sh -c 'sleep 1; stty size; tty; exit 4'",
            c.kubeconfig().display()
        );
        let mut child = Killed(
            Command::new("script")
                .args(["-qec", &inner, "/dev/null"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("script"),
        );
        let mut stdout = child.0.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stdout.read_to_string(&mut all);
            all
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "kubectl exec -it did not finish");
            std::thread::sleep(Duration::from_millis(100));
        };
        let output = reader.join().unwrap();
        assert!(output.contains("31 101"), "{env}terminal size: {output:?}");
        assert!(output.contains("/dev/pts/"), "{env}a tty: {output:?}");
        assert_eq!(status.code(), Some(4), "{env}: {output:?}");
        assert!(!output.contains("Unknown stream id"), "{env}: {output:?}");
    }
}

/// Reads `kubectl port-forward`'s "Forwarding from 127.0.0.1:PORT" line.
fn forwarded_port(child: &mut Child) -> u16 {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("kubectl port-forward starts");
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            return rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
}

fn http_get(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forwarded port");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("an answer through the tunnel");
    answer
}

#[test]
fn port_forward_then_http_through_it() {
    let c = Cluster::start_node();
    let httpd = "mkdir -p /www && echo forwarded-ok > /www/index.html && exec httpd -f -p 8080 -h /www";
    c.ok_in(&["apply", "-f", "-"], &pod_yaml("web", httpd, ""));
    wait_pod(&c, "web", running);
    for env in [None, Some(("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"))] {
        let mut command = Command::new("kubectl");
        command
            .args(["port-forward", "pod/web", ":8080"])
            .env("KUBECONFIG", c.kubeconfig())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let mut child = Killed(command.spawn().expect("kubectl port-forward"));
        let port = forwarded_port(&mut child.0);
        for _ in 0..2 {
            let answer = http_get(port);
            assert!(answer.starts_with("HTTP/1.1 200 OK"), "{env:?}: {answer}");
            assert!(answer.ends_with("forwarded-ok\n"), "{env:?}: {answer}");
        }
    }

    // The Python client: exec and port-forward over WebSocket v4 channels.
    let script = r#"
import sys
from kubernetes import client, config
from kubernetes.stream import portforward, stream
config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
out = stream(api.connect_get_namespaced_pod_exec, "web", "default", command=["sh", "-c", "echo py-exec"],
             stderr=True, stdin=False, stdout=True, tty=False)
print(out, end="")
pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
sock = pf.socket(8080)
sock.setblocking(True)
sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = b""
while True:
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
sock.close()
print(data.decode(), end="")
assert pf.error(8080) is None, pf.error(8080)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(c.kubeconfig())
        .output()
        .expect("python3 (the Makefile installs the kubernetes package)");
    assert!(
        out.status.success(),
        "python: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let printed = text(&out.stdout);
    assert!(printed.starts_with("py-exec\n"), "{printed}");
    assert!(printed.ends_with("forwarded-ok\n"), "{printed}");
}
