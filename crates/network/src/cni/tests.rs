//! The chain logic against a recording double: no root, no plugins.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::*;

/// Records every call; answers each plugin with a canned output (or echoes an ADD result built from stdin).
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, String, Value)>>,
    fail: Mutex<Option<(String, PluginOutput)>>,
    versions: Mutex<Vec<(String, Vec<&'static str>)>>,
}

impl PluginExec for Recorder {
    fn find(&self, plugin: &str, _dirs: &[PathBuf]) -> Option<PathBuf> {
        (plugin != "missing").then(|| PathBuf::from(format!("/fake/{plugin}")))
    }

    fn exec(&self, path: &Path, env: &[(&str, String)], stdin: &[u8]) -> io::Result<PluginOutput> {
        let plugin = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cmd = env
            .iter()
            .find(|(k, _)| *k == "CNI_COMMAND")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let input: Value = serde_json::from_slice(stdin).map_err(io::Error::other)?;
        self.calls
            .lock()
            .expect("lock")
            .push((plugin.clone(), cmd.clone(), input.clone()));
        if let Some((p, out)) = self.fail.lock().expect("lock").clone()
            && p == plugin
        {
            return Ok(out);
        }
        let stdout = match cmd.as_str() {
            "VERSION" => {
                let versions = self.versions.lock().expect("lock");
                let v = versions.iter().find(|(p, _)| *p == plugin).map(|(_, v)| v.clone());
                json!({ "cniVersion": "1.0.0", "supportedVersions": v.unwrap_or(vec!["0.4.0", "1.0.0"]) })
            }
            "ADD" => {
                // Each plugin adds one interface to what it was given, so chaining is visible.
                let mut r = input.get("prevResult").cloned().unwrap_or(json!({
                    "cniVersion": input["cniVersion"], "ips": [{"address": "10.9.0.2/24", "interface": 0}]
                }));
                let ifs = r
                    .as_object_mut()
                    .expect("object")
                    .entry("interfaces")
                    .or_insert(json!([]));
                ifs.as_array_mut()
                    .expect("array")
                    .push(json!({ "name": plugin, "sandbox": "/ns" }));
                r
            }
            _ => Value::Null,
        };
        let stdout = if stdout.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&stdout).map_err(io::Error::other)?
        };
        Ok(PluginOutput {
            success: true,
            status: "exit status: 0".into(),
            stdout,
            stderr: Vec::new(),
        })
    }
}

fn setup() -> (Arc<Recorder>, Cni, ConfList, RuntimeArgs) {
    let rec = Arc::new(Recorder::default());
    let cni = Cni::with_exec(vec!["/fake".into()], rec.clone());
    let list = ConfList {
        cni_version: "1.0.0".into(),
        name: "net1".into(),
        plugins: vec![json!({"type": "bridge", "bridge": "br0"}), json!({"type": "portmap"})],
    };
    let rt = RuntimeArgs {
        container_id: "c1".into(),
        netns: "/ns".into(),
        ifname: "eth0".into(),
    };
    (rec, cni, list, rt)
}

#[test]
fn add_chains_prev_result_and_stamps_name_and_version() {
    let (rec, cni, list, rt) = setup();
    let (typed, raw) = cni.add(&list, &rt).expect("add");
    let calls = rec.calls.lock().expect("lock");
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].0.as_str(), calls[0].1.as_str()), ("bridge", "ADD"));
    assert_eq!(calls[0].2["name"], "net1");
    assert_eq!(calls[0].2["cniVersion"], "1.0.0");
    assert_eq!(calls[0].2["bridge"], "br0");
    assert!(calls[0].2.get("prevResult").is_none());
    assert_eq!(calls[1].2["prevResult"]["interfaces"][0]["name"], "bridge");
    assert_eq!(typed.interfaces.len(), 2);
    assert_eq!(raw["interfaces"][1]["name"], "portmap");
}

#[test]
fn del_runs_in_reverse_with_the_stored_result_and_past_failures() {
    let (rec, cni, list, rt) = setup();
    let prev = json!({"cniVersion": "1.0.0"});
    *rec.fail.lock().expect("lock") = Some((
        "portmap".into(),
        PluginOutput {
            success: false,
            status: "exit status: 1".into(),
            stdout: br#"{"cniVersion":"1.0.0","code":11,"msg":"try again","details":"iptables locked"}"#.to_vec(),
            stderr: Vec::new(),
        },
    ));
    let err = cni.del(&list, &rt, Some(&prev)).expect_err("portmap fails");
    match err {
        Error::Plugin {
            plugin,
            command,
            code,
            msg,
            details,
        } => {
            assert_eq!((plugin.as_str(), command, code), ("portmap", "DEL", 11));
            assert_eq!((msg.as_str(), details.as_str()), ("try again", "iptables locked"));
        }
        other => panic!("{other:?}"),
    }
    let calls = rec.calls.lock().expect("lock");
    let order: Vec<_> = calls.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(order, ["portmap", "bridge"], "bridge still ran after portmap failed");
    assert!(calls.iter().all(|c| c.2["prevResult"] == prev));
}

#[test]
fn a_plugin_failing_without_an_error_object_keeps_its_output() {
    let (rec, cni, list, rt) = setup();
    *rec.fail.lock().expect("lock") = Some((
        "bridge".into(),
        PluginOutput {
            success: false,
            status: "signal: 11".into(),
            stdout: b"panic: nil".to_vec(),
            stderr: b"goroutine 1".to_vec(),
        },
    ));
    match cni.add(&list, &rt) {
        Err(Error::PluginCrashed { status, output, .. }) => {
            assert_eq!(status, "signal: 11");
            assert_eq!(output, "panic: nil goroutine 1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn negotiation_picks_the_newest_common_version_or_names_the_odd_plugin() {
    let (rec, cni, _, _) = setup();
    rec.versions
        .lock()
        .expect("lock")
        .push(("old".into(), vec!["0.3.1", "0.4.0"]));
    assert_eq!(cni.negotiate(&["bridge"]).expect("negotiate"), "1.0.0");
    assert_eq!(cni.negotiate(&["bridge", "old"]).expect("negotiate"), "0.4.0");
    rec.versions
        .lock()
        .expect("lock")
        .push(("ancient".into(), vec!["0.1.0", "0.2.0"]));
    match cni.negotiate(&["bridge", "ancient"]) {
        Err(Error::IncompatibleVersion { plugin, supported, .. }) => {
            assert_eq!(plugin, "ancient");
            assert_eq!(supported, ["0.1.0", "0.2.0"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(cni.negotiate(&["missing"]), Err(Error::PluginNotFound { .. })));
}

#[test]
fn check_passes_the_stored_result_to_every_plugin() {
    let (rec, cni, list, rt) = setup();
    let prev = json!({"cniVersion": "1.0.0", "ips": []});
    cni.check(&list, &rt, &prev).expect("check");
    let calls = rec.calls.lock().expect("lock");
    assert!(calls.iter().all(|c| c.1 == "CHECK" && c.2["prevResult"] == prev));
    assert_eq!(calls.len(), 2);
}
