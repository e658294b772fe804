//! The pages people see, over real sockets: the reload page that waits for the narrative and
//! the polls it makes, traefiker's marker on every answer, the demo's login page and loader,
//! and the administrators' status page with its shutdown form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Harness;
use reqwest::StatusCode;
use traefiker_core::testing::Op;
use traefiker_core::NarrativeKind;

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const DEMO_TOKENS: &str = "alice-token:alice,admin-token:kbadmin:KBASE_ADMIN";

/// The nonce a CSP names for scripts.
fn script_nonce(csp: &str) -> String {
    let at = csp.find("script-src 'nonce-").expect("a script nonce") + 18;
    csp[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

fn user_narratives(h: &Harness) -> Vec<String> {
    h.manager
        .containers()
        .into_iter()
        .filter(|n| n.kind == NarrativeKind::User)
        .map(|n| n.name.to_string())
        .collect()
}

#[tokio::test]
async fn every_answer_of_traefikers_carries_the_marker() {
    let h = Harness::start(&[]).await;
    for r in [
        h.get("/healthz").send().await.unwrap(),
        h.get("/narrative/x").send().await.unwrap(),
        h.open("/narrative/x", "alice-token").await,
        h.open("/narrative/x", "wrong-token").await,
        h.get("/narrative_status/").send().await.unwrap(),
        h.get("/no/such/path").send().await.unwrap(),
    ] {
        assert_eq!(
            r.headers()["x-traefiker"],
            "1",
            "{} {}",
            r.status(),
            r.url()
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn the_reload_page_says_what_happens_and_runs_only_its_own_script() {
    let h = Harness::start(&[("reload_wait_secs", "45")]).await;
    let r = h.open("/narrative/ws.1.obj.2", "alice-token").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = r.text().await.unwrap();
    let nonce = script_nonce(&csp);
    assert_eq!(nonce.len(), 32, "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(body.matches("<script").count(), 1, "{body}");
    assert!(
        body.contains(&format!("<script nonce=\"{nonce}\">")),
        "{body}"
    );
    assert!(body.contains("Starting your narrative…"));
    assert!(
        body.contains("narrative-alice-522b27"),
        "the narrative's name"
    );
    assert!(body.contains("data-wait-secs=\"45\""));
    assert!(body.contains("data-poll=\"/narrative/api/status\""));
    assert!(
        body.contains("href=\"/narrative/ws.1.obj.2\""),
        "the retry link"
    );
    // Without JavaScript: the Python version's refresh.
    assert!(body.contains(
        "<noscript><META HTTP-EQUIV=\"refresh\" CONTENT=\"0;URL='/load-narrative.html?n=ws.1.obj.2&check=true'\"></noscript>"
    ));
    let again = h.open("/narrative/ws.1.obj.2", "alice-token").await;
    let other = script_nonce(again.headers()["content-security-policy"].to_str().unwrap());
    assert_ne!(nonce, other, "a nonce is never reused");
    h.stop().await;
}

#[tokio::test]
async fn a_poll_is_answered_at_once_and_creates_nothing() {
    let h = Harness::start(&[]).await;
    let first = h.open("/narrative/", "alice-token").await;
    let session = first.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // Alice was given a waiting narrative: its replacement is created in the background.
    h.wait_for_pool(2).await;
    // What a request could call; listings are the background loops'.
    let request_calls = || {
        let mut calls = h.manager.all_calls();
        calls.retain(|op, _| !matches!(op, Op::List | Op::Verify));
        calls
    };
    let calls = request_calls();
    // The user's own cookies (Traefik did not route them yet), bob's with no narrative at
    // all, and none: each a poll, each answered the same, none touching the backend.
    for cookie in [
        format!("kbase_session=alice-token; {session}"),
        "kbase_session=admin-token".to_owned(),
        String::new(),
    ] {
        let r = h
            .get("/narrative/api/status")
            .header("X-Traefiker-Poll", "1")
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.headers()["x-traefiker"], "1");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r.headers().get("set-cookie").is_none());
    }
    assert_eq!(request_calls(), calls, "polls called the backend");
    assert_eq!(user_narratives(&h), ["narrative-alice-522b27"]);
    h.stop().await;
}

#[tokio::test]
async fn without_static_tokens_there_is_no_login_page() {
    let h = Harness::start(&[]).await;
    for path in ["/", "/load-narrative.html?n=x"] {
        assert_eq!(
            h.get(path).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
    let r = h
        .client
        .post(format!("{}/login", h.base))
        .form(&[("user", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    h.stop().await;
}

/// The demo: the local backend's settings (the harness runs the in-memory backend whatever
/// the configuration names), static tokens, and so the front door.
const LOCAL: (&str, &str) = ("local_command", "narrative-standin --port {port}");

async fn demo() -> Harness {
    Harness::start(&[LOCAL, ("auth_tokens", DEMO_TOKENS)]).await
}

#[tokio::test]
async fn the_demo_login_offers_the_users_and_sets_the_cookie() {
    let h = demo().await;
    let page = h.get("/").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let body = page.text().await.unwrap();
    assert!(body.contains("value=\"alice\">alice</button>"), "{body}");
    assert!(body.contains("kbadmin (KBASE_ADMIN)"));
    assert!(!body.contains("alice-token"), "the page holds no token");

    let login = |fields: Vec<(&'static str, &'static str)>, site: &'static str| {
        h.client
            .post(format!("{}/login", h.base))
            .header("Sec-Fetch-Site", site)
            .form(&fields)
            .send()
    };
    let r = login(
        vec![("user", "alice"), ("next", "/narrative/ws.1.obj.2?")],
        "same-origin",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/narrative/ws.1.obj.2");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("kbase_session=alice-token;"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));

    let r = login(
        vec![("token", "admin-token"), ("next", "https://evil.example/")],
        "same-origin",
    )
    .await
    .unwrap();
    assert_eq!(r.headers()["location"], "/narrative/");

    let r = login(vec![("token", "guess")], "same-origin")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("That token was not accepted."));

    let r = login(vec![("user", "alice")], "cross-site").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("set-cookie").is_none());

    let r = h
        .get("/load-narrative.html?n=ws.1.obj.2&check=true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["location"], "/narrative/ws.1.obj.2");
    h.stop().await;
}

#[tokio::test]
async fn the_status_page_is_for_administrators_browsers_and_json_stays_the_default() {
    let h = demo().await;
    h.open("/narrative/", "alice-token").await;
    let as_browser = |token: &'static str| {
        h.with_token(h.get("/narrative_status/"), token)
            .header("Accept", BROWSER_ACCEPT)
            .send()
    };
    let page = as_browser("admin-token").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = page.text().await.unwrap();
    assert!(body.contains(&format!("<script nonce=\"{}\">", script_nonce(&csp))));
    assert!(
        body.contains("data-narrative=\"narrative-alice-522b27\""),
        "{body}"
    );
    assert!(
        body.contains("<td data-label=\"User\">alice</td>"),
        "{body}"
    );
    assert!(
        body.contains("waiting, ready"),
        "the pool's narratives: {body}"
    );
    assert!(body.contains("No reaper cycle has run yet"));
    // The pool (SPEC §14): its target and why, and the last day drawn inline, loading
    // nothing (the policy allows no image).
    assert!(
        body.contains("this replica aims at <strong>2</strong>, set by num_prespawn, the floor"),
        "{body}"
    );
    assert!(
        body.contains("<h3>Pool size against new users</h3>"),
        "{body}"
    );
    assert!(body.contains("UTC: 1 new user;"), "alice: {body}");
    assert_eq!(
        body.matches("<svg viewBox=\"0 0 360 150\" role=\"img\"")
            .count(),
        2
    );
    assert!(csp.contains("img-src 'none'"), "{csp}");

    h.get("/reaper/").send().await.unwrap();
    let body = as_browser("admin-token")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("Last reaper cycle"));
    assert!(body.contains("<code>traefik</code>: answered"), "{body}");

    for json in [
        as_browser("alice-token").await.unwrap(),
        h.open("/narrative_status/", "admin-token").await,
    ] {
        assert_eq!(json.headers()["content-type"], "application/json");
    }
    h.stop().await;
}

/// The form token on the admin's status page.
async fn form_token(h: &Harness) -> String {
    let body = h
        .with_token(h.get("/narrative_status/"), "admin-token")
        .header("Accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = body.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    body[at..at + 32].to_owned()
}

#[tokio::test]
async fn a_narrative_is_shut_down_from_the_page_only_by_an_administrator_who_confirms() {
    let h = demo().await;
    h.open("/narrative/", "alice-token").await;
    let alice = "narrative-alice-522b27";
    let token = form_token(&h).await;
    let post = |auth: &'static str, fields: Vec<(&'static str, String)>, site: &'static str| {
        h.with_token(
            h.client
                .post(format!("{}/narrative_status/shutdown", h.base))
                .header("Sec-Fetch-Site", site),
            auth,
        )
        .form(&fields)
        .send()
    };
    let fields = |csrf: &str, confirm: bool| {
        let mut f = vec![("narrative", alice.to_owned()), ("csrf", csrf.to_owned())];
        if confirm {
            f.push(("confirm", "yes".to_owned()));
        }
        f
    };

    for (auth, csrf, site, want) in [
        (
            "admin-token",
            token.as_str(),
            "cross-site",
            StatusCode::FORBIDDEN,
        ),
        (
            "admin-token",
            "0123456789abcdef0123456789abcdef",
            "same-origin",
            StatusCode::FORBIDDEN,
        ),
        (
            "alice-token",
            token.as_str(),
            "same-origin",
            StatusCode::FORBIDDEN,
        ),
    ] {
        let r = post(auth, fields(csrf, true), site).await.unwrap();
        assert_eq!(r.status(), want, "{auth} {site}");
    }
    assert_eq!(
        user_narratives(&h),
        [alice],
        "refused posts removed nothing"
    );

    let ask = post("admin-token", fields(&token, false), "same-origin")
        .await
        .unwrap();
    assert_eq!(ask.status(), StatusCode::OK);
    let page = ask.text().await.unwrap();
    assert!(
        page.contains("Shut it down") && page.contains("Cancel"),
        "{page}"
    );
    assert_eq!(user_narratives(&h), [alice], "asking removes nothing");

    let removes = h.manager.calls(Op::Remove);
    let done = post("admin-token", fields(&token, true), "same-origin")
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers()["location"],
        "/narrative_status/?shut=narrative-alice-522b27"
    );
    assert!(user_narratives(&h).is_empty(), "gone from the backend");
    assert_eq!(h.manager.calls(Op::Remove), removes + 1);
    let after = h
        .with_token(
            h.get("/narrative_status/?shut=narrative-alice-522b27"),
            "admin-token",
        )
        .header("Accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.contains("narrative-alice-522b27 was shut down."));
    assert!(
        !after.contains("data-narrative=\"narrative-alice-522b27\""),
        "gone from the page"
    );

    let waiting = h
        .manager
        .containers()
        .into_iter()
        .find(|n| n.kind == NarrativeKind::Prespawned)
        .unwrap();
    let r = post(
        "admin-token",
        vec![
            ("narrative", waiting.name.to_string()),
            ("csrf", token.clone()),
            ("confirm", "yes".into()),
        ],
        "same-origin",
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "only users' narratives"
    );
    h.stop().await;
}

#[tokio::test]
async fn traefik_routes_the_demos_front_door_only_where_there_is_one() {
    let rancher = ("rancher_url", "http://rancher.invalid/v2-beta");
    for (backend, tokens, front) in [
        (LOCAL, true, true),
        (LOCAL, false, false),
        (rancher, true, false),
    ] {
        let mut settings = vec![("traefik_provider", "true"), backend];
        if tokens {
            settings.extend([
                ("auth_tokens", DEMO_TOKENS),
                ("allow_static_tokens", "true"),
            ]);
        }
        let h = Harness::start(&settings).await;
        h.wait_ready().await;
        let doc: serde_json::Value = h.dynamic().await;
        let router = &doc["http"]["routers"]["traefiker-front"];
        assert_eq!(router.is_object(), front, "{doc}");
        if front {
            assert_eq!(router["service"], "traefiker");
            let rule = router["rule"].as_str().unwrap();
            for path in [
                "Path(\"/\")",
                "Path(\"/login\")",
                "Path(\"/load-narrative.html\")",
                "PathPrefix(\"/narrative_status/\")",
            ] {
                assert!(rule.contains(path), "{rule}");
            }
        }
        h.stop().await;
    }
}
