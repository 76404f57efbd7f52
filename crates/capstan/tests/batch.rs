//! End to end: Jobs, CronJobs, TTL-after-finished and ReplicationControllers
//! on the real `capstan` server, driven by the real kubectl. Pods run on
//! hollow nodes (`capstan agent --simulate`), which finish them as the
//! `simulate.capstan.io/exit-after` annotation asks.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use serde_json::Value;

/// Polls `check` until it returns `Some`, for at most `secs` seconds.
fn eventually<T>(cluster: &Cluster, secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            let state = cluster.kubectl(&["get", "jobs,cronjobs,rc,pods", "-o", "yaml"]);
            panic!(
                "timed out waiting for {what}:\n{}",
                String::from_utf8_lossy(&state.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn job_manifest(name: &str, spec: &str, exit_after: &str, exit_code: i32) -> String {
    format!(
        r#"{{"apiVersion": "batch/v1", "kind": "Job", "metadata": {{"name": "{name}"}},
        "spec": {{{spec}
          "template": {{
            "metadata": {{"annotations": {{"simulate.capstan.io/exit-after": "{exit_after}",
                                          "simulate.capstan.io/exit-code": "{exit_code}"}}}},
            "spec": {{"restartPolicy": "Never", "containers": [{{"name": "c", "image": "busybox"}}]}}}}}}}}"#
    )
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    let conditions = job["status"]["conditions"].as_array()?;
    conditions.iter().find(|c| c["type"] == type_ && c["status"] == "True")
}

fn events_for(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let selector = format!("involvedObject.name={name}");
    let events = cluster.get_json(&["get", "events", "--field-selector", &selector]);
    let items = events["items"].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    items
        .iter()
        .map(|e| (text(&e["reason"]), text(&e["message"])))
        .collect()
}

#[test]
fn invalid_schedules_and_selectors_are_rejected_with_422() {
    let cluster = Cluster::start();
    let err = cluster.fails(&["create", "cronjob", "bad", "--image=busybox", "--schedule=61 * * * *"]);
    assert!(
        err.contains(
            r#"CronJob.batch "bad" is invalid: spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#
        ),
        "{err}"
    );
    let zoned = r#"{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "zoned"},
        "spec": {"schedule": "0 * * * *", "timeZone": "Mars/Olympus", "jobTemplate": {"spec": {"template": {
          "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}"#;
    let out = cluster.kubectl_in(&["create", "-f", "-"], Some(zoned));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#),
        "{err}"
    );
    let mismatched = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "db"}},
          "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}"#;
    let out = cluster.kubectl_in(&["create", "-f", "-"], Some(mismatched));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`"),
        "{err}"
    );
    let bad_operator = job_manifest(
        "op",
        r#""manualSelector": true, "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]},"#,
        "1s",
        0,
    );
    let out = cluster.kubectl_in(&["create", "-f", "-"], Some(&bad_operator));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            r#"spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator"#
        ),
        "{err}"
    );
    // The API answers 422 Unprocessable Entity for all of them.
    let out = cluster.kubectl_in(&["create", "-f", "-", "-v=6"], Some(zoned));
    assert!(String::from_utf8_lossy(&out.stderr).contains("422 Unprocessable Entity"));
}

#[test]
fn jobs_complete_by_count_and_by_index() {
    let cluster = Cluster::start();
    let _nodes = cluster.simulate(2);
    cluster.ok_in(
        &["create", "-f", "-"],
        &job_manifest("three", r#""completions": 3, "parallelism": 2,"#, "1s", 0),
    );
    let indexed = r#""completions": 3, "parallelism": 3, "completionMode": "Indexed","#;
    cluster.ok_in(&["create", "-f", "-"], &job_manifest("idx", indexed, "1s", 0));
    for job in ["job/three", "job/idx"] {
        cluster.ok(&["wait", "--for=condition=complete", job, "--timeout=60s"]);
    }
    let job = cluster.get_json(&["get", "job", "three"]);
    assert_eq!(job["status"]["succeeded"], 3);
    assert!(job["status"]["failed"].is_null() && job["status"]["active"].is_null());
    assert!(job["status"]["completionTime"].is_string());
    let types: Vec<&str> = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    let complete = condition(&job, "Complete").unwrap();
    assert_eq!(
        (&complete["reason"], &complete["message"]),
        (
            &"CompletionsReached".into(),
            &"Reached expected number of succeeded pods".into()
        )
    );
    let events = events_for(&cluster, "three");
    let created = events.iter().filter(|(r, _)| r == "SuccessfulCreate").count();
    assert_eq!(created, 3, "{events:?}");
    assert!(
        events.contains(&("Completed".into(), "Job completed".into())),
        "{events:?}"
    );
    let pods = cluster.get_json(&["get", "pods", "-l", "job-name=three"]);
    for pod in pods["items"].as_array().unwrap() {
        assert_eq!(pod["status"]["phase"], "Succeeded");
        let finalizers = pod["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
        assert!(finalizers.is_empty(), "the tracking finalizer is released: {pod}");
    }
    let printed = cluster.ok(&["get", "job", "three"]);
    assert!(printed.contains("Complete") && printed.contains("3/3"), "{printed}");

    let job = cluster.get_json(&["get", "job", "idx"]);
    assert_eq!(job["status"]["completedIndexes"], "0-2");
    assert_eq!(job["status"]["succeeded"], 3);
    let pods = cluster.get_json(&["get", "pods", "-l", "job-name=idx"]);
    let mut hostnames: Vec<String> = Vec::new();
    for pod in pods["items"].as_array().unwrap() {
        let index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap();
        assert_eq!(
            pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
            index
        );
        assert!(
            pod["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("idx-{index}-"))
        );
        hostnames.push(pod["spec"]["hostname"].as_str().unwrap().to_string());
        let env = &pod["spec"]["containers"][0]["env"][0];
        assert_eq!(env["name"], "JOB_COMPLETION_INDEX");
        assert_eq!(
            env["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
    }
    hostnames.sort();
    assert_eq!(hostnames, ["idx-0", "idx-1", "idx-2"]);
}

#[test]
fn failing_jobs_fail_by_backoff_limit_and_by_pod_failure_policy() {
    let cluster = Cluster::start();
    let _nodes = cluster.simulate(1);
    cluster.ok_in(
        &["create", "-f", "-"],
        &job_manifest("crash", r#""backoffLimit": 0,"#, "1s", 1),
    );
    let policy = r#""backoffLimit": 6, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]},"#;
    cluster.ok_in(&["create", "-f", "-"], &job_manifest("fatal", policy, "1s", 42));
    for job in ["job/crash", "job/fatal"] {
        cluster.ok(&["wait", "--for=condition=failed", job, "--timeout=60s"]);
    }
    let job = cluster.get_json(&["get", "job", "crash"]);
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(failed["message"], "Job has reached the specified backoff limit");
    assert_eq!(job["status"]["failed"], 1);
    assert!(job["status"]["completionTime"].is_null());
    let events = events_for(&cluster, "crash");
    assert!(events.contains(&(
        "BackoffLimitExceeded".into(),
        "Job has reached the specified backoff limit".into()
    )));

    let job = cluster.get_json(&["get", "job", "fatal"]);
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed["reason"], "PodFailurePolicy");
    let pod = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=fatal",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let message =
        format!("Container c for pod default/{pod} failed with exit code 42 matching FailJob rule at index 0");
    assert_eq!(failed["message"], message.as_str());
    assert_eq!(
        job["status"]["failed"], 1,
        "one pod, not the six retries of the backoff limit"
    );
}

#[test]
fn active_deadline_fails_a_job_and_its_ttl_deletes_it() {
    let cluster = Cluster::start();
    let _nodes = cluster.simulate(1);
    let manifest = job_manifest(
        "slow",
        r#""activeDeadlineSeconds": 2, "ttlSecondsAfterFinished": 3,"#,
        "1h",
        0,
    );
    cluster.ok_in(&["create", "-f", "-"], &manifest);
    let job = eventually(&cluster, 20, "the Job to fail", || {
        let job = cluster.get_json(&["get", "job", "slow"]);
        condition(&job, "Failed").is_some().then_some(job)
    });
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed["reason"], "DeadlineExceeded");
    assert_eq!(failed["message"], "Job was active longer than specified deadline");
    assert_eq!(condition(&job, "FailureTarget").unwrap()["reason"], "DeadlineExceeded");
    assert!(job["status"]["active"].is_null(), "no pod is left running");
    let events = events_for(&cluster, "slow");
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: slow-"))
    );
    assert!(events.contains(&(
        "DeadlineExceeded".into(),
        "Job was active longer than specified deadline".into()
    )));
    eventually(&cluster, 20, "the TTL to delete the Job and its pods", || {
        let out = cluster.kubectl(&["get", "job", "slow"]);
        let pods = cluster.ok(&["get", "pods", "-l", "job-name=slow", "-o", "name"]);
        (!out.status.success() && pods.trim().is_empty()).then_some(())
    });
}

#[test]
fn cronjob_manual_job_and_replication_controller_scaling() {
    let cluster = Cluster::start();
    cluster.ok(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=@midnight",
    ]);
    cluster.ok(&["create", "job", "manual", "--from=cronjob/nightly"]);
    let job = cluster.get_json(&["get", "job", "manual"]);
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    let selector = &job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"];
    assert_eq!(selector, &job["metadata"]["uid"]);
    eventually(&cluster, 20, "the manual Job's pod", || {
        let pods = cluster.ok(&["get", "pods", "-l", "job-name=manual", "-o", "name"]);
        pods.starts_with("pod/manual-").then_some(())
    });

    let rc = r#"{"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "legacy"}},
          "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}"#;
    cluster.ok_in(&["create", "-f", "-"], rc);
    let count = |n: usize| {
        eventually(&cluster, 20, &format!("{n} replicas"), || {
            let pods = cluster.ok(&["get", "pods", "-l", "app=legacy", "-o", "name"]);
            let rc = cluster.get_json(&["get", "rc", "legacy"]);
            (pods.lines().count() == n && rc["status"]["replicas"] == n).then_some(())
        })
    };
    count(2);
    cluster.ok(&["scale", "rc", "legacy", "--replicas=4"]);
    count(4);
    cluster.ok(&["scale", "rc", "legacy", "--replicas=1"]);
    count(1);
    let table = cluster.ok(&["get", "rc", "legacy"]);
    assert!(table.lines().next().unwrap().contains("DESIRED"), "{table}");
    let events = events_for(&cluster, "legacy");
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "SuccessfulDelete" && m.starts_with("Deleted pod: legacy-"))
    );
}

#[test]
fn suspended_job_starts_when_resumed() {
    let cluster = Cluster::start();
    cluster.ok_in(
        &["create", "-f", "-"],
        &job_manifest(
            "later",
            r#""suspend": true, "parallelism": 2, "completions": 4,"#,
            "1h",
            0,
        ),
    );
    let job = eventually(&cluster, 20, "the Suspended condition", || {
        let job = cluster.get_json(&["get", "job", "later"]);
        condition(&job, "Suspended").is_some().then_some(job)
    });
    assert_eq!(condition(&job, "Suspended").unwrap()["reason"], "JobSuspended");
    assert!(job["status"]["startTime"].is_null(), "a suspended Job has not started");
    assert_eq!(cluster.ok(&["get", "pods", "-l", "job-name=later", "-o", "name"]), "");
    cluster.ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    let job = eventually(&cluster, 20, "two pods after resuming", || {
        let job = cluster.get_json(&["get", "job", "later"]);
        (job["status"]["active"] == 2).then_some(job)
    });
    let suspended = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Suspended")
        .unwrap();
    assert_eq!(
        (&suspended["status"], &suspended["reason"]),
        (&"False".into(), &"JobResumed".into())
    );
    assert!(job["status"]["startTime"].is_string());
    let events = events_for(&cluster, "later");
    assert!(
        events.contains(&("Suspended".into(), "Job suspended".into())),
        "{events:?}"
    );
    assert!(events.contains(&("Resumed".into(), "Job resumed".into())), "{events:?}");
    // Suspending again deletes the running pods without counting them as failed.
    cluster.ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    eventually(&cluster, 20, "the pods to go", || {
        let job = cluster.get_json(&["get", "job", "later"]);
        let pods = cluster.ok(&["get", "pods", "-l", "job-name=later", "-o", "name"]);
        (job["status"]["active"].is_null() && pods.is_empty() && job["status"]["failed"].is_null()).then_some(())
    });
    // Deleting a Job with running pods: the garbage collector deletes them and
    // the tracking finalizer of the orphans is released, so they go.
    cluster.ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    eventually(&cluster, 20, "pods again", || {
        let pods = cluster.ok(&["get", "pods", "-l", "job-name=later", "-o", "name"]);
        (pods.lines().count() == 2).then_some(())
    });
    cluster.ok(&["delete", "job", "later", "--wait=false"]);
    eventually(&cluster, 20, "the orphaned pods to go", || {
        let pods = cluster.ok(&["get", "pods", "-l", "job-name=later", "-o", "name"]);
        pods.is_empty().then_some(())
    });
}

/// The one slow test: a CronJob due every minute starts a Job within ~65 s.
#[test]
fn cronjob_creates_a_job_at_the_next_minute() {
    let cluster = Cluster::start();
    let _nodes = cluster.simulate(1);
    let manifest = r#"{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "minutely"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"metadata": {"labels": {"kind": "tick"}}, "spec": {"template": {
          "metadata": {"annotations": {"simulate.capstan.io/exit-after": "1s"}},
          "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}"#;
    cluster.ok_in(&["create", "-f", "-"], manifest);
    let job = eventually(&cluster, 70, "the first scheduled Job", || {
        let jobs = cluster.get_json(&["get", "jobs", "-l", "kind=tick"]);
        jobs["items"].as_array()?.first().cloned()
    });
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    let minutes: i64 = name.strip_prefix("minutely-").unwrap().parse().unwrap();
    let scheduled = k8s_openapi::jiff::Timestamp::from_second(minutes * 60).unwrap();
    let annotation = &job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"];
    assert_eq!(
        annotation.as_str().unwrap(),
        scheduled.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "minutely");
    let cronjob = eventually(&cluster, 10, "the CronJob's status", || {
        let cj = cluster.get_json(&["get", "cronjob", "minutely"]);
        cj["status"]["lastScheduleTime"].is_string().then_some(cj)
    });
    assert_eq!(
        cronjob["status"]["lastScheduleTime"].as_str().unwrap(),
        scheduled.to_string()
    );
    let events = events_for(&cluster, "minutely");
    assert!(
        events.contains(&("SuccessfulCreate".into(), format!("Created job {name}"))),
        "{events:?}"
    );
}
