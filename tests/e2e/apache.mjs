// Apache httpd + mod_auth_openidc protecting /protected/, driven by headless Chromium.

import { readFileSync } from 'node:fs';
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
  requestsToIssuer,
  telegramLogin,
} from './lib.mjs';

const APACHE_URL = env('APACHE_URL');
const PROTECTED = `${APACHE_URL}/protected/`;
const REDIRECT_URI = `${APACHE_URL}/protected/redirect_uri`;
const LOGGED_OUT = `${APACHE_URL}/loggedout.html`;

/** What mod_auth_openidc holds for this browser's session (its info hook). */
export async function apacheInfo(page) {
  const response = await page.request.get(`${REDIRECT_URI}?info=json`, { maxRedirects: 0 });
  assertEqual(response.status(), 200, 'info hook status');
  return response.json();
}

function checkClaims(info, user) {
  const expectedName = [user.first_name, user.last_name].filter(Boolean).join(' ');
  const { id_token: idToken, userinfo } = info;
  assert(idToken && userinfo, `the info hook lacks id_token or userinfo: ${JSON.stringify(info)}`);
  assertEqual(idToken.iss, ISSUER, 'id_token.iss');
  assertEqual(idToken.aud, client('apache').client_id, 'id_token.aud');
  assertEqual(idToken.sub, String(user.id), 'id_token.sub');
  assertEqual(idToken.name, expectedName, 'id_token.name');
  assertEqual(userinfo.sub, String(user.id), 'userinfo.sub');
  assertEqual(userinfo.name, expectedName, 'userinfo.name');
  assertEqual(userinfo.given_name, user.first_name, 'userinfo.given_name');
  assertEqual(userinfo.preferred_username, user.username, 'userinfo.preferred_username');
  assertEqual(userinfo.telegram_id, user.id, 'userinfo.telegram_id');
}

/** Opens the protected page in a new context and signs in; returns the page on it. */
export async function loginToApache(browser, user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(PROTECTED);
  await telegramLogin(page, user);
  await approveConsentIfAsked(page);
  await arriveAt(page, PROTECTED);
  return page;
}

export async function apacheScenario(browser, user) {
  let page;
  await check('apache: the protected page sends the browser through the login and consent pages and back', async () => {
    page = await loginToApache(browser, user);
    const text = await page.locator('#user').innerText();
    const name = [user.first_name, user.last_name].join(' ');
    assert(text.includes(name) && text.includes(String(user.id)), `the protected page says: ${text}`);
  });
  if (!page) return;

  await check('apache: the claims mod_auth_openidc received (ID token and userinfo) are the Telegram user typed in', async () => {
    const info = await apacheInfo(page);
    checkClaims(info, user);
  });

  await check('apache: a second visit is served from the session without a request to the provider', async () => {
    const seen = await requestsToIssuer(page.context(), async () => {
      await page.goto(PROTECTED);
    });
    assertEqual(page.url(), PROTECTED, 'page after the second visit');
    assertEqual(seen.length, 0, `requests to the provider (${seen.join(', ')})`);
  });

  await check('apache: RP-initiated logout ends the session at Apache and at the provider', async () => {
    const seen = await requestsToIssuer(page.context(), async () => {
      await page.goto(`${REDIRECT_URI}?logout=${encodeURIComponent(LOGGED_OUT)}`);
      await arriveAt(page, LOGGED_OUT);
    });
    assert(
      seen.some((u) => u.startsWith(`${ISSUER}/logout?`)),
      `Apache did not send the browser to end_session_endpoint: ${seen.join(', ')}`,
    );
    await page.goto(PROTECTED);
    await arriveAt(page, (url) => url.href.startsWith(`${ISSUER}/login`));
  });
  await page.context().close();
}

/** After a key rotation: a new login, an ID token signed by the new key, and Apache accepts it. */
export async function apacheAfterRotation(browser, user, newKid) {
  await check('apache: after a key rotation a new login is signed with the new key and accepted', async () => {
    const logBefore = readFileSync(env('APACHE_ERROR_LOG'), 'utf8').length;
    const page = await loginToApache(browser, user);
    const info = await apacheInfo(page);
    checkClaims(info, user);
    assertEqual(jwtHeader(info.access_token).kid, newKid, 'kid of the new access token');
    // Apache's own log says which key it verified the ID token with.
    const log = readFileSync(env('APACHE_ERROR_LOG'), 'utf8').slice(logBefore);
    assert(log.includes(`found matching kid: "${newKid}"`), 'mod_auth_openidc did not log a verification with the new kid');
    await page.context().close();
  });
}

/** Whether this context still has a session at Apache (no redirect to the provider). */
export async function hasApacheSession(page) {
  const response = await page.request.get(PROTECTED, { maxRedirects: 0 });
  return response.status() === 200;
}

export { PROTECTED as APACHE_PROTECTED };
