// openid-client 6 as the app: discovery, code + PKCE + state + nonce through the browser, its own
// ID-token validation (signature against the JWKS, iss, aud, nonce), userinfo, refresh,
// introspection, revocation, the device flow and RP-initiated logout.

import { createServer } from 'node:http';
import * as oidc from 'openid-client';
import {
  ISSUER,
  approveConsentIfAsked,
  arriveAt,
  assert,
  assertEqual,
  check,
  client,
  env,
  jwtHeader,
  telegramLogin,
} from './lib.mjs';

const NODE_URL = env('NODE_URL');
export const CALLBACK = `${NODE_URL}/cb`;
const LOGGED_OUT = `${NODE_URL}/loggedout`;
const SCOPE = 'openid profile telegram offline_access';

/** The app's own pages: the redirect URI and where logout returns. */
export function startAppServer() {
  const { hostname, port } = new URL(NODE_URL);
  const server = createServer((req, res) => {
    const path = new URL(req.url, NODE_URL).pathname;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    if (path === '/cb') res.end('<!doctype html><title>App</title><h1>The app received the callback</h1>');
    else if (path === '/loggedout') res.end('<!doctype html><title>App</title><h1>Signed out of the app</h1>');
    else {
      res.statusCode = 404;
      res.end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(port), hostname, () => resolve(server));
  });
}

/** The app's view of the provider: discovery, and ID-token signatures checked on every grant. */
export async function configure() {
  const { client_id: id, client_secret: secret } = client('node');
  const config = await oidc.discovery(new URL(ISSUER), id, secret, oidc.ClientSecretBasic(secret), {
    // Plain http, allowed here because everything is on loopback.
    execute: [oidc.allowInsecureRequests],
  });
  oidc.enableNonRepudiationChecks(config);
  return config;
}

/** A fresh authorization request: PKCE S256, state and nonce. */
export async function authorizationRequest(config, extra = {}) {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope: SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, codeVerifier, state, nonce };
}

/** Signs in through the browser and redeems the code; returns the tokens and the callback URL. */
export async function codeFlow(config, page, user) {
  const request = await authorizationRequest(config);
  await page.goto(request.url.href);
  if (page.url().startsWith(`${ISSUER}/login`)) await telegramLogin(page, user);
  await approveConsentIfAsked(page);
  await arriveAt(page, (url) => url.href.startsWith(CALLBACK));
  const callback = new URL(page.url());
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: request.codeVerifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  return { tokens, callback, request };
}

function checkIdToken(claims, user) {
  assertEqual(claims.iss, ISSUER, 'iss');
  assertEqual(claims.aud, client('node').client_id, 'aud');
  assertEqual(claims.sub, String(user.id), 'sub');
  assertEqual(claims.name, [user.first_name, user.last_name].filter(Boolean).join(' '), 'name');
  assertEqual(claims.preferred_username, user.username, 'preferred_username');
}

async function expectOAuthError(promise, code, what) {
  try {
    await promise;
  } catch (e) {
    const got = e?.error ?? e?.cause?.error ?? e?.code;
    assertEqual(got, code, `${what}: error`);
    return;
  }
  throw new Error(`${what} succeeded; expected ${code}`);
}

