//! Jobs and CronJobs on the server's own node, driven with the real
//! kubectl: completions and parallelism, back-off limits (restartPolicy
//! Never and OnFailure), Indexed Jobs and their back-off limits per index
//! (`failedIndexes`, `maxFailedIndexes`, `FailIndex`), deadlines, suspension, deletion
//! after a TTL; CronJobs that run on schedule, keep their history to its
//! limits and seed `kubectl create job --from`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::pods::BUSYBOX;
use common::{Server, eventually, manifest, node_server};
use serde_json::{Value, json};

/// A Job whose pods run `script` in busybox's sh; `spec` adds to its spec.
fn job(name: &str, restart_policy: &str, script: &str, spec: Value) -> Value {
    let mut job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "work", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
            }],
        }}},
    });
    for (key, value) in spec.as_object().into_iter().flatten() {
        job["spec"][key] = value.clone();
    }
    job
}

fn apply_manifest(server: &Server, namespace: &str, relative: &str) {
    let path = manifest(relative);
    server
        .kubectl(&["apply", "-n", namespace, "-f", path.to_str().unwrap()])
        .ok();
}

/// `kubectl wait --for=condition=<condition> job/<name>`, as a user waits.
fn wait_for(server: &Server, namespace: &str, name: &str, condition: &str) {
    server
        .kubectl(&[
            "wait",
            "-n",
            namespace,
            &format!("--for=condition={condition}"),
            &format!("job/{name}"),
            "--timeout=150s",
        ])
        .ok();
}

