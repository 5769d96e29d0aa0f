//! Root integration tests of sandbox networking: none, host, default (bridge + NAT).

mod common;

use std::io::{Read, Write};

use common::TestEnv;
use executor::NetworkMode;

#[tokio::test]
async fn network_none_has_only_loopback_up() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec(&["/bin/sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate"]);
    spec.network = NetworkMode::None;
    let out = env.run(spec).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "lo");
    assert_eq!(lines.len(), 2, "{lines:?}");
}

/// The network namespace of a running sandbox's PID 1, as the host sees it (`net:[INODE]`).
async fn sandbox_netns(env: &TestEnv, network: NetworkMode) -> String {
    let mut spec = env.spec(&["/bin/sleep", "100"]);
    spec.network = network;
    let sandbox = env.executor.spawn(spec, executor::Stdio::Inherit { stdin: false }).await.expect("spawn");
    env.ids.lock().expect("ids").push(sandbox.id().to_owned());
    let ns = std::fs::read_link(format!("/proc/{}/ns/net", sandbox.pid())).expect("read the sandbox's netns");
    sandbox.killer().kill().expect("kill");
    sandbox.wait().await.expect("wait");
    ns.to_string_lossy().into_owned()
}

#[tokio::test]
async fn network_host_shares_the_host_namespace() {
    testkit::require_root!();
    let env = TestEnv::new();
    let host_ns = std::fs::read_link("/proc/self/ns/net").expect("own netns").to_string_lossy().into_owned();
    // host mode joins this namespace; none (and default) make a new one, so the check can tell
    assert_eq!(sandbox_netns(&env, NetworkMode::Host).await, host_ns, "host mode made a new netns");
    assert_ne!(sandbox_netns(&env, NetworkMode::None).await, host_ns, "none mode shares the host's netns");
    // and sees host interfaces (listed before and after: other tests may add veths meanwhile)
    let host_interfaces = || -> Vec<String> {
        std::fs::read_dir("/sys/class/net")
            .expect("host interfaces")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let mut host = host_interfaces();
    let mut spec = env.spec(&["/bin/ls", "/sys/class/net"]);
    spec.network = NetworkMode::Host;
    let out = env.run(spec).await;
    host.extend(host_interfaces());
    let seen: Vec<&str> = out.ok().split_whitespace().collect();
    assert!(seen.len() > 1, "only {seen:?}");
    for name in seen {
        assert!(host.iter().any(|h| h == name), "{name} not on the host");
    }
}

#[tokio::test]
async fn default_network_reaches_a_server_on_the_bridge() {
    testkit::require_root!();
    let env = TestEnv::new();
    let bridge = env.executor.bridge().clone();
    bridge.ensure().expect("bridge");
    let subnet_prefix = bridge.gateway.to_string().rsplit_once('.').expect("dotted").0.to_owned();
    let listener = std::net::TcpListener::bind((bridge.gateway, 0)).expect("listen on the bridge address");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer);
        stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nhello-from-host").expect("respond");
    });
    let script = format!(
        "ip -4 addr show eth0 2>/dev/null | grep -c 'inet {subnet_prefix}.' ; printf 'GET / HTTP/1.0\r\n\r\n' | nc {} {port} | tail -n 1",
        bridge.gateway
    );
    let mut spec = env.spec(&["/bin/sh", "-c", &script]);
    spec.network = NetworkMode::Default;
    let out = env.run(spec).await;
    assert_eq!(out.ok(), "1\nhello-from-host", "{}", out.stderr);
    server.join().expect("server");
}

#[tokio::test]
async fn concurrent_default_sandboxes_get_distinct_addresses() {
    testkit::require_root!();
    let env = TestEnv::new();
    let run = |env: &TestEnv, name: &str| {
        let mut spec = env.spec_in(name, &["/bin/sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"]);
        spec.network = NetworkMode::Default;
        spec
    };
    let (a, b) = tokio::join!(env.run(run(&env, "a")), env.run(run(&env, "b")));
    let gateway = env.executor.bridge().gateway.to_string();
    let subnet_prefix = gateway.rsplit_once('.').expect("dotted").0;
    assert!(a.ok().starts_with(subnet_prefix), "{a:?}");
    assert_ne!(a.ok(), b.ok());
}

/// Removes the published ports of `owner` however the test ends.
struct Unpublish(String);

impl Drop for Unpublish {
    fn drop(&mut self) {
        executor::ports::unpublish(&self.0);
    }
}

/// An HTTP GET of `/` at `address`, retried while the server comes up; the body.
fn http_get(address: std::net::SocketAddr) -> std::io::Result<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let attempt = (|| {
            let mut stream =
                std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))?;
            stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok::<_, std::io::Error>(response.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned())
        })();
        match attempt {
            Ok(body) if !body.is_empty() => return Ok(body),
            Err(err) if std::time::Instant::now() > deadline => return Err(err),
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// `-p 80` (a free host port): the container's server answers on 127.0.0.1 and on the bridge's
/// host address, from the host and from another container (hairpin); after `unpublish` no rule
/// of the owner is left and the port is closed.
#[tokio::test]
async fn published_ports_reach_the_container_from_the_host_and_other_containers() {
    testkit::require_root!();
    let env = TestEnv::new();
    let mut spec = env.spec_in(
        "server",
        &[
            "/bin/sh",
            "-c",
            "mkdir -p /www && echo published > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    );
    spec.network = NetworkMode::Default;
    let server = env.executor.spawn(spec, executor::Stdio::Inherit { stdin: false }).await.expect("spawn");
    env.ids.lock().expect("ids").push(server.id().to_owned());
    let owner = format!("test-{}", &server.id()[..12]);
    let _unpublish = Unpublish(owner.clone());
    let address = server.address().expect("an address on the bridge");
    let mut bindings = executor::ports::parse_publish("80").expect("spec");
    executor::ports::allocate(&mut bindings).expect("allocate");
    let port = bindings[0].host_port();
    let bridge = env.executor.bridge().clone();
    executor::ports::publish(&owner, &bridge.name, address, &mut bindings).expect("publish");
    assert!(executor::ports::owners().contains(&owner));

    let loopback = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
    let host_address = std::net::SocketAddr::from((bridge.gateway, port));
    let from_host = tokio::task::spawn_blocking(move || (http_get(loopback), http_get(host_address)))
        .await
        .expect("client");
    assert_eq!(from_host.0.expect("GET via 127.0.0.1").trim(), "published");
    assert_eq!(from_host.1.expect("GET via the host address").trim(), "published");

    // (busybox-static's wget crashes in the sandbox; nc speaks HTTP/1.0 as well)
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {} {port} | tail -n 1", bridge.gateway);
    let mut client = env.spec_in("client", &["/bin/sh", "-c", &script]);
    client.network = NetworkMode::Default;
    let out = env.run(client).await;
    assert_eq!(out.ok().trim(), "published", "{}", out.stderr);

    executor::ports::unpublish(&owner);
    assert!(!executor::ports::owners().contains(&owner));
    let closed = tokio::task::spawn_blocking(move || {
        std::net::TcpStream::connect_timeout(&loopback, std::time::Duration::from_secs(2))
    })
    .await
    .expect("probe");
    assert!(closed.is_err(), "the port still answers after unpublish");
    server.killer().kill().expect("kill");
    server.wait().await.expect("wait");
}
