//! Bodies captured from the real kubectl (v1.33) against a plain HTTP listener, with `kubectl --server
//! http://127.0.0.1:PORT create ...`: `fixtures/NAME.pb` is the request body kubectl sent
//! (`application/vnd.kubernetes.protobuf`), `fixtures/NAME.json` what the same command prints with
//! `--dry-run=client -o json` — Go's JSON of the same object, i.e. what the decoded body must equal.
//!
//! The commands, in `fixtures/README.md`.

use std::path::Path;

use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn decoded(name: &str) -> Value {
    capstan_protobuf::decode(&fixture(&format!("{name}.pb"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Top-level lists that Go writes as `null` when absent (no `omitempty`, and the openapi schema does not say
/// so): the decoder leaves absent lists out, which means the same to every reader.
const GO_NULL_LISTS: &[(&str, &str)] = &[("clusterrole-aggregated", "rules")];

/// Every fixture with a `-o json` twin decodes to exactly that JSON.
#[test]
fn kubectl_create_bodies_decode_to_kubectl_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .filter(|name| dir.join(format!("{name}.pb")).exists())
        .collect();
    names.sort();
    assert!(names.len() >= 20, "fixtures: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let mut want: Value = serde_json::from_slice(&fixture(&format!("{name}.json"))).unwrap();
        for (fixture, key) in GO_NULL_LISTS {
            if fixture == name {
                assert_eq!(want[key], Value::Null);
                want.as_object_mut().unwrap().remove(*key);
            }
        }
        let got = decoded(name);
        if got != want {
            failures.push(format!(
                "{name}:\n  got  {}\n  want {}",
                serde_json::to_string(&got).unwrap(),
                serde_json::to_string(&want).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// `kubectl auth can-i get pods -n kube-system` (no `-o json` for it).
#[test]
fn auth_can_i_sends_a_self_subject_access_review() {
    assert_eq!(
        decoded("auth-can-i"),
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {"namespace": "kube-system", "verb": "get", "resource": "pods"}},
            "status": {"allowed": false},
        })
    );
}

/// `kubectl create token sa1 --duration=10m --audience=api`, POSTed to `serviceaccounts/sa1/token`.
#[test]
fn create_token_sends_a_token_request() {
    assert_eq!(
        decoded("token"),
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"creationTimestamp": null},
            "spec": {"audiences": ["api"], "expirationSeconds": 600},
            "status": {"expirationTimestamp": null},
        })
    );
}

/// `kubectl debug p1 --image=busybox --copy-to=p1-debug --profile=restricted`: a copy of the pod kubectl
/// read (`fixtures/README.md`) plus the debug container. Pointers holding zero or false stay
/// (`automountServiceAccountToken`, `enableServiceLinks`, `priority`, `allowPrivilegeEscalation`).
#[test]
fn debug_copy_sends_the_copied_pod() {
    let pod = decoded("debug-copy");
    assert_eq!(
        pod["metadata"],
        json!({"name": "p1-debug", "namespace": "default", "creationTimestamp": null})
    );
    assert_eq!(
        pod["spec"]["containers"][1],
        json!({
            "name": pod["spec"]["containers"][1]["name"],
            "image": "busybox",
            "resources": {},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "terminationMessagePolicy": "File",
        })
    );
    let mut spec = pod["spec"].clone();
    spec.as_object_mut().unwrap().remove("containers");
    assert_eq!(
        spec,
        json!({
            "automountServiceAccountToken": false,
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": false,
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "shareProcessNamespace": true,
            "terminationGracePeriodSeconds": 30,
        })
    );
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"],
        json!({"allowPrivilegeEscalation": false, "runAsNonRoot": true})
    );
    assert_eq!(pod["status"], json!({}));
}

/// Damaged bodies are errors or some object, never a panic.
#[test]
fn damaged_bodies_do_not_panic() {
    let body = fixture("deployment.pb");
    for i in 0..body.len() {
        for bit in 0..8 {
            let mut damaged = body.clone();
            damaged[i] ^= 1 << bit;
            let _ = capstan_protobuf::decode(&damaged);
        }
        let _ = capstan_protobuf::decode(&body[..i]);
    }
}
