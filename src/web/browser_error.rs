//! How a browser is told that something went wrong, written once: a page with the status the
//! problem calls for (and `Retry-After` when the service is briefly unavailable), or, once the
//! app's redirect URI is verified, a report to the app (RFC 6749 §4.1.2.1).
//!
//! A handler's code yields a [`Problem`] (with `?` from store errors, the gate's refusals and
//! the protocol's `AuthorizeError`); [`Problem::at`] adds what the response needs of the
//! server (the issuer's path for the page, the issuer for RFC 9207's `iss`), and the
//! [`BrowserError`] it makes is the one `IntoResponse`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorCode, OAuthError};
use crate::flow::login::Refused;
use crate::oidc::authorize::{AuthorizeError, ErrorRedirect};
use crate::state::App;
use crate::store::StoreError;
use crate::web::{authorize, pages};

/// The title of a page about a request that cannot be used.
pub const UNUSABLE_REQUEST: &str = "This sign-in request cannot be used";

/// What went wrong, before it is shown.
#[derive(Debug)]
pub enum Problem {
    /// An error page: there is no app to report to, or its redirect URI is not trusted.
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
    /// A plain message page, without the error page's advice to go back to the app (the
    /// sign-out pages, where there may be no app).
    Notice {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
    /// Reported to the app at its verified redirect URI, with `state` and `iss`.
    ToApp(ErrorRedirect),
}

impl Problem {
    pub fn page(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Problem::Page {
            status,
            title,
            message: message.into(),
        }
    }

    /// A 400 page about an authorization request that cannot be used.
    pub fn unusable(message: impl Into<String>) -> Self {
        Problem::page(StatusCode::BAD_REQUEST, UNUSABLE_REQUEST, message)
    }

    /// The response to this problem on `app`.
    pub fn at(self, app: &App) -> BrowserError {
        self.at_site(app.base_path(), &app.config.issuer)
    }

    /// The response to this problem under the issuer's path `base`, for the issuer `issuer`.
    pub fn at_site(self, base: &str, issuer: &str) -> BrowserError {
        BrowserError {
            problem: self,
            base: base.to_owned(),
            issuer: issuer.to_owned(),
        }
    }
}

impl From<AuthorizeError> for Problem {
    fn from(e: AuthorizeError) -> Self {
        match e {
            AuthorizeError::Unusable(message) => Problem::unusable(message),
            AuthorizeError::ToApp(redirect) => Problem::ToApp(redirect),
        }
    }
}

impl From<ErrorRedirect> for Problem {
    fn from(redirect: ErrorRedirect) -> Self {
        Problem::ToApp(redirect)
    }
}

/// A failure of the server itself: 503 when it should pass soon, 500 otherwise.
impl From<OAuthError> for Problem {
    fn from(e: OAuthError) -> Self {
        let status = if e.code == ErrorCode::TemporarilyUnavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Problem::page(status, "Something went wrong", e.description)
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        OAuthError::from(e).into()
    }
}

/// The gate's refusals, as the person who tried to log in reads them.
impl From<Refused> for Problem {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Store(e) => e.into(),
            Refused::AlreadyUsed => Problem::page(
                StatusCode::BAD_REQUEST,
                "Telegram login refused",
                "This Telegram login was already used. Please log in again.",
            ),
            Refused::NotAdmitted => Problem::page(
                StatusCode::FORBIDDEN,
                "You cannot sign in to this app",
                "The app's administrator has not let this Telegram account in.",
            ),
            Refused::Unavailable => Problem::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Telegram could not be asked",
                "Telegram could not be asked whether this account may sign in. Please try again in a few minutes.",
            ),
            Refused::OtherAccount => Problem::page(
                StatusCode::FORBIDDEN,
                "Confirmed from another Telegram account",
                "The login was confirmed in the chat of another Telegram account than the one you logged in with. Go back to the app and sign in again.",
            ),
        }
    }
}

/// A [`Problem`] with what its response needs of the server.
#[derive(Debug)]
pub struct BrowserError {
    problem: Problem,
    /// The issuer's path ("" at the root), under which the page's stylesheet lives.
    base: String,
    /// Sent as `iss` with a report to the app (RFC 9207).
    issuer: String,
}

impl IntoResponse for BrowserError {
    fn into_response(self) -> Response {
        match self.problem {
            Problem::Page {
                status,
                title,
                message,
            } => {
                let mut page = pages::error_page_at(&self.base, status, title, &message);
                // A browser or a person retrying an outage is told when (RFC 9110 §10.2.3).
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    page.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                }
                page
            }
            Problem::Notice {
                status,
                title,
                message,
            } => pages::render(
                status,
                &pages::MessagePage {
                    base: &self.base,
                    title,
                    message: &message,
                },
                &pages::strict_csp(&[]),
            ),
            Problem::ToApp(redirect) => {
                let mut params = vec![("error", redirect.code.as_str().to_owned())];
                if !redirect.description.is_empty() {
                    params.push(("error_description", redirect.description));
                }
                authorize::respond_to_client(
                    &self.base,
                    &self.issuer,
                    &redirect.redirect_uri,
                    redirect.state.as_deref(),
                    params,
                    redirect.form_post,
                )
            }
        }
    }
}