/// The condition of this type in an object's status (null if absent).
fn condition<'a>(object: &'a Value, type_: &str) -> &'a Value {
    object["status"]["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// The Job's pods, found by the label the API server gives them.
fn job_pods(server: &Server, namespace: &str, job: &str) -> Vec<Value> {
    let out = server
        .kubectl(&[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            &format!("batch.kubernetes.io/job-name={job}"),
            "-o",
            "json",
        ])
        .ok();
    let list: Value = serde_json::from_str(&out).expect("a pod list");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

fn described(server: &Server, namespace: &str, kind: &str, name: &str) -> String {
    server
        .kubectl(&["describe", kind, name, "-n", namespace])
        .ok()
}

/// An RFC 3339 time as the API server writes it (UTC, whole seconds), so
/// that comparing the strings compares the times.
fn timestamp(value: &Value) -> String {
    let time = value.as_str().unwrap_or_default();
    assert!(
        time.len() == 20 && time.ends_with('Z'),
        "not a timestamp: {value}"
    );
    time.to_owned()
}

#[test]
fn a_job_runs_three_completions_two_at_a_time_and_keeps_its_pods() {
    let server = node_server();
    let ns = server.namespace("parallel");
    apply_manifest(server, &ns, "jobs/parallel.yaml");
    wait_for(server, &ns, "parallel", "complete");

    let job = server.get_json(&ns, "job", "parallel");
    assert_eq!(job["status"]["succeeded"], 3, "{}", job["status"]);
    assert_eq!(job["status"]["ready"], 0, "{}", job["status"]);
    assert!(job["status"]["active"].is_null(), "{}", job["status"]);
    assert!(job["status"]["failed"].is_null(), "{}", job["status"]);
    for type_ in ["SuccessCriteriaMet", "Complete"] {
        let c = condition(&job, type_);
        assert_eq!(c["status"], "True", "{type_}: {}", job["status"]);
        assert_eq!(c["reason"], "CompletionsReached", "{c}");
    }
    let started = timestamp(&job["status"]["startTime"]);
    assert!(timestamp(&job["status"]["completionTime"]) >= started);

    // Finished pods are kept, counted and released from the finalizer.
    let pods = job_pods(server, &ns, "parallel");
    assert_eq!(pods.len(), 3, "{pods:?}");
    for pod in &pods {
        assert_eq!(phase(pod), "Succeeded", "{pod}");
        let finalizers = pod["metadata"]["finalizers"].to_string();
        assert!(!finalizers.contains("job-tracking"), "{finalizers}");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "Job");
    }
    // Two pods were made at once, the third only after one finished.
    let mut created: Vec<String> = pods
        .iter()
        .map(|p| timestamp(&p["metadata"]["creationTimestamp"]))
        .collect();
    created.sort();
    let first_end = pods
        .iter()
        .map(|p| {
            timestamp(&p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"])
        })
        .min()
        .unwrap();
    assert!(
        created[1] <= first_end,
        "the second pod waited for the first"
    );
    assert!(created[2] >= first_end, "three pods ran at once");
    assert!(
        server
            .kubectl(&["logs", "-n", &ns, "job/parallel"])
            .ok()
            .contains("done")
    );
    let events = described(server, &ns, "job", "parallel");
    assert_eq!(
        events.matches("Created pod: parallel-").count(),
        3,
        "{events}"
    );
    assert!(events.contains("Completed"), "{events}");

    // Deleting the finished pods loses no count.
    server
        .kubectl(&["delete", "pods", "-n", &ns, "-l", "job-name=parallel"])
        .ok();
    eventually("the pods to be gone", || {
        let left = job_pods(server, &ns, "parallel");
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    let job = server.get_json(&ns, "job", "parallel");
    assert_eq!(job["status"]["succeeded"], 3, "{}", job["status"]);
    assert_eq!(condition(&job, "Complete")["status"], "True");
}

#[test]
fn a_failing_job_stops_at_its_backoff_limit() {
    let server = node_server();
    let ns = server.namespace("backoff");
    server.apply_json(
        &ns,
        &job(
            "fails",
            "Never",
            "echo failing; exit 3",
            json!({"backoffLimit": 1}),
        ),
    );
    wait_for(server, &ns, "fails", "failed");

    let job = server.get_json(&ns, "job", "fails");
    assert_eq!(job["status"]["failed"], 2, "{}", job["status"]);
    assert!(job["status"]["completionTime"].is_null());
    for type_ in ["FailureTarget", "Failed"] {
        let c = condition(&job, type_);
        assert_eq!(c["status"], "True", "{type_}: {}", job["status"]);
        assert_eq!(c["reason"], "BackoffLimitExceeded", "{c}");
        assert_eq!(c["message"], "Job has reached the specified backoff limit");
    }
    let pods = job_pods(server, &ns, "fails");
    assert_eq!(pods.len(), 2, "one pod and one retry: {pods:?}");
    assert!(pods.iter().all(|p| phase(p) == "Failed"), "{pods:?}");
    let events = described(server, &ns, "job", "fails");
    assert!(events.contains("BackoffLimitExceeded"), "{events}");
}

#[test]
fn restarts_in_place_count_against_the_backoff_limit() {
    let server = node_server();
    let ns = server.namespace("onfailure");
    server.apply_json(
        &ns,
        &job(
            "restarts",
            "OnFailure",
            "exit 1",
            json!({"backoffLimit": 1}),
        ),
    );
    wait_for(server, &ns, "restarts", "failed");

    let job = server.get_json(&ns, "job", "restarts");
    assert_eq!(condition(&job, "Failed")["reason"], "BackoffLimitExceeded");
    let events = described(server, &ns, "job", "restarts");
    assert_eq!(
        events.matches("Created pod: restarts-").count(),
        1,
        "the kubelet restarts, the Job does not replace: {events}"
    );
    eventually("the restarting pod to be deleted", || {
        let left: Vec<Value> = job_pods(server, &ns, "restarts")
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
}

#[test]
fn an_indexed_job_gives_each_pod_its_index() {
    let server = node_server();
    let ns = server.namespace("indexed");
    apply_manifest(server, &ns, "jobs/indexed.yaml");
    wait_for(server, &ns, "indexed", "complete");

    let job = server.get_json(&ns, "job", "indexed");
    assert_eq!(
        job["status"]["completedIndexes"], "0-2",
        "{}",
        job["status"]
    );
    assert_eq!(job["status"]["succeeded"], 3);
    let pods = job_pods(server, &ns, "indexed");
    let mut seen = Vec::new();
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap_or_else(|| panic!("no index on {name}"));
        assert_eq!(
            pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
            index
        );
        assert!(name.starts_with(&format!("indexed-{index}-")), "{name}");
        let logs = server.kubectl(&["logs", "-n", &ns, name]).ok();
        assert_eq!(logs.trim(), format!("index={index} host=indexed-{index}"));
        seen.push(index.to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2"]);
}

#[test]
fn a_job_past_its_active_deadline_fails_and_stops_its_pods() {
    let server = node_server();
    let ns = server.namespace("deadline");
    server.apply_json(
        &ns,
        &job(
            "slow",
            "Never",
            "sleep 600",
            json!({"activeDeadlineSeconds": 3}),
        ),
    );
    wait_for(server, &ns, "slow", "failed");

    let job = server.get_json(&ns, "job", "slow");
    let failed = condition(&job, "Failed");
    assert_eq!(failed["reason"], "DeadlineExceeded", "{}", job["status"]);
    assert_eq!(
        failed["message"],
        "Job was active longer than specified deadline"
    );
    assert!(job["status"]["active"].is_null(), "{}", job["status"]);
    eventually("the pod to be stopped", || {
        let running: Vec<Value> = job_pods(server, &ns, "slow")
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && phase(p) == "Running")
            .collect();
        if running.is_empty() {
            Ok(())
        } else {
            Err(format!("{running:?}"))
        }
    });
    assert!(described(server, &ns, "job", "slow").contains("DeadlineExceeded"));
}

#[test]
fn a_finished_job_is_deleted_after_its_ttl() {
    let server = node_server();
    let ns = server.namespace("ttl");
    server.apply_json(
        &ns,
        &job(
            "brief",
            "Never",
            "true",
            json!({"ttlSecondsAfterFinished": 5}),
        ),
    );
    eventually("the Job to complete", || {
        let job = server.get_json(&ns, "job", "brief");
        if condition(&job, "Complete")["status"] == "True" {
            Ok(())
        } else {
            Err(job["status"].to_string())
        }
    });
    eventually("the Job to be deleted", || {
        let run = server.kubectl(&["get", "job", "brief", "-n", &ns]);
        if run.status.success() {
            Err(run.stdout)
        } else {
            Ok(())
        }
    });
    server.assert_absent(&ns, "job", "brief");
}

#[test]
fn a_suspended_job_makes_no_pods_until_resumed() {
    let server = node_server();
    let ns = server.namespace("suspend");
    server.apply_json(
        &ns,
        &job("later", "Never", "true", json!({"suspend": true})),
    );
    let job = eventually("the Job to be marked suspended", || {
        let job = server.get_json(&ns, "job", "later");
        if condition(&job, "Suspended")["status"] == "True" {
            Ok(job)
        } else {
            Err(job["status"].to_string())
        }
    });
    assert_eq!(condition(&job, "Suspended")["reason"], "JobSuspended");
    assert!(job["status"]["startTime"].is_null(), "{}", job["status"]);
    assert!(job_pods(server, &ns, "later").is_empty());

    server
        .kubectl(&[
            "patch",
            "job",
            "later",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":false}}"#,
        ])
        .ok();
    wait_for(server, &ns, "later", "complete");
    let job = server.get_json(&ns, "job", "later");
    let resumed = condition(&job, "Suspended");
    assert_eq!(resumed["status"], "False", "{}", job["status"]);
    assert_eq!(resumed["reason"], "JobResumed");
    assert_eq!(job_pods(server, &ns, "later").len(), 1);
}

/// A CronJob whose Jobs run `script`, suspended, with history limits of one.
fn cron_job(name: &str, script: &str) -> Value {
    let template = job(name, "Never", script, json!({"backoffLimit": 0}));
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {
            "schedule": "0 0 1 1 *",
            "suspend": true,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": template["spec"]},
        },
    })
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// Waits, if it is early in the minute, until 15 s past it: a CronJob made
/// then runs at the next minute, well within the harness's patience.
fn late_enough_in_the_minute() {
    let second = unix_seconds() % 60;
    if second < 15 {
        std::thread::sleep(Duration::from_secs(15 - second));
    }
}

/// Waits until just after the start of `minute` (minutes since the epoch).
fn sleep_past(minute: u64) {
    let target = minute * 60 + 2;
    let now = unix_seconds();
    if now < target {
        std::thread::sleep(Duration::from_secs(target - now));
    }
}

/// The Jobs in the namespace whose names start with `prefix`.
fn jobs_of(server: &Server, namespace: &str, prefix: &str) -> Vec<String> {
    job_names(server, namespace)
        .into_iter()
        .map(|n| n.trim_start_matches("job.batch/").to_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn job_names(server: &Server, namespace: &str) -> Vec<String> {
    server.names(&["get", "jobs", "-n", namespace])
}

#[test]
fn a_cronjob_runs_a_job_at_the_next_minute() {
    let server = node_server();
    let ns = server.namespace("every-minute");
    late_enough_in_the_minute();
    apply_manifest(server, &ns, "jobs/every-minute.yaml");
    let name = eventually("the CronJob to make a Job", || {
        match job_names(server, &ns).first() {
            Some(name) => Ok(name.trim_start_matches("job.batch/").to_owned()),
            None => Err("no Job".into()),
        }
    });
    // Suspend it at once: one run is all this test needs.
    server
        .kubectl(&[
            "patch",
            "cronjob",
            "every-minute",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":true}}"#,
        ])
        .ok();
    wait_for(server, &ns, &name, "complete");

    let cron_job = eventually("the CronJob to see its Job complete", || {
        let cron_job = server.get_json(&ns, "cronjob", "every-minute");
        if cron_job["status"]["lastSuccessfulTime"].is_string()
            && cron_job["status"]["active"].is_null()
        {
            Ok(cron_job)
        } else {
            Err(cron_job["status"].to_string())
        }
    });
    // The Job is named for its scheduled time, in minutes since the epoch.
    let scheduled = cron_job["status"]["lastScheduleTime"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(scheduled.ends_with(":00Z"), "{scheduled}");
    let minutes: i64 = name
        .trim_start_matches("every-minute-")
        .parse()
        .expect("minutes in the name");
    let date = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", minutes * 60),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&date.stdout).trim(), scheduled);
    let job = server.get_json(&ns, "job", &name);
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .is_string(),
        "{}",
        job["metadata"]
    );
    assert!(
        server
            .kubectl(&["logs", "-n", &ns, &format!("job/{name}")])
            .ok()
            .contains("tick")
    );
    let events = described(server, &ns, "cronjob", "every-minute");
    assert!(events.contains(&format!("Created job {name}")), "{events}");
    assert!(
        events.contains(&format!("Saw completed job: {name}, condition: Complete")),
        "{events}"
    );
}

#[test]
fn a_cronjob_keeps_finished_jobs_to_its_history_limits() {
    let server = node_server();
    let ns = server.namespace("history");
    server.apply_json(&ns, &cron_job("good", "true"));
    server.apply_json(&ns, &cron_job("bad", "exit 1"));
    for (cron_job, condition) in [("good", "complete"), ("bad", "failed")] {
        for run in ["one", "two"] {
            let name = format!("{cron_job}-{run}");
            server
                .kubectl(&[
                    "create",
                    "job",
                    &name,
                    "-n",
                    &ns,
                    &format!("--from=cronjob/{cron_job}"),
                ])
                .ok();
            wait_for(server, &ns, &name, condition);
        }
    }
    // Of each kind only the newest finished Job is kept.
    eventually("the older Jobs to be deleted", || {
        let names = job_names(server, &ns);
        if names == ["job.batch/bad-two", "job.batch/good-two"] {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
    let events = described(server, &ns, "cronjob", "good");
    assert!(events.contains("Deleted job good-one"), "{events}");
    // A Job made by hand is the CronJob's all the same.
    let job = server.get_json(&ns, "job", "good-two");
    assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "good");
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
}

#[test]
fn cronjob_concurrency_policies_and_a_missed_run_after_suspension() {
    let server = node_server();
    let ns = server.namespace("concurrency");
    let every_minute = |name: &str, script: &str, spec: Value| {
        let mut cron_job = cron_job(name, script);
        cron_job["spec"]["schedule"] = json!("* * * * *");
        cron_job["spec"]["suspend"] = json!(false);
        for (key, value) in spec.as_object().into_iter().flatten() {
            cron_job["spec"][key] = value.clone();
        }
        cron_job
    };
    late_enough_in_the_minute();
    let first_minute = unix_seconds() / 60 + 1;
    server.apply_json(
        &ns,
        &every_minute(
            "forbid",
            "sleep 600",
            json!({"concurrencyPolicy": "Forbid"}),
        ),
    );
    server.apply_json(
        &ns,
        &every_minute(
            "replace",
            "sleep 600",
            json!({"concurrencyPolicy": "Replace"}),
        ),
    );
    server.apply_json(
        &ns,
        &every_minute("later", "true", json!({"suspend": true})),
    );

    let first = format!("replace-{first_minute}");
    eventually("both running CronJobs to start their first Job", || {
        let made = (
            jobs_of(server, &ns, "forbid-"),
            jobs_of(server, &ns, "replace-"),
        );
        if made == (vec![format!("forbid-{first_minute}")], vec![first.clone()]) {
            Ok(())
        } else {
            Err(format!("{made:?}"))
        }
    });
    sleep_past(first_minute + 1);
    let second = format!("replace-{}", first_minute + 1);
    eventually("Replace to swap its running Job for a new one", || {
        let made = jobs_of(server, &ns, "replace-");
        if made == [second.clone()] {
            Ok(())
        } else {
            Err(format!("{made:?}"))
        }
    });
    assert!(described(server, &ns, "cronjob", "replace").contains(&format!("Deleted job {first}")));
    eventually("Forbid to keep its running Job and say why", || {
        let events = described(server, &ns, "cronjob", "forbid");
        if events.contains(
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        ) {
            Ok(())
        } else {
            Err(events)
        }
    });
    assert_eq!(
        jobs_of(server, &ns, "forbid-"),
        [format!("forbid-{first_minute}")]
    );

    // Resumed after missing two times, the CronJob runs only the latest.
    let latest = format!("later-{}", unix_seconds() / 60);
    server
        .kubectl(&[
            "patch",
            "cronjob",
            "later",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"suspend":false}}"#,
        ])
        .ok();
    eventually("the latest missed time to run", || {
        let made = jobs_of(server, &ns, "later-");
        if made.contains(&latest) {
            Ok(())
        } else {
            Err(format!("{made:?}"))
        }
    });
    let made = jobs_of(server, &ns, "later-");
    assert!(
        !made.contains(&format!("later-{first_minute}")),
        "an older missed time ran: {made:?}"
    );
    server
        .kubectl(&["delete", "cronjobs", "--all", "-n", &ns])
        .ok();
}

#[test]
fn a_deleted_pod_counts_as_failed_and_is_replaced_and_the_jobs_pods_go_with_it() {
    let server = node_server();
    let ns = server.namespace("replaced");
    server.apply_json(&ns, &job("steady", "Never", "sleep 600", json!({})));
    let first = eventually("the pod to run", || {
        let pods = job_pods(server, &ns, "steady");
        match pods.first() {
            Some(pod) if phase(pod) == "Running" => {
                Ok(pod["metadata"]["name"].as_str().unwrap().to_owned())
            }
            _ => Err(format!("{pods:?}")),
        }
    });
    server
        .kubectl(&["delete", "pod", &first, "-n", &ns, "--wait=false"])
        .ok();
    eventually(
        "a replacement, and the deleted pod counted as failed",
        || {
            let job = server.get_json(&ns, "job", "steady");
            let pods = job_pods(server, &ns, "steady");
            let replaced = pods.iter().any(|p| p["metadata"]["name"] != first.as_str());
            if replaced && job["status"]["failed"] == 1 {
                Ok(())
            } else {
                Err(format!("{}; {pods:?}", job["status"]))
            }
        },
    );

    // The tracking finalizer does not keep a deleted Job's pods around.
    server
        .kubectl(&["delete", "job", "steady", "-n", &ns, "--wait=false"])
        .ok();
    eventually("the Job's pods to be gone", || {
        let pods = job_pods(server, &ns, "steady");
        if pods.is_empty() {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
}

#[test]
fn a_pod_failure_policy_rule_fails_the_job_at_once() {
    let server = node_server();
    let ns = server.namespace("failure-policy");
    let policy = json!({"rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}},
        {"action": "FailJob", "onExitCodes": {"containerName": "work", "operator": "In", "values": [42]}},
    ]});
    server.apply_json(
        &ns,
        &job(
            "fatal",
            "Never",
            "exit 42",
            json!({"backoffLimit": 6, "podFailurePolicy": policy}),
        ),
    );
    wait_for(server, &ns, "fatal", "failed");

    let job = server.get_json(&ns, "job", "fatal");
    let pods = job_pods(server, &ns, "fatal");
    assert_eq!(pods.len(), 1, "no retry after a FailJob rule: {pods:?}");
    let pod = pods[0]["metadata"]["name"].as_str().unwrap();
    let failed = condition(&job, "Failed");
    assert_eq!(failed["reason"], "PodFailurePolicy", "{}", job["status"]);
    assert_eq!(
        failed["message"],
        format!(
            "Container work for pod {ns}/{pod} failed with exit code 42 matching FailJob rule at index 1"
        )
    );
    assert_eq!(job["status"]["failed"], 1);
}

#[test]
fn an_indexed_job_succeeds_when_its_success_policy_is_met() {
    let server = node_server();
    let ns = server.namespace("success-policy");
    // Index 0 finishes at once; the others would run for ten minutes.
    let script = r#"[ "$JOB_COMPLETION_INDEX" = 0 ] || sleep 600"#;
    let spec = json!({
        "completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "successPolicy": {"rules": [{"succeededIndexes": "0"}]},
    });
    server.apply_json(&ns, &job("leader", "Never", script, spec));
    wait_for(server, &ns, "leader", "complete");

    let job = server.get_json(&ns, "job", "leader");
    for type_ in ["SuccessCriteriaMet", "Complete"] {
        let c = condition(&job, type_);
        assert_eq!(c["reason"], "SuccessPolicy", "{type_}: {}", job["status"]);
        assert_eq!(c["message"], "Matched rules at index 0");
    }
    assert_eq!(job["status"]["completedIndexes"], "0");
    assert!(job["status"]["active"].is_null(), "{}", job["status"]);
    let running: Vec<Value> = job_pods(server, &ns, "leader")
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && phase(p) == "Running")
        .collect();
    assert!(
        running.is_empty(),
        "the other indexes were stopped: {running:?}"
    );
}

/// The `batch.kubernetes.io/job-index-failure-count` of each pod of one
/// index, sorted.
fn failure_counts(pods: &[Value], index: &str) -> Vec<String> {
    let mut counts: Vec<String> = pods
        .iter()
        .filter(|p| {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == index
        })
        .map(|p| {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .collect();
    counts.sort();
    counts
}

#[test]
fn an_index_out_of_retries_fails_alone_and_the_job_fails_with_failed_indexes() {
    let server = node_server();
    let ns = server.namespace("per-index");
    // Index 1 always fails; index 2 fails with the code a FailIndex rule
    // matches; index 0 succeeds.
    let script = r#"case "$JOB_COMPLETION_INDEX" in 1) exit 3;; 2) exit 42;; esac"#;
    let policy = json!({"rules": [
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}},
    ]});
    let spec = json!({
        "completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "backoffLimitPerIndex": 1, "podFailurePolicy": policy,
    });
    server.apply_json(&ns, &job("per-index", "Never", script, spec));
    wait_for(server, &ns, "per-index", "failed");

    let job = server.get_json(&ns, "job", "per-index");
    let status = &job["status"];
    assert_eq!(status["completedIndexes"], "0", "{status}");
    assert_eq!(status["failedIndexes"], "1,2", "{status}");
    assert_eq!(status["failed"], 3, "index 1 twice, index 2 once: {status}");
    for type_ in ["FailureTarget", "Failed"] {
        let c = condition(&job, type_);
        assert_eq!(c["reason"], "FailedIndexes", "{type_}: {status}");
        assert_eq!(c["message"], "Job has failed indexes");
    }
    // Index 1 was retried once, its second pod knowing of the first failure;
    // the FailIndex rule left index 2 without a retry.
    let pods = job_pods(server, &ns, "per-index");
    assert_eq!(failure_counts(&pods, "1"), ["0", "1"]);
    assert_eq!(failure_counts(&pods, "2"), ["0"]);
    assert_eq!(failure_counts(&pods, "0"), ["0"]);
}

#[test]
fn more_failed_indexes_than_max_failed_indexes_fail_the_job_at_once() {
    let server = node_server();
    let ns = server.namespace("max-failed-indexes");
    // Indexes 0 and 1 fail at once; index 2 would run for ten minutes.
    let script = r#"[ "$JOB_COMPLETION_INDEX" = 2 ] && exec sleep 600; exit 1"#;
    let spec = json!({
        "completionMode": "Indexed", "completions": 3, "parallelism": 3,
        "backoffLimitPerIndex": 0, "maxFailedIndexes": 1,
    });
    server.apply_json(&ns, &job("fragile", "Never", script, spec));
    wait_for(server, &ns, "fragile", "failed");

    let job = server.get_json(&ns, "job", "fragile");
    let failed = condition(&job, "Failed");
    assert_eq!(
        failed["reason"], "MaxFailedIndexesExceeded",
        "{}",
        job["status"]
    );
    assert_eq!(
        failed["message"],
        "Job has exceeded the specified maximal number of failed indexes"
    );
    // Index 2's pod, stopped when the Job failed, failed its index too: a
    // pod deleted before it succeeded counts as failed, as in Kubernetes.
    assert_eq!(job["status"]["failedIndexes"], "0-2", "{}", job["status"]);
    let running: Vec<Value> = job_pods(server, &ns, "fragile")
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && phase(p) == "Running")
        .collect();
    assert!(running.is_empty(), "index 2 was stopped: {running:?}");
}

#[test]
fn limits_per_index_are_validated_as_kubernetes_does() {
    let server = node_server();
    let ns = server.namespace("per-index-checks");
    let refused = |spec: Value| {
        server
            .kubectl_stdin(
                &["create", "-n", &ns, "-f", "-"],
                &job("bad", "Never", "true", spec).to_string(),
            )
            .fails()
    };
    let err = refused(json!({"backoffLimitPerIndex": 1}));
    assert!(
        err.contains(
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"
        ),
        "{err}"
    );
    let err =
        refused(json!({"completionMode": "Indexed", "completions": 2, "maxFailedIndexes": 1}));
    assert!(
        err.contains(
            "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"
        ),
        "{err}"
    );
    let err = refused(json!({
        "completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1, "maxFailedIndexes": 3,
    }));
    assert!(
        err.contains(
            "spec.maxFailedIndexes: Invalid value: 3: must be less than or equal to completions"
        ),
        "{err}"
    );
}
