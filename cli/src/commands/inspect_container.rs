//! `kiln inspect CONTAINER`: docker's JSON shape for containers (`State`, `Config`,
//! `HostConfig`, `Mounts`, `NetworkSettings`).

use executor::runtime::time::rfc3339_nano;
use executor::runtime::{Container, RestartPolicy, Status};
use serde_json::{Value, json};

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn time(nanos: Option<i64>) -> String {
    nanos.map_or_else(|| ZERO_TIME.to_owned(), rfc3339_nano)
}

fn or_null(items: &[String]) -> Value {
    if items.is_empty() { Value::Null } else { json!(items) }
}

/// The `docker inspect` object of a container.
pub fn container_json(container: &Container) -> Value {
    let config = &container.config;
    let state = &container.state;
    let process = &config.spec.process;
    let (path, args) = match process.args.split_first() {
        Some((path, args)) => (path.clone(), args.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let maximum_retries = match config.restart {
        RestartPolicy::OnFailure { max } => max,
        _ => 0,
    };
    let mounts: Vec<Value> = config
        .mounts
        .iter()
        .map(|m| {
            let mut mount = json!({
                "Type": m.kind,
                "Source": m.source,
                "Destination": m.destination,
                "Mode": if m.kind == "bind" { "" } else { "z" },
                "RW": !m.readonly,
                "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
            });
            if m.kind == "volume" {
                mount["Name"] = json!(m.source);
                mount["Driver"] = json!("local");
            }
            mount
        })
        .collect();
    let hostname = config.spec.hostname.clone().unwrap_or_else(|| config.id[..12].to_owned());
    let labels: Value = if config.labels.is_empty() { json!({}) } else { json!(config.labels) };
    let mut value = json!({
        "Id": config.id,
        "Created": rfc3339_nano(config.created),
        "Path": path,
        "Args": args,
        "State": {
            "Status": state.status_name(),
            "Running": state.status == Status::Running,
            "Paused": state.paused,
            "Restarting": state.status == Status::Restarting,
            "OOMKilled": state.oom_killed,
            "Dead": state.status == Status::Dead,
            "Pid": state.pid,
            "ExitCode": state.exit_code.unwrap_or(-1).max(if state.status == Status::Created { 0 } else { -1 }),
            "Error": state.error,
            "StartedAt": time(state.started_at),
            "FinishedAt": time(state.finished_at),
        },
        "Image": config.image_id,
        "LogPath": container.log_path(),
        "Name": format!("/{}", config.name),
        "RestartCount": state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "NetworkMode": config.network,
            "RestartPolicy": { "Name": config.restart.name(), "MaximumRetryCount": maximum_retries },
            "AutoRemove": config.auto_remove,
            "ReadonlyRootfs": config.spec.readonly_rootfs,
            "CapAdd": or_null(&process.cap_add),
            "CapDrop": or_null(&process.cap_drop),
            "Init": process.init,
            "Memory": config.spec.resources.memory.unwrap_or(0),
            "NanoCpus": config.spec.resources.cpu_millis.unwrap_or(0) * 1_000_000,
            "PidsLimit": config.spec.resources.pids,
            "LogConfig": { "Type": "json-file", "Config": {} },
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": hostname,
            "User": process.user,
            "Tty": process.tty,
            "OpenStdin": false,
            "Env": process.env,
            "Cmd": or_null(&config.cmd),
            "Image": config.image,
            "WorkingDir": process.cwd,
            "Entrypoint": or_null(&config.entrypoint),
            "Labels": labels,
            "StopSignal": config.stop_signal,
            "StopTimeout": config.stop_timeout,
        },
        "NetworkSettings": {
            "Ports": super::port::inspect_value(&state.ports),
            "IPAddress": "",
            "Gateway": "",
            "MacAddress": "",
            "Networks": {},
        },
    });
    if let Some(health) = &state.health {
        let log: Vec<Value> = health
            .log
            .iter()
            .map(|r| {
                json!({
                    "Start": rfc3339_nano(r.start),
                    "End": rfc3339_nano(r.end),
                    "ExitCode": r.exit_code,
                    "Output": r.output,
                })
            })
            .collect();
        value["State"]["Health"] =
            json!({ "Status": health.status, "FailingStreak": health.failing_streak, "Log": log });
    }
    if let Some(check) = &config.healthcheck {
        value["Config"]["Healthcheck"] = json!({
            "Test": check.test,
            "Interval": check.interval,
            "Timeout": check.timeout,
            "StartPeriod": check.start_period,
            "Retries": check.retries,
        });
    }
    value
}
