//! Teardown for the root smoke tests: the namespaces, directories and child
//! process a test created, removed when the guard drops, panic or not.
//! Included by path (`#[path = "support/teardown.rs"] mod teardown;`), so the
//! smoke tests do not compile the replay helpers in `support/mod.rs`.

use std::path::PathBuf;
use std::process::{Child, Command};

#[derive(Default)]
pub struct Teardown {
    pub netns: Vec<String>,
    pub dirs: Vec<PathBuf>,
    pub child: Option<Child>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill(); // SIGKILL to our own child, by PID
                let _ = child.wait();
            }
        }
        for n in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
