//! The demo's front door, mounted only with the local backend and its static tokens
//! ([`crate::config::Config::front_door`], SPEC §10): what KBase's own front end does for a
//! browser, so the demo works in one.
//!
//! - `GET /`: the login page ([`crate::pages::login`]); the login redirect sends browsers to
//!   `/#login?nextrequest=…`.
//! - `POST /login`: a demo user's name or a token; the token is checked like any other, and
//!   becomes the `kbase_session` cookie; then on to the path asked for (of this site only).
//! - `GET /load-narrative.html?n=<path>`: where the reload page goes on to; KBase's front end
//!   loads the narrative there, the demo sends the browser to `/narrative/<path>`.
//!
//! Never with auth2 nor with an orchestrator: a real site's front end is KBase's, and this
//! page hands out a configured user's token to whoever names the user.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::auth::AuthError;
use crate::config::StaticToken;
use crate::pages::login::{login_page, login_policy, safe_next, DemoUser};
use crate::pages::{respond, Nonce};
use crate::render::reply::{self, text};
use crate::routes::{from_this_site, limited_as, refused};
use crate::state::AppState;

/// A path's characters that may stay as they are in a redirect.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

/// Registers the demo's front door.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/load-narrative.html", web::get().to(loader));
}

fn tokens(state: &AppState) -> &[StaticToken] {
    state.config.static_tokens.as_deref().unwrap_or(&[])
}

fn login_answer(state: &AppState, status: StatusCode, problem: Option<&str>) -> HttpResponse {
    let mut users: Vec<DemoUser<'_>> = Vec::new();
    for t in tokens(state) {
        if !users.iter().any(|u| u.user == t.user) {
            users.push(DemoUser {
                user: &t.user,
                roles: &t.roles,
            });
        }
    }
    let nonce = Nonce::new();
    respond(
        status,
        login_policy(&nonce),
        login_page(&users, problem, &nonce),
    )
}

/// `GET /`.
pub async fn login_form(state: web::Data<AppState>) -> HttpResponse {
    login_answer(&state, StatusCode::OK, None)
}

/// The login form: a demo user's name, or a token, and where to go next.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    user: Option<String>,
    token: Option<String>,
    next: Option<String>,
}

/// `POST /login`.
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if !from_this_site(&req) {
        return text(
            StatusCode::FORBIDDEN,
            "Log in from the login page of this site.",
        );
    }
    let form = form.into_inner();
    let chosen = form.user.as_deref().filter(|u| !u.is_empty());
    let token = match chosen {
        Some(user) => tokens(&state)
            .iter()
            .find(|t| t.user == user)
            .map(|t| t.token.expose().to_owned()),
        None => form
            .token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty()),
    };
    let Some(token) = token else {
        return login_answer(
            &state,
            StatusCode::BAD_REQUEST,
            Some("Choose a user or enter a token."),
        );
    };
    let limited_as = limited_as(&req, &state.config.trusted_proxies);
    match state.auth.check(&token, limited_as).await {
        Ok(identity) => {
            tracing::info!(user = %identity.user, "demo login");
            let cookie = Cookie::build(state.config.kbase_cookie.clone(), token)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(state.config.cookie_secure)
                .finish();
            reply::uncached(StatusCode::SEE_OTHER)
                .cookie(cookie)
                .insert_header((header::LOCATION, safe_next(form.next.as_deref())))
                .finish()
        }
        Err(e @ AuthError::Throttled { .. }) => refused(&e),
        Err(_) => login_answer(
            &state,
            StatusCode::FORBIDDEN,
            Some("That token was not accepted."),
        ),
    }
}

/// The loader's query: the narrative path.
#[derive(Debug, Deserialize)]
pub struct Loader {
    n: Option<String>,
}

/// `GET /load-narrative.html?n=<path>`: on to the narrative.
pub async fn loader(query: web::Query<Loader>) -> HttpResponse {
    let path = query.n.as_deref().unwrap_or("").trim_start_matches('/');
    let location = format!("/narrative/{}", utf8_percent_encode(path, PATH));
    reply::uncached(StatusCode::FOUND)
        .insert_header((header::LOCATION, location))
        .finish()
}
