//! The harness: a local EC2 server shared by the tests, and a builder that runs the real
//! labctl binary in a temporary folder and checks what a user would see.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The labctl binary under test.
pub(crate) fn labctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_labctl"))
}

/// A running local EC2 server; it stops when the test process ends (its stdin closes).
pub(crate) struct Server {
    pub(crate) port: u16,
    _child: Mutex<(Child, ChildStdin)>,
}

impl Server {
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A raw HTTP request to the server (the tests' only way to read its state directly).
    pub(crate) fn http(&self, method: &str, path: &str) -> String {
        self.send(&format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    /// One HTTP/1.0 request, written as it is; the whole answer.
    fn send(&self, request: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to server");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// An EC2 query (`Action=…&Version=…`) sent to the server as it is, in `region` (the server
    /// reads the region from the credential scope; the signature is not checked): its answer,
    /// headers included. What a test reads without labctl or an SDK in between.
    pub(crate) fn ec2_query(&self, region: &str, body: &str) -> String {
        self.send(&format!(
            "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// Run the independent EC2 client (`tests/it/ec2.py`, boto3) against the server.
    pub(crate) fn ec2(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/ec2.py");
        let output = Command::new("python3")
            .arg(script)
            .arg(self.endpoint())
            .args(args)
            .output()
            .expect("run python3 tests/it/ec2.py");
        assert!(
            output.status.success(),
            "ec2.py {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Every key pair the server holds in `region`.
    pub(crate) fn key_pairs(&self, region: &str) -> Vec<RemoteKey> {
        serde_json::from_str(&self.ec2(&["describe", region])).unwrap()
    }

    /// The key pair `name` in `region`, if the server has it.
    pub(crate) fn key_pair(&self, region: &str, name: &str) -> Option<RemoteKey> {
        self.key_pairs(region).into_iter().find(|k| k.name == name)
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct RemoteKey {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) key_type: Option<String>,
    pub(crate) public_key: String,
    pub(crate) tags: std::collections::BTreeMap<String, String>,
}

/// The Python packages the tests use: the local EC2 server (`moto[server]`), `boto3` to look
/// at it independently of labctl, `jsonschema` and `pyyaml` to check the schema as an editor
/// would. Installed with pip, once, when missing, so `cargo test` needs no set-up of its own.
pub(crate) fn python_packages() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let present = Command::new("python3")
            .args(["-c", "import moto, boto3, jsonschema, yaml"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            let installed = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "moto[server]>=5,<6",
                    "jsonschema",
                    "pyyaml",
                ])
                .status()
                .expect("run python3 -m pip (the tests need python3 with pip)");
            assert!(
                installed.success(),
                "pip could not install moto[server], jsonschema, pyyaml"
            );
        }
    });
}

/// The shared server, started on first use.
pub(crate) fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        python_packages();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/moto_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 tests/it/moto_server.py (is moto[server] installed?)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("server port, got {line:?}"));
        let stdin = child.stdin.take().unwrap();
        let server = Server {
            port,
            _child: Mutex::new((child, stdin)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server
            .http("GET", "/moto-api/")
            .lines()
            .next()
            .is_some_and(|l| l.contains(" 200 "))
        {
            assert!(
                Instant::now() < deadline,
                "the local EC2 server did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    })
}

/// A fault-injecting, latency-adding, throttling proxy (`bench/ec2_proxy.py`) in front of
/// the shared server, on its own loopback port; it stops when dropped.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    child: Child,
}

impl Proxy {
    pub(crate) fn start(extra: &[&str]) -> Proxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/ec2_proxy.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(server().endpoint())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 bench/ec2_proxy.py");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("proxy port, got {line:?}"));
        Proxy { port, child }
    }

    /// A proxy with these fault rules (see `bench/ec2_proxy.py`).
    pub(crate) fn faults(rules: &serde_json::Value) -> Proxy {
        Proxy::start(&["--faults", &rules.to_string()])
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Wait (at most `within`) until the proxy has injected `fault` once.
    pub(crate) fn wait_for_fault(&self, fault: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while self.stats()["faults"][fault] != 1 {
            assert!(
                Instant::now() < deadline,
                "the {fault} fault was never reached: {}",
                self.stats()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (at most `within`) until `ready` holds of the proxy's stats.
    pub(crate) fn wait_until(
        &self,
        what: &str,
        within: Duration,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !ready(&self.stats()) {
            assert!(
                Instant::now() < deadline,
                "never reached: {what}: {}",
                self.stats()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the proxy saw: requests per action and faults injected.
    pub(crate) fn stats(&self) -> serde_json::Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET /__proxy/stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A unique name for this test's resources, so tests can share one server.
/// An AWS account id of this test run's own (12 digits, never the local server's default
/// account 123456789012): tests sharing the server keep to their accounts.
pub(crate) fn unique_account() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = (std::process::id() as usize) * 1000 + COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("9{:011}", n % 100_000_000_000)
}

pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A temporary folder with a manifest, in which labctl runs.
pub(crate) struct Test {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) home: tempfile::TempDir,
}

/// What one labctl run did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    /// stdout's lines with the lines wrapped under them (indented six spaces, as plans and
    /// reports put what does not fit) joined back on: one line per key pair or hint.
    pub(crate) fn logical_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for line in self.stdout.lines() {
            match out.last_mut() {
                Some(last) if line.starts_with("      ") => {
                    last.push(' ');
                    last.push_str(line.trim_start());
                }
                _ => out.push(line.to_owned()),
            }
        }
        out
    }

    pub(crate) fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{self:#?}");
        self
    }
}

impl Test {
    pub(crate) fn new() -> Self {
        Test {
            dir: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
        self
    }

    /// A command for labctl in this folder with a clean, loopback-only AWS environment.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        self.command_under(&[], args)
    }

    /// [`command`](Self::command), with labctl started by `wrapper` (a program and its
    /// arguments, labctl's path and arguments after them).
    pub(crate) fn command_under(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(labctl_bin());
                cmd
            }
            None => Command::new(labctl_bin()),
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.home.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.path().join("no-aws-credentials"),
            )
            .stdin(Stdio::null());
        cmd
    }

    pub(crate) fn run_command(mut cmd: Command) -> Run {
        let output = cmd.output().expect("run labctl");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Run labctl with these arguments (no server).
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        Self::run_command(self.command(args))
    }

    /// Run a cloud command through a proxy.
    pub(crate) fn via(&self, proxy: &Proxy, args: &[&str]) -> Run {
        let endpoint = proxy.endpoint();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--endpoint-url", &endpoint]);
        Self::run_command(self.command(&all))
    }

    /// Run a cloud command against the shared local server.
    pub(crate) fn cloud(&self, args: &[&str]) -> Run {
        let endpoint = server().endpoint();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--endpoint-url", &endpoint]);
        Self::run_command(self.command(&all))
    }

    /// Run git in this folder (with this test's HOME and an identity for commits).
    pub(crate) fn git(&self, args: &[&str]) -> std::process::Output {
        Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.home.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap()
    }

    pub(crate) fn mode(&self, rel: &str) -> u32 {
        std::fs::symlink_metadata(self.path(rel)).unwrap().mode() & 0o7777
    }
}

/// The OpenSSH public key (algorithm and base64, no comment) of a private key file.
/// A key file of `tests/fixtures/keys` (its text).
pub(crate) fn fixture_key(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/keys")
            .join(name),
    )
    .unwrap()
}

pub(crate) fn public_key_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let secret = labctl::keys::Secret::new(text);
    let public = labctl::keys::public_key_of_private(&secret)
        .unwrap()
        .to_openssh();
    strip_comment(&public)
}

/// The public key of a private key file as OpenSSH reads it (`ssh-keygen -y`), without its
/// comment: an opinion on the file that is not labctl's own.
pub(crate) fn ssh_public_key_of(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-keygen (openssh-client) is needed");
    assert!(
        out.status.success(),
        "ssh-keygen -y cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    strip_comment(&String::from_utf8_lossy(&out.stdout))
}

pub(crate) fn strip_comment(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Requests other than reads (`DescribeKeyPairs`, and the team store's `GetParameters`,
/// `GetParameter`, `DescribeParameters`) in a `--json` report: the mutating calls.
pub(crate) fn mutating_calls(json: &serde_json::Value) -> u64 {
    json["api_calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(op, _)| {
            !matches!(
                op.as_str(),
                "DescribeKeyPairs" | "GetParameters" | "GetParameter" | "DescribeParameters"
            )
        })
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

/// A test that cannot set itself up fails, unless `LABCTL_TEST_ALLOW_SKIP=1` says that this
/// machine cannot run it (then it says so and passes): a skip is never silent.
#[track_caller]
pub(crate) fn cannot_run(why: &str) {
    if std::env::var_os("LABCTL_TEST_ALLOW_SKIP").is_some_and(|v| v == "1") {
        eprintln!("skipped (LABCTL_TEST_ALLOW_SKIP=1): {why}");
    } else {
        panic!("{why}; set LABCTL_TEST_ALLOW_SKIP=1 to skip it on a machine that cannot run it");
    }
}

/// The one builder of test manifests: `version: 1`, the project, optional `defaults` (as a
/// YAML flow mapping or block lines), and key pair entries each given as its `name` and
/// further `field: value` lines. Every test file builds its manifests with it.
#[derive(Clone, Debug)]
pub(crate) struct Manifest {
    text: String,
    entries: bool,
    accounts: bool,
}

impl Manifest {
    pub(crate) fn new(project: &str) -> Self {
        Manifest {
            text: format!("version: 1\nproject: {project}\n"),
            entries: false,
            accounts: false,
        }
    }

    /// One account of `accounts:` (before any entry): its name and its flow mapping
    /// (`{ id: "111111111111" }`).
    #[must_use]
    pub(crate) fn account(mut self, name: &str, yaml: &str) -> Self {
        assert!(!self.entries, "accounts come before the key pairs");
        if !self.accounts {
            self.text.push_str("accounts:\n");
            self.accounts = true;
        }
        let _ = writeln!(self.text, "  {name}: {yaml}");
        self
    }

    /// `defaults:` as one flow mapping (`{ region: us-east-1, key_type: ed25519 }`) or, when
    /// it starts with a newline, as indented block lines.
    #[must_use]
    pub(crate) fn defaults(mut self, yaml: &str) -> Self {
        if yaml.starts_with('\n') {
            let _ = writeln!(self.text, "defaults:{yaml}");
        } else {
            let _ = writeln!(self.text, "defaults: {yaml}");
        }
        self
    }

    /// One entry of `keypairs`: `name`, then each `(field, value)` on its own line.
    #[must_use]
    pub(crate) fn key(mut self, name: &str, fields: &[(&str, &str)]) -> Self {
        if !self.entries {
            self.text.push_str("keypairs:\n");
            self.entries = true;
        }
        let _ = writeln!(self.text, "  - name: {name}");
        for (field, value) in fields {
            let _ = writeln!(self.text, "    {field}: {value}");
        }
        self
    }

    pub(crate) fn text(&self) -> String {
        self.text.clone()
    }
}

/// Run labctl on a pseudo-terminal (util-linux `script`), optionally typing `input`; return
/// everything the terminal showed.
pub(crate) fn on_terminal(test: &Test, args: &str, input: Option<&str>) -> String {
    on_terminal_shell(test, &format!("{} {args}", labctl_bin().display()), input)
}

/// labctl on a pseudo-terminal `cols` columns wide.
pub(crate) fn on_narrow_terminal(test: &Test, cols: u16, args: &str) -> String {
    on_terminal_shell(
        test,
        &format!(
            "stty cols {cols} rows 24; {} {args}",
            labctl_bin().display()
        ),
        None,
    )
}

/// A shell command line on a pseudo-terminal, optionally typing `input`.
fn on_terminal_shell(test: &Test, command: &str, input: Option<&str>) -> String {
    let mut cmd = test.command(&[]);
    cmd.env_remove("NO_COLOR");
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-f", "-c", command, "/dev/null"])
        .current_dir(test.dir.path())
        .env_clear()
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env("TERM", "xterm-256color")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = script.spawn().expect("script(1) from util-linux");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            std::thread::sleep(Duration::from_secs(3));
            stdin.write_all(input.as_bytes()).unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}
