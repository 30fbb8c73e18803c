//! SaslHandshake (v0-1) and SaslAuthenticate (v0-2): a connection of a SASL listener picks
//! a mechanism, then exchanges tokens until it is authenticated (its session's principal is
//! set) or refused. After SaslHandshake v0 the tokens come as bare frames (`raw_token`).
//!
//! A refused authentication is answered SASL_AUTHENTICATION_FAILED after
//! `--auth-failure-delay-ms` and the connection is closed. KIP-368: with
//! `--connections-max-reauth-ms` the session lifetime is given to the client, which must
//! authenticate again (same mechanism, same principal) before it runs out.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerCtx, Reply, error, now};
use crate::security::Session;
use crate::security::sasl::{SaslExchange, SaslMechanism, Step};

pub(super) fn handshake(
    ctx: &Arc<BrokerCtx>,
    req: SaslHandshakeRequest,
    version: i16,
    session: &mut Session,
) -> Reply {
    let enabled = &ctx.config.security.sasl_mechanisms;
    let mechanisms = enabled
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect();
    let response = |code: Option<ResponseError>| {
        ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(code.map_or(error::NONE, error::code))
                .with_mechanisms(mechanisms),
        )
    };
    if !session.listener.uses_sasl() || session.sasl.exchange.is_some() {
        // Not a SASL listener, or a handshake in the middle of an exchange.
        tracing::debug!(listener = %session.listener, "SaslHandshake out of place");
        session.close_after_response = session.listener.uses_sasl();
        return now(response(Some(ResponseError::IllegalSaslState)));
    }
    let requested =
        SaslMechanism::from_name(req.mechanism.as_str()).filter(|m| enabled.contains(m));
    let Some(mechanism) = requested else {
        tracing::info!(mechanism = %req.mechanism.as_str(), "refused an unsupported SASL mechanism");
        session.close_after_response = true;
        return now(response(Some(ResponseError::UnsupportedSaslMechanism)));
    };
    if let Some(previous) = session.sasl.authenticated
        && previous != mechanism
    {
        tracing::info!(%previous, %mechanism, "re-authentication with another mechanism refused");
        session.close_after_response = true;
        return now(response(Some(ResponseError::IllegalSaslState)));
    }
    session.sasl.exchange = Some(SaslExchange::new(mechanism));
    session.sasl.raw_tokens = version == 0;
    now(response(None))
}

/// The outcome of one token, common to SaslAuthenticate and bare tokens.
enum TokenOutcome {
    Continue(Vec<u8>),
    Authenticated { token: Vec<u8>, lifetime_ms: i64 },
    Failed { message: String },
}

async fn process_token(ctx: &Arc<BrokerCtx>, session: &mut Session, token: &[u8]) -> TokenOutcome {
    let Some(exchange) = session.sasl.exchange.as_mut() else {
        return TokenOutcome::Failed {
            message: "SaslAuthenticate before SaslHandshake".to_string(),
        };
    };
    let mechanism = exchange.mechanism();
    match exchange.step(ctx.meta.as_ref(), token).await {
        Step::Continue(challenge) => TokenOutcome::Continue(challenge),
        Step::Done { principal, token } => {
            session.sasl.exchange = None;
            let reauthenticating = session.sasl.authenticated.is_some();
            if reauthenticating && principal != session.principal {
                tracing::info!(
                    principal = %principal,
                    previous = %session.principal,
                    "re-authentication as another principal refused"
                );
                ctx.metrics.security.authentication(mechanism, false);
                return TokenOutcome::Failed {
                    message: "Cannot change principals during re-authentication".to_string(),
                };
            }
            let reauth = ctx.config.security.connections_max_reauth;
            session.sasl.expires_at = reauth.map(|d| tokio::time::Instant::now() + d);
            session.sasl.authenticated = Some(mechanism);
            if reauthenticating {
                tracing::debug!(%principal, %mechanism, "re-authenticated");
            } else {
                tracing::debug!(%principal, %mechanism, "authenticated");
            }
            session.principal = principal;
            ctx.metrics.security.authentication(mechanism, true);
            TokenOutcome::Authenticated {
                token,
                lifetime_ms: reauth
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    .unwrap_or(0),
            }
        }
        Step::Failed(failure) => {
            session.sasl.exchange = None;
            // The reason names the user but holds no secret; the client learns only that it failed.
            tracing::info!(peer = %session.peer, %mechanism, "authentication failed: {failure}");
            ctx.metrics.security.authentication(mechanism, false);
            TokenOutcome::Failed {
                message: failure.client_message(mechanism),
            }
        }
    }
}

pub(super) async fn authenticate(
    ctx: &Arc<BrokerCtx>,
    req: SaslAuthenticateRequest,
    version: i16,
    session: &mut Session,
) -> Reply {
    let failed = |code: ResponseError, message: String| {
        ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(error::code(code))
                .with_error_message(Some(StrBytes::from_string(message))),
        )
    };
    if !session.listener.uses_sasl() || session.sasl.exchange.is_none() || session.sasl.raw_tokens {
        session.close_after_response = session.listener.uses_sasl();
        return now(failed(
            ResponseError::IllegalSaslState,
            "SaslAuthenticate without a SaslHandshake v1 before it".to_string(),
        ));
    }
    match process_token(ctx, session, &req.auth_bytes).await {
        TokenOutcome::Continue(challenge) => now(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(challenge)),
        )),
        TokenOutcome::Authenticated { token, lifetime_ms } => {
            let response = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token));
            let response = if version >= 1 {
                response.with_session_lifetime_ms(lifetime_ms)
            } else {
                response
            };
            now(ResponseKind::SaslAuthenticate(response))
        }
        TokenOutcome::Failed { message } => {
            session.close_after_response = true;
            let delay = ctx.config.security.auth_failure_delay;
            let response = failed(ResponseError::SaslAuthenticationFailed, message);
            Reply::Later(
                async move {
                    tokio::time::sleep(delay).await;
                    Some(response)
                }
                .boxed(),
            )
        }
    }
}

/// A bare token after SaslHandshake v0: the answer is a bare length-prefixed token, `None`
/// when the exchange failed (the connection closes after the failure delay: v0 has no way to
/// carry an error).
pub(super) async fn raw_token(
    ctx: &Arc<BrokerCtx>,
    session: &mut Session,
    token: Bytes,
) -> futures::future::BoxFuture<'static, Option<BytesMut>> {
    let framed = |token: Vec<u8>| {
        let mut out = BytesMut::with_capacity(4 + token.len());
        out.put_u32(u32::try_from(token.len()).expect("tokens are small"));
        out.put_slice(&token);
        out
    };
    match process_token(ctx, session, &token).await {
        TokenOutcome::Continue(challenge) => {
            futures::future::ready(Some(framed(challenge))).boxed()
        }
        TokenOutcome::Authenticated { token, .. } => {
            session.sasl.raw_tokens = false;
            futures::future::ready(Some(framed(token))).boxed()
        }
        TokenOutcome::Failed { .. } => {
            session.close_after_response = true;
            let delay = ctx.config.security.auth_failure_delay;
            async move {
                tokio::time::sleep(delay).await;
                None
            }
            .boxed()
        }
    }
}
