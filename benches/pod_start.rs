//! Pod start through containerd's CRI plugin, the runtime example against runc under the same containerd:
//! RunPodSandbox + CreateContainer + StartContainer of a host-network pod with one busybox container, timed from
//! the client (as a kubelet sees it), the handlers alternating (and which goes first), `RUNS` (default 20) each.
//! The pods are stopped and removed between runs, untimed. Needs what tests/cri.rs needs (root, containerd, runc,
//! docker-registry, busybox-static, gcc): `cargo bench --bench pod_start`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

#[path = "../tests/support/cri.rs"]
mod cri;
#[path = "../tests/support/mod.rs"]
mod support;

use cri::{Cri, HANDLERS};

/// One pod start with `handler`: its time.
fn pod_start(c: &Cri, handler: &str, n: usize) -> Duration {
    let pod_config = c.pod_config(&format!("bench-{handler}-{n}"));
    let container = c.container_config("main", &["sleep", "1000"]);
    let t = Instant::now();
    let pod = c.run_pod(&pod_config, handler);
    c.start_container(&pod, &pod_config, container);
    let took = t.elapsed();
    c.remove_all();
    took
}

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let c = Cri::start();
    c.pull_busybox();
    // Warm up: the first pod of each handler unpacks the images and pays for the first shim.
    for h in HANDLERS {
        pod_start(&c, h, usize::MAX);
    }
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for n in 0..runs {
        let order = if n % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            times[i].push(pod_start(&c, HANDLERS[i], n));
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut medians = [0.0; 2];
    println!("pod start (RunPodSandbox + CreateContainer + StartContainer), {runs} runs each, alternating:");
    for (i, t) in times.iter_mut().enumerate() {
        t.sort();
        medians[i] = ms(t[t.len() / 2]);
        println!(
            "  {:<6} median {:7.1} ms   min {:7.1} ms   max {:7.1} ms",
            HANDLERS[i],
            medians[i],
            ms(t[0]),
            ms(t[t.len() - 1])
        );
    }
    println!("  wharf / runc (medians): {:.2}x", medians[1] / medians[0]);
}
