// The account page in Chromium: a Telegram login through the ordinary login pages lands on
// /account, which lists the app the user signed in to and this browser; Revoke (a POST form
// with its CSRF token) ends what the app was given at once.

import { join } from 'node:path';
import * as oidc from 'openid-client';
import { ISSUER, OUT, arriveAt, assert, assertEqual, check, telegramLogin } from './lib.mjs';
import { codeFlow } from './openid_client.mjs';

/** Whether `promise` fails (an OAuth error, a 401): what a dead token gets. */
async function refused(promise) {
  try {
    await promise;
    return false;
  } catch {
    return true;
  }
}

export async function accountScenario(browser, config, user) {
  await check('account: /account after a Telegram login lists the app and this browser; Revoke ends the app\'s tokens at once (introspection inactive, userinfo and refresh refused)', async () => {
    // The user signs in to the openid-client app in one browser...
    const appContext = await browser.newContext();
    const { tokens } = await codeFlow(config, await appContext.newPage(), user);
    await appContext.close();

    // ...and opens the account page in another: a Telegram login comes first.
    const context = await browser.newContext({ locale: 'en-US' });
    const page = await context.newPage();
    await page.goto(`${ISSUER}/account`);
    await telegramLogin(page, user);
    await arriveAt(page, `${ISSUER}/account`);
    const entry = page.locator('#apps li.entry', { hasText: 'openid-client app' });
    assertEqual(await entry.count(), 1, 'entries for the openid-client app');
    assert((await page.locator('#sessions').innerText()).includes('this browser'), 'this browser is not listed');
    await page.screenshot({ path: join(OUT, 'account-desktop-light-en.png'), fullPage: true });

    await Promise.all([
      page.waitForURL((u) => u.searchParams.get('done') === 'revoked'),
      entry.locator('button', { hasText: 'Revoke' }).click(),
    ]);
    assert((await page.locator('.notice').innerText()).includes('revoked'), 'no notice after Revoke');
    assertEqual(await page.locator('#apps li.entry', { hasText: 'openid-client app' }).count(), 0, 'entries after Revoke');

    const answer = await oidc.tokenIntrospection(config, tokens.access_token);
    assertEqual(answer.active, false, 'the access token after Revoke');
    assert(await refused(oidc.fetchUserInfo(config, tokens.access_token, String(user.id))), 'userinfo accepted the access token after Revoke');
    assert(await refused(oidc.refreshTokenGrant(config, tokens.refresh_token)), 'the refresh token worked after Revoke');
    await context.close();
  });
}
