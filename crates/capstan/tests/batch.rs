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
fn active_deadline_fails_a_job_and_its_ttl_deletes_it() {
    let cluster = Cluster::start();
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
}

/// The one slow test: a CronJob due every minute starts a Job within ~65 s.
#[test]
fn cronjob_creates_a_job_at_the_next_minute() {
    let cluster = Cluster::start();
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
