//! `cargo xtask demo [--docker]`: traefiker (static tokens, stand-in narratives) behind a
//! real Traefik on this machine, until Ctrl-C: with the local backend, or with `--docker` the
//! repository's compose stack (the docker backend, narratives as containers).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use crate::compose::ComposeStack;
use crate::stack::Stack;
use crate::traefik::workspace_root;

/// Sets when Ctrl-C (SIGINT) or SIGTERM arrives.
fn stop_flag() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;
    Ok(stop)
}

/// The demo's static tokens: three users, one of them an administrator. The login page offers
/// them (a browser never needs to know a token).
pub const TOKENS: &str = "demo-token:alice,bob-token:bob,admin-token:kbadmin:KBASE_ADMIN";

/// traefiker's settings in the local demo (and the browser e2e, which runs the demo).
pub fn settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("auth_tokens", TOKENS),
        ("num_prespawn", "2"),
        ("reaper_interval_secs", "30"),
        ("reaper_timeout_secs", "300"),
        ("activity_sources", "traefik,narrative_status"),
    ]
}

/// The login page's address that goes on to `path` once logged in, as KBase's login redirect
/// writes it (`/#login?nextrequest=<JSON, form-encoded>`).
pub fn login_then(path: &str) -> String {
    let next = serde_json::json!({ "path": path, "external": true }).to_string();
    let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/#login?nextrequest={encoded}")
}

/// Runs the demo until Ctrl-C (SIGINT) or SIGTERM; then stops everything it started. With
/// `observe`, a Prometheus scrapes it with the project's rules.
pub fn demo(docker: bool, observe: bool) -> Result<(), String> {
    if docker {
        return demo_docker();
    }
    let stop = stop_flag()?;
    let dir = workspace_root().join("target").join("demo");
    let mut stack = Stack::start(&dir, &settings())?;
    let web = stack.web_url("/narrative/");
    let jar = dir.join("cookies.txt");
    let jar = jar.display();
    println!();
    println!(
        "traefiker is running behind Traefik (logs and config in {}).",
        dir.display()
    );
    println!();
    println!("  Open:   {web}");
    println!("          in a browser: the login page offers the demo users; choose alice, and the");
    println!("          page waits until her narrative answers, then opens it.");
    println!(
        "  Admin:  {}",
        stack.web_url(&login_then("/narrative_status/"))
    );
    println!("          log in as kbadmin: every narrative, and a button to shut one down.");
    println!("  Tokens: demo-token (alice), bob-token (bob), admin-token (kbadmin, KBASE_ADMIN)");
    println!();
    println!(
        "  Without a token, Traefik sends you to traefiker, which redirects to the login page:"
    );
    println!("    curl -si {web} | head -n 5");
    println!();
    println!("  With a token: the first request starts (or finds) alice's narrative and sets the");
    println!(
        "  narrative_session cookie; the second is routed by Traefik to the narrative itself:"
    );
    println!("    curl -s -c {jar} -b kbase_session=demo-token -o /dev/null -w '%{{http_code}}\\n' {web}");
    println!("    sleep 2; curl -s -b {jar} {web}");
    println!();
    println!(
        "  Traefik metrics: http://127.0.0.1:{}/metrics   traefiker: {}",
        stack.ports.metrics,
        stack.traefiker_url("/narrative_status/")
    );
    let _prometheus = if observe {
        Some(crate::observe::demo_prometheus(&stack)?)
    } else {
        None
    };
    println!();
    println!("Press Ctrl-C to stop.");
    while !stop.load(Ordering::SeqCst) {
        let exited = [&mut stack.traefiker, &mut stack.traefik]
            .into_iter()
            .find_map(|p| p.exited().map(|s| format!("{} exited ({s})", p.name())));
        if let Some(what) = exited {
            return Err(format!("{what}\n{}", stack.log_tails(20)));
        }
        sleep(Duration::from_millis(200));
    }
    eprintln!("\nstopping Traefik and traefiker (which stops its narratives)...");
    drop(stack);
    eprintln!("stopped.");
    Ok(())
}