export async function openidClientScenario(browser, config, user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  let flow;
  await check('openid-client: discovery, code + PKCE + state + nonce in the browser; the library validates the ID token (signature, iss, aud, nonce)', async () => {
    flow = await codeFlow(config, page, user);
    assertEqual(flow.callback.searchParams.get('iss'), ISSUER, 'iss in the authorization response (RFC 9207)');
    checkIdToken(flow.tokens.claims(), user);
    assert(flow.tokens.refresh_token, 'no refresh token for offline_access');
  });
  if (!flow) return { context, page };
  const { tokens } = flow;

  await check('openid-client: userinfo answers for the access token with the same subject', async () => {
    const info = await oidc.fetchUserInfo(config, tokens.access_token, String(user.id));
    assertEqual(info.telegram_id, user.id, 'telegram_id');
    assertEqual(info.given_name, user.first_name, 'given_name');
  });

  let refreshed;
  await check('openid-client: refresh rotates the refresh token and the new ID token validates', async () => {
    refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
    assert(refreshed.access_token !== tokens.access_token, 'the access token did not change');
    assert(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'the refresh token did not rotate');
    if (refreshed.id_token) assertEqual(refreshed.claims().sub, String(user.id), 'sub after refresh');
  });
  if (!refreshed) return { context, page, tokens };

  await check('openid-client: introspection says the access token is active, for whom and for which app', async () => {
    const answer = await oidc.tokenIntrospection(config, refreshed.access_token);
    assertEqual(answer.active, true, 'active');
    assertEqual(answer.sub, String(user.id), 'sub');
    assertEqual(answer.client_id, client('node').client_id, 'client_id');
  });

  await check('openid-client: a revoked refresh token is inactive and cannot be used', async () => {
    await oidc.tokenRevocation(config, refreshed.refresh_token);
    const answer = await oidc.tokenIntrospection(config, refreshed.refresh_token);
    assertEqual(answer.active, false, 'active after revocation');
    await expectOAuthError(oidc.refreshTokenGrant(config, refreshed.refresh_token), 'invalid_grant', 'refresh after revocation');
  });

  await check('openid-client: a revoked access token is inactive and userinfo refuses it', async () => {
    await oidc.tokenRevocation(config, refreshed.access_token);
    const answer = await oidc.tokenIntrospection(config, refreshed.access_token);
    assertEqual(answer.active, false, 'active after revocation');
    let refused = false;
    try {
      await oidc.fetchUserInfo(config, refreshed.access_token, String(user.id));
    } catch (e) {
      refused = e?.status === 401 || e?.cause?.status === 401 || e?.code === 'OAUTH_WWW_AUTHENTICATE_CHALLENGE';
      if (!refused) throw e;
    }
    assert(refused, 'userinfo accepted a revoked access token');
  });
  await check('openid-client: a replayed authorization code is refused, and what it first issued stops working', async () => {
    await expectOAuthError(
      oidc.authorizationCodeGrant(config, flow.callback, {
        pkceCodeVerifier: flow.request.codeVerifier,
        expectedState: flow.request.state,
        expectedNonce: flow.request.nonce,
      }),
      'invalid_grant',
      'second redemption',
    );
    // RFC 6749 §4.1.2: the provider should revoke the tokens issued for a code used twice.
    const answer = await oidc.tokenIntrospection(config, tokens.access_token);
    assertEqual(answer.active, false, 'the first access token after the replay');
  });
  return { context, page, tokens };
}

/** RP-initiated logout from the app: the browser comes back to the registered page with state. */
export async function openidClientLogout(config, page, idToken) {
  let ok = false;
  await check('openid-client: RP-initiated logout returns to the registered post_logout_redirect_uri with state', async () => {
    const state = oidc.randomState();
    const url = oidc.buildEndSessionUrl(config, {
      id_token_hint: idToken,
      post_logout_redirect_uri: LOGGED_OUT,
      state,
    });
    await page.goto(url.href);
    await arriveAt(page, (u) => u.href.startsWith(LOGGED_OUT));
    assertEqual(new URL(page.url()).searchParams.get('state'), state, 'state');
    ok = true;
  });
  return ok;
}

/** The device flow (RFC 8628): the app polls while a person approves on the /device page. */
export async function deviceFlow(browser, config, user, shots) {
  await check('openid-client: device flow approved on the /device page yields validated tokens', async () => {
    const start = await oidc.initiateDeviceAuthorization(config, { scope: 'openid profile' });
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(start.verification_uri);
    await page.fill('#user_code', start.user_code);
    await Promise.all([page.waitForURL((u) => u.pathname !== '/device'), page.locator('form button[type=submit]').click()]);
    if (page.url().startsWith(`${ISSUER}/login`)) await telegramLogin(page, user);
    await arriveAt(page, (u) => u.href.startsWith(`${ISSUER}/device/confirm`));
    if (shots) await shots(page, 'device-confirm');
    await page.locator('button[name=decision][value=approve]').click();
    await page.waitForLoadState();
    const tokens = await oidc.pollDeviceAuthorizationGrant(config, start, undefined, {
      signal: AbortSignal.timeout(30_000),
    });
    assertEqual(tokens.claims().sub, String(user.id), 'sub');
    await context.close();
  });
}

/** After a key rotation: a new login's ID token carries the new kid and still validates. */
export async function openidClientAfterRotation(browser, config, user, newKid) {
  await check('openid-client: after a key rotation it fetches the new key from the JWKS and validates the new ID token', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const { tokens } = await codeFlow(config, page, user);
    assertEqual(jwtHeader(tokens.id_token).kid, newKid, 'kid of the new ID token');
    checkIdToken(tokens.claims(), user);
    await context.close();
  });
}

/** Seconds since openid-client last downloaded the JWKS for this configuration. */
export function jwksAge(config) {
  const cache = oidc.getJwksCache(config);
  return cache?.uat ? Math.floor(Date.now() / 1000) - cache.uat : Infinity;
}
