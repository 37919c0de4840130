//! One error type for the protocol endpoints, with the codes of RFC 6749 §5.2, RFC 6750 §3.1,
//! RFC 7009, RFC 8628, OpenID Connect Core §3.1.2.6 and CIBA Core 1.0 §13, and one way to turn
//! it into a response.

use http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    InvalidToken,
    InsufficientScope,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    InvalidRequestObject,
    UnsupportedTokenType,
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    InvalidRequestUri,
    PayloadTooLarge,
    /// The request body did not arrive in time (answered 408).
    RequestTimeout,
    /// RFC 7591 §3.2.2: a redirect URI the registration refuses.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: any other client metadata the registration refuses.
    InvalidClientMetadata,
    /// RFC 8693 §2.2.2: the `audience` or `resource` of a token exchange is not served here.
    InvalidTarget,
    /// CIBA Core 1.0 §13: the hint names no user this server can ask.
    UnknownUserId,
    /// CIBA Core 1.0 §13: the binding message is too long or holds what cannot be shown.
    InvalidBindingMessage,
    /// Too many requests from one address or for one client (answered 429 with `Retry-After`;
    /// README, "Rate limits").
    RateLimited,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest | PayloadTooLarge | RequestTimeout => "invalid_request",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            UnsupportedResponseType => "unsupported_response_type",
            InvalidScope => "invalid_scope",
            AccessDenied => "access_denied",
            ServerError => "server_error",
            TemporarilyUnavailable => "temporarily_unavailable",
            InvalidToken => "invalid_token",
            InsufficientScope => "insufficient_scope",
            LoginRequired => "login_required",
            ConsentRequired => "consent_required",
            InteractionRequired => "interaction_required",
            RequestNotSupported => "request_not_supported",
            RequestUriNotSupported => "request_uri_not_supported",
            InvalidRequestObject => "invalid_request_object",
            UnsupportedTokenType => "unsupported_token_type",
            AuthorizationPending => "authorization_pending",
            SlowDown => "slow_down",
            ExpiredToken => "expired_token",
            InvalidRequestUri => "invalid_request_uri",
            InvalidRedirectUri => "invalid_redirect_uri",
            InvalidClientMetadata => "invalid_client_metadata",
            InvalidTarget => "invalid_target",
            UnknownUserId => "unknown_user_id",
            InvalidBindingMessage => "invalid_binding_message",
            RateLimited => "rate_limited",
        }
    }

    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidClient | InvalidToken => StatusCode::UNAUTHORIZED,
            InsufficientScope => StatusCode::FORBIDDEN,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// How the error is reported: the token endpoint's JSON body, or a protected resource's
/// `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Json,
    Bearer,
    /// A request with no credentials at all gets a bare challenge (RFC 6750 §3.1).
    BearerNoCredentials,
}

#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    pub style: Style,
    /// The client tried HTTP Basic: a 401 must then challenge with Basic (RFC 6749 §5.2).
    pub basic_challenge: bool,
}

pub type OAuthResult<T> = Result<T, OAuthError>;

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            style: Style::Json,
            basic_challenge: false,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, d).bearer()
    }
    /// An internal failure: the details go to the log, never to the response.
    pub fn server_error(internal: impl std::fmt::Display) -> Self {
        tracing::error!(error = %internal, "internal error");
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
    pub fn bearer(mut self) -> Self {
        if self.style != Style::BearerNoCredentials {
            self.style = Style::Bearer;
        }
        self
    }
    pub fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}
