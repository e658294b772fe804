//! `cargo xtask demo`: traefiker (local backend, static tokens, stand-in narratives) behind a
//! real Traefik on this machine, until Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use crate::stack::Stack;
use crate::traefik::workspace_root;

/// Runs the demo until Ctrl-C (SIGINT) or SIGTERM; then stops everything it started.
pub fn demo() -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;
    }
    let dir = workspace_root().join("target").join("demo");
    let mut stack = Stack::start(
        &dir,
        &[
            (
                "auth_tokens",
                "demo-token:alice,admin-token:kbadmin:KBASE_ADMIN",
            ),
            ("num_prespawn", "2"),
            ("reaper_interval_secs", "30"),
            ("reaper_timeout_secs", "300"),
            ("activity_sources", "traefik,narrative_status"),
        ],
    )?;
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
    println!("  Token:  demo-token   (user alice; admin-token is user kbadmin with KBASE_ADMIN)");
    println!("          in a browser, set the cookie kbase_session=demo-token for localhost first");
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
