//! The demo's login page, standing in for KBase's front page where static tokens replace
//! auth2 (never with auth2): a browser sent to `/#login?nextrequest=…` by the login redirect
//! picks a demo user (or pastes a token), gets the `kbase_session` cookie and goes on to the
//! path it asked for.
//!
//! The page never holds a token: each user is a button that posts the user's name, and the
//! server sets the cookie. Its script only reads the `#login` fragment (which no server ever
//! sees) into the forms' `next` field; without JavaScript the user lands on `/narrative/`.

use maud::{html, Markup};

use super::{page, policy, Allow, Nonce};

const SCRIPT: &str = include_str!("login.js");

/// Where a login goes when it was not asked for a path.
pub const DEFAULT_NEXT: &str = "/narrative/";

/// One demo user.
#[derive(Debug)]
pub struct DemoUser<'a> {
    /// The user id.
    pub user: &'a str,
    /// Its custom roles.
    pub roles: &'a [String],
}

/// The policy of the login page: its own style and script, forms posted to itself.
pub fn login_policy(nonce: &Nonce) -> String {
    policy(
        nonce,
        Allow {
            fetch_self: false,
            forms_to_self: true,
        },
    )
}

/// The login page; `problem` says why the last attempt failed.
pub fn login_page(users: &[DemoUser<'_>], problem: Option<&str>, nonce: &Nonce) -> Markup {
    let body = html! {
        main {
            h1 { "Log in to the traefiker demo" }
            @if let Some(problem) = problem {
                p.bad role="alert" { (problem) }
            }
            p.muted {
                "This demo accepts fixed tokens instead of a KBase login. Choose a user, or paste a token."
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(DEFAULT_NEXT);
                h2 #users-heading { "Demo users" }
                ul.users aria-labelledby="users-heading" {
                    @for u in users {
                        li {
                            button type="submit" name="user" value=(u.user) {
                                (u.user)
                                @if !u.roles.is_empty() {
                                    " (" (u.roles.join(", ")) ")"
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(DEFAULT_NEXT);
                h2 { label for="token" { "Or a token" } }
                p { input #token type="password" name="token" autocomplete="off" required; }
                p { button.secondary type="submit" { "Log in with this token" } }
            }
            p.muted #next-info {
                "Then you go to " code #next-path { (DEFAULT_NEXT) } "."
            }
        }
    };
    page("Log in: traefiker demo", nonce, html! {}, body, SCRIPT)
}

/// The path a login goes on to: `asked` if it is a path of this site, else
/// [`DEFAULT_NEXT`]. The login redirect's `nextrequest` path ends in `?` (it is Werkzeug's
/// `full_path`), which is dropped.
pub fn safe_next(asked: Option<&str>) -> String {
    let Some(asked) = asked.map(str::trim) else {
        return DEFAULT_NEXT.to_owned();
    };
    let asked = asked.strip_suffix('?').unwrap_or(asked);
    let local = asked.starts_with('/')
        && !asked.starts_with("//")
        && !asked.starts_with("/\\")
        && asked.len() <= 2048
        && !asked.chars().any(char::is_control);
    if local {
        asked.to_owned()
    } else {
        DEFAULT_NEXT.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_goes_only_to_a_path_of_this_site() {
        assert_eq!(
            safe_next(Some("/narrative/ws.1.obj.2?")),
            "/narrative/ws.1.obj.2"
        );
        assert_eq!(safe_next(Some("/narrative/?a=b")), "/narrative/?a=b");
        for elsewhere in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "/narrative/\r\nSet-Cookie: x=y",
            "",
        ] {
            assert_eq!(safe_next(Some(elsewhere)), DEFAULT_NEXT, "{elsewhere:?}");
        }
        assert_eq!(safe_next(None), DEFAULT_NEXT);
    }

    #[test]
    fn the_page_offers_every_user_and_holds_no_token() {
        let roles = vec!["KBASE_ADMIN".to_owned()];
        let html = login_page(
            &[
                DemoUser {
                    user: "alice",
                    roles: &[],
                },
                DemoUser {
                    user: "kbadmin",
                    roles: &roles,
                },
            ],
            Some("<not accepted>"),
            &Nonce::new(),
        )
        .into_string();
        assert!(
            html.contains("name=\"user\" value=\"alice\">alice</button>"),
            "{html}"
        );
        assert!(html.contains("kbadmin (KBASE_ADMIN)"));
        assert!(html.contains("&lt;not accepted&gt;"));
        assert!(html.contains("<label for=\"token\">"));
    }
}
