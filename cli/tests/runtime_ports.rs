#![allow(clippy::unwrap_used)]
//! Published ports of `kiln run` (as root): `-p` on 127.0.0.1 reached from the host, `-p` on
//! every address reached from another container through the host (hairpin), udp, `-P` with
//! the image's EXPOSE and `kiln port`, and that no DNAT rule outlives its container — also
//! when the container's monitor is SIGKILLed. Containers are on kiln's default bridge; traffic
//! stays on this host.

mod runtime_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use runtime_support::{Kiln, unsafe_free_kill, wait_for};

/// A busybox httpd serving "hello from NAME" on port 80.
const HTTPD: &str =
    "mkdir -p /www && echo \"hello from $0\" > /www/index.html && exec httpd -f -p 80 -h /www";

/// Prints every datagram received on port 7070.
const UDP_LISTENER: &str = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 7070))\nwhile True:\n    print(s.recv(100).decode().strip(), flush=True)\n";

fn http_get(address: Ipv4Addr, port: u16) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&(address, port).into(), Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The first host port `kiln port CONTAINER SPEC` prints (`IP:PORT` lines).
fn host_port(kiln: &Kiln, container: &str, spec: &str) -> (Ipv4Addr, u16) {
    let out = kiln.ok(&["port", container, spec]);
    let (ip, port) = out.lines().next().unwrap().rsplit_once(':').unwrap();
    (ip.parse().unwrap(), port.parse().unwrap())
}

/// The nat rules kiln has for `port` (a host port).
fn rules_for(port: u16) -> Vec<String> {
    let out = Command::new("iptables").args(["-t", "nat", "-S", "KILN-PORTS"]).output().unwrap();
    let needle = format!("--dport {port} ");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(&needle)).map(str::to_owned).collect()
}

#[test]
fn published_ports_answer_from_the_host_and_from_other_containers() {
    testkit::require_root!();
    let kiln = Kiln::new(&[]);
    kiln.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        "-p",
        "80",
        "img",
        "sh",
        "-c",
        HTTPD,
        "web",
    ]);
    let (local_ip, local_port) = host_port(&kiln, "web", "80/tcp");
    assert_eq!(local_ip, Ipv4Addr::LOCALHOST, "-p order is kept");
    assert_eq!(kiln.ok(&["port", "web", "80"]).lines().count(), 2, "both bindings of 80/tcp");
    let all = kiln.ok(&["port", "web"]);
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(all.contains(&format!("80/tcp -> 127.0.0.1:{local_port}")), "{all}");
    let any_port: u16 =
        all.lines().find_map(|l| l.strip_prefix("80/tcp -> 0.0.0.0:")).unwrap().parse().unwrap();
    assert_ne!(local_port, any_port);

    // from the host, on 127.0.0.1
    wait_for("httpd to answer on 127.0.0.1", || {
        http_get(Ipv4Addr::LOCALHOST, local_port).is_some_and(|r| r.contains("hello from web"))
    });
    // ps and inspect show the bindings as docker does
    let ps = kiln.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{local_port}->80/tcp")), "{ps}");
    let ports = kiln.inspect("web")["NetworkSettings"]["Ports"]["80/tcp"].clone();
    assert_eq!(ports.as_array().unwrap().len(), 2, "{ports}");

    // from another container, through the host's address on the bridge (hairpin)
    let gateway = "10.89.0.1";
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {gateway} {any_port}");
    let mut answer = String::new();
    wait_for("another container to reach the published port", || {
        answer = String::from_utf8_lossy(&kiln.output(&["run", "--rm", "img", "sh", "-c", &script]).stdout)
            .into_owned();
        answer.contains("hello from web")
    });
    // a port published on 127.0.0.1 only is not published on the bridge address
    assert!(
        rules_for(local_port).iter().all(|r| r.contains("-d 127.0.0.1/32")),
        "{:?}",
        rules_for(local_port)
    );

    // no rule survives the container
    kiln.ok(&["rm", "-f", "web"]);
    assert!(rules_for(local_port).is_empty() && rules_for(any_port).is_empty());
    assert!(http_get(Ipv4Addr::LOCALHOST, local_port).is_none_or(|r| !r.contains("hello")));
}

