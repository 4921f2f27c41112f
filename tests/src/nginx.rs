//! A real nginx for the deployment tests: started on a loopback port with its own prefix
//! directory, stopped when dropped.

use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The nginx binary: `$NGINX`, else `/usr/sbin/nginx`, else `nginx` on `PATH`.
pub fn nginx_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NGINX") {
        return path.into();
    }
    let sbin = Path::new("/usr/sbin/nginx");
    if sbin.exists() {
        return sbin.to_path_buf();
    }
    "nginx".into()
}

/// A free loopback port (bound, then released for the caller to use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    /// Starts nginx with `http_conf` inside its `http { }` block. The text `{{LISTEN}}` in it is
    /// replaced by the loopback address nginx listens on.
    pub fn start(http_conf: &str) -> Nginx {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("mcp-bastion-nginx-{}-{port}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("logs")).expect("nginx prefix dir");
        let d = dir.display();
        let http_conf = http_conf.replace("{{LISTEN}}", &format!("127.0.0.1:{port}"));
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n{http_conf}\n}}\n"
        );
        // as root, nginx's workers run as `nobody`: they must be able to use the prefix
        if is_root() {
            let conf = format!("user root;\n{conf}");
            fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        } else {
            fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        }
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (run .ci/deps/nginx.sh)",
                    nginx_bin().display()
                )
            });
        let nginx = Nginx { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                panic!("nginx did not listen on {port}:\n{}", nginx.error_log());
            }
            thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }

    /// nginx's access log so far.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("logs/access.log")).unwrap_or_default()
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = fs::remove_dir_all(&self.dir);
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