/// `demo --docker`: builds the images, brings the compose stack up as project
/// `traefiker-demo`, prints what to try, and takes it down (narratives included) on Ctrl-C.
fn demo_docker() -> Result<(), String> {
    let stop = stop_flag()?;
    crate::images::images()?;
    let dir = workspace_root().join("target").join("demo-docker");
    let stack = ComposeStack::up("traefiker-demo", &dir, crate::compose::DEFAULT_NETWORK, &[])?;
    let web = stack.web_url("/narrative/");
    let jar = dir.join("cookies.txt");
    let jar = jar.display();
    println!();
    println!(
        "traefiker (docker backend) is running behind Traefik: compose project {}, network {}.",
        stack.project(),
        stack.network()
    );
    println!();
    println!("  Open:   {web}");
    println!(
        "          in a browser: the demo's login page is the local backend's only, so set the"
    );
    println!(
        "          cookie KBase would set, in the devtools console of a page of {}:",
        stack.web_url("/")
    );
    println!("            document.cookie = \"kbase_session=demo-token; path=/\"");
    println!(
        "  Admin:  {}   (with kbase_session=admin-token)",
        stack.web_url("/narrative_status/")
    );
    println!("  Tokens: demo-token (alice), admin-token (kbadmin, KBASE_ADMIN)");
    println!();
    println!("  The first request with a token gives alice a waiting container (renamed to hers);");
    println!("  the second is routed by Traefik's Docker provider to that container:");
    println!("    curl -s -c {jar} -b kbase_session=demo-token -o /dev/null -w '%{{http_code}}\\n' {web}");
    println!("    sleep 2; curl -s -b {jar} {web}");
    println!(
        "    docker ps --filter label=traefik.docker.network={}",
        stack.network()
    );
    println!();
    println!(
        "  traefiker: {}   logs: docker-compose -p {} logs -f",
        stack.traefiker_url("/narrative_status/"),
        stack.project()
    );
    println!();
    println!("Press Ctrl-C to stop.");
    while !stop.load(Ordering::SeqCst) {
        sleep(Duration::from_millis(200));
    }
    eprintln!("\nstopping the stack and removing its narratives...");
    drop(stack);
    eprintln!("stopped.");
    Ok(())
}

/// `demo --swarm`: builds the images, makes a single-node swarm if none is active, deploys
/// the Swarm stack as `traefiker-demo-swarm` (three replicas), prints what to try, and on
/// Ctrl-C removes the stack, its narratives and networks, and the swarm if it made it.
pub fn demo_swarm() -> Result<(), String> {
    let stop = stop_flag()?;
    let swarm = crate::swarm::SwarmGuard::ensure()?;
    crate::images::images()?;
    let dir = workspace_root().join("target").join("demo-swarm");
    let settings = [
        ("auth_tokens", TOKENS),
        ("reaper_interval_secs", "30"),
        ("reaper_timeout_secs", "300"),
    ];
    let stack = crate::swarm::SwarmStack::up(
        "traefiker-demo-swarm",
        &dir,
        "traefiker-demo-swarm",
        &settings,
    )?;
    let web = stack.web_url("/narrative/");
    let jar = dir.join("cookies.txt");
    let jar = jar.display();
    println!();
    println!(
        "traefiker (swarm backend, 3 replicas) is running behind Traefik's Swarm provider: stack {}, network {}.",
        stack.name(),
        stack.network()
    );
    println!();
    println!("  Open:   {web}");
    println!(
        "          in a browser: set the cookie KBase would set, in the devtools console of a"
    );
    println!("          page of {}:", stack.web_url("/"));
    println!("            document.cookie = \"kbase_session=demo-token; path=/\"");
    println!(
        "  Admin:  {}   (with kbase_session=admin-token; \"replica\" says which one answered)",
        stack.web_url("/narrative_status/")
    );
    println!("  Tokens: demo-token (alice), bob-token (bob), admin-token (kbadmin, KBASE_ADMIN)");
    println!();
    println!("  The first request with a token gives alice a waiting narrative service (any");
    println!("  replica may assign it); the second is routed by Traefik to that service:");
    println!("    curl -s -c {jar} -b kbase_session=demo-token -o /dev/null -w '%{{http_code}}\\n' {web}");
    println!("    sleep 3; curl -s -b {jar} {web}");
    println!(
        "    docker service ls --filter label=traefik.swarm.network={}",
        stack.network()
    );
    println!();
    println!("  Try a replica's death and a rolling update; users keep their narratives:");
    println!(
        "    docker kill $(docker ps -q --filter label=com.docker.swarm.service.name={} | head -n 1)",
        stack.traefiker_service()
    );
    println!(
        "    docker service update --force {}",
        stack.traefiker_service()
    );
    println!();
    println!(
        "  traefiker: {} (one replica; the others on {:?})   logs: docker service logs -f {}",
        stack.traefiker_url("/narrative_status/"),
        stack.replica_ports().unwrap_or_default(),
        stack.traefiker_service()
    );
    println!();
    println!("Press Ctrl-C to stop.");
    while !stop.load(Ordering::SeqCst) {
        sleep(Duration::from_millis(200));
    }
    eprintln!("\nremoving the stack, its narratives and its networks...");
    drop(stack);
    drop(swarm);
    eprintln!("stopped.");
    Ok(())
}
