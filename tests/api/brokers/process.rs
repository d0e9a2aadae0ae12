//! The brokers' processes: finding a binary, spawning with output to a log file, JVMs under a
//! watchdog, waiting until a port or an HTTP path answers, and signals and kills.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(super) fn binary(var: &str, fallback: &str) -> String {
    if let Ok(path) = std::env::var(var) {
        return path;
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(fallback).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{fallback} not found: set {var} or run the tests through scripts/test, which installs the brokers"
    );
    fallback.to_owned()
}

pub(super) fn wait_for_port(port: u16, child: &mut Child, log: &Path, what: &str) {
    wait_for_port_within(port, child, log, what, Duration::from_secs(20));
}

pub(super) fn wait_for_port_within(
    port: u16,
    child: &mut Child,
    log: &Path,
    what: &str,
    wait: Duration,
) {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // A server that found its port taken exits at once; make sure the listener is ours.
            std::thread::sleep(Duration::from_millis(50));
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "{what} exited with {status} right after start (port {port} taken?); its log:\n{log}"
                );
            }
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited with {status} before listening on {port}; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on {port} within {wait:?}; its log:\n{log}");
}

/// Starts a JVM under a watchdog shell that kills it when this test process is gone, however it
/// ended (a shared broker lives in a static that is never dropped). The JVM's own pid goes to
/// `pid_file`, for signals that must reach it rather than the shell.
pub(super) fn spawn_jvm(java: &str, args: &[String], log: &Path, pid_file: &Path) -> Child {
    let _stale = std::fs::remove_file(pid_file);
    let script = format!(
        "\"$HB_JAVA\" \"$@\" & jvm=$!; echo $jvm > '{}'; trap 'kill -9 $jvm 2>/dev/null' EXIT TERM; \
         while kill -0 {} 2>/dev/null && kill -0 $jvm 2>/dev/null; do sleep 0.5; done",
        pid_file.display(),
        std::process::id()
    );
    let mut shell_args = vec!["-c".to_owned(), script, "jvm".to_owned()];
    shell_args.extend(args.iter().cloned());
    spawn_logged_with_env("bash", &shell_args, log, &[("HB_JAVA", java)])
}

/// Kills a JVM started by [`spawn_jvm`] and its watchdog.
pub(super) fn kill_jvm(child: &mut Option<Child>, pid_file: &Path) {
    if child.is_some() {
        signal_pid_file(pid_file, "-KILL");
    }
    kill(child);
}

pub(super) fn signal_pid_file(pid_file: &Path, name: &str) {
    let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
    let pid = pid.trim();
    if !pid.is_empty() {
        let _sent = Command::new("kill").args([name, pid]).status();
    }
}

pub(super) fn spawn_logged(program: &str, args: &[String], log: &Path) -> Child {
    spawn_logged_with_env(program, args, log, &[])
}

fn spawn_logged_with_env(
    program: &str,
    args: &[String],
    log: &Path,
    env: &[(&str, &str)],
) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open broker log");
    let err = out.try_clone().expect("clone log handle");
    Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

pub(super) fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _killed = c.kill();
        let _reaped = c.wait();
    }
}

/// SIGSTOP / SIGCONT: a broker that hangs without closing its connections.
pub(super) fn signal(child: &Option<Child>, name: &str) {
    if let Some(c) = child {
        let status = Command::new("kill")
            .args([name, &c.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {name} {}", c.id());
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1 that answers 200 (no client library, no runtime).
pub(super) fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _timeout = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}