#[test]
fn udp_and_publish_all_with_expose() {
    testkit::require_root!();
    let kiln = Kiln::new(&["EXPOSE 80", "EXPOSE 7070/udp"]);
    // -P: the image's EXPOSE (80/tcp, 7070/udp) and --expose 9000 on random ports
    // busybox has no udp listener: the host's python3 answers inside the container's network
    // namespace (through a read-only bind of the host's root)
    kiln.ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-P",
        "--expose",
        "9000",
        "-v",
        "/:/host:ro",
        "img",
        "chroot",
        "/host",
        "python3",
        "-u",
        "-c",
        UDP_LISTENER,
    ]);
    let listed = kiln.ok(&["port", "echo"]);
    let mut lines: Vec<&str> = listed.lines().map(|l| l.split(" -> ").next().unwrap()).collect();
    lines.sort();
    assert_eq!(lines, ["7070/udp", "80/tcp", "9000/tcp"], "{listed}");
    let (_, port) = host_port(&kiln, "echo", "7070/udp");
    assert!((32768..=60999).contains(&port), "{port}");
    let err = kiln.output(&["port", "echo", "81"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("no public port '81/tcp' published for echo"));

    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    wait_for("a datagram through the published udp port", || {
        let _ = socket.send_to(b"ping-udp\n", (Ipv4Addr::LOCALHOST, port));
        std::thread::sleep(Duration::from_millis(100));
        kiln.logs("echo").contains("ping-udp")
    });
    kiln.ok(&["rm", "-f", "echo"]);
    assert!(rules_for(port).is_empty());

    // --network none: nothing is published (docker discards the ports with a warning)
    let out = kiln.output(&["run", "--rm", "--network", "none", "-p", "80", "img", "true"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("discarded"));
    // a bad -p is refused before anything runs
    let out = kiln.output(&["run", "--rm", "-p", "80/icmp", "img", "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown protocol"), "{out:?}");
}

#[test]
fn a_sigkilled_monitor_leaves_no_rule_behind() {
    testkit::require_root!();
    let kiln = Kiln::new(&[]);
    let id =
        kiln.ok(&["run", "-d", "--name", "doomed", "-p", "127.0.0.1::80", "img", "sh", "-c", HTTPD, "x"]);
    let (_, port) = host_port(&kiln, "doomed", "80");
    assert!(!rules_for(port).is_empty());
    unsafe_free_kill(kiln.monitor_pid(id.trim()));
    // the next kiln that runs a container cleans up after the dead monitor's sandbox
    wait_for("the rules of the dead container to go", || {
        kiln.ok(&["run", "--rm", "--network", "none", "img", "true"]);
        rules_for(port).is_empty()
    });
    kiln.ok(&["rm", "-f", "doomed"]);
}

#[test]
fn a_foreground_run_publishes_while_it_runs() {
    testkit::require_root!();
    let kiln = Kiln::new(&[]);
    let mut child = kiln
        .cmd(&["run", "--rm", "-p", "127.0.0.1:0:80", "img", "sh", "-c", HTTPD, "fg"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // the port is chosen at start; find it through the rule that names port 80 of the bridge
    let mut found = None;
    wait_for("the foreground container's rule", || {
        let out = Command::new("iptables").args(["-t", "nat", "-S", "KILN-PORTS"]).output().unwrap();
        found = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("-d 127.0.0.1/32") && l.ends_with(":80"))
            .filter_map(|l| l.split("--dport ").nth(1)?.split_whitespace().next()?.parse::<u16>().ok())
            .find(|p| http_get(Ipv4Addr::LOCALHOST, *p).is_some_and(|r| r.contains("hello from fg")));
        found.is_some()
    });
    let port = found.unwrap();
    unsafe_free_kill(child.id() as i32);
    let _ = child.wait();
    wait_for("the SIGKILLed foreground run's rule to be cleaned", || {
        kiln.ok(&["run", "--rm", "--network", "none", "img", "true"]);
        rules_for(port).is_empty()
    });
}

#[test]
fn dns_extra_hosts_and_sysctl_flags() {
    testkit::require_root!();
    let kiln = Kiln::new(&[]);
    let out = kiln.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--dns",
        "10.1.2.3",
        "--dns-search",
        "a.test",
        "--dns-option",
        "ndots:3",
        "--add-host",
        "db:10.0.0.9",
        "--add-host",
        "gw:host-gateway",
        "img",
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
    ]);
    for line in ["nameserver 10.1.2.3", "search a.test", "options ndots:3", "10.0.0.9\tdb", "10.89.0.1\tgw"] {
        assert!(out.lines().any(|l| l == line), "{line:?} missing from:\n{out}");
    }
    assert_eq!(out.matches("nameserver").count(), 1, "the host's name servers are replaced:\n{out}");
    // --sysctl: namespaced parameters only, set inside the container's own namespaces
    let out = kiln.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=99",
        "--sysctl",
        "kernel.shmmni=1234",
        "img",
        "cat",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        "/proc/sys/kernel/shmmni",
    ]);
    assert_eq!(out, "99\n1234\n");
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    assert_ne!(host.trim(), "99", "the host's value is untouched");
    let err = kiln.output(&["run", "--rm", "--sysctl", "vm.swappiness=1", "img", "true"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("not allowed"), "{err:?}");
    let err =
        kiln.output(&["run", "--rm", "--network", "host", "--sysctl", "net.core.somaxconn=1", "img", "true"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("host network namespace"), "{err:?}");
    let err = kiln.output(&["run", "--rm", "--dns", "not-an-ip", "img", "true"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("not-an-ip is not an ip address"));
    let err = kiln.output(&["run", "--rm", "--add-host", "nocolon", "img", "true"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("bad format for add-host"));
}
