// The browser scenarios, in one Chromium: Apache mod_auth_openidc, openid-client 6, single
// sign-on and back-channel logout between them, the account page revoking an app, a key
// rotation between two logins, and the pages at two widths, two colour schemes and two
// languages; the login page with telegram.org's widget blocked and with JavaScript off (a second
// provider outside dev mode). Run by run.sh.

import { join } from 'node:path';
import { accountScenario } from './account.mjs';
import { adminScenario } from './admin.mjs';
import { APACHE_PROTECTED, apacheAfterRotation, apacheInfo, apacheScenario, hasApacheSession } from './apache.mjs';
import {
  ISSUER,
  OUT,
  approveConsentIfAsked,
  arriveAt,
  assert,
  assertEqual,
  check,
  failures,
  launchBrowser,
  rotateKey,
} from './lib.mjs';
import {
  configure,
  deviceFlow,
  jwksAge,
  openidClientAfterRotation,
  openidClientLogout,
  openidClientScenario,
  startAppServer,
} from './openid_client.mjs';
import { fallbackScenario } from './fallback.mjs';
import { pagesScenario } from './pages.mjs';

// Telegram users as the emulator signs them; Cyrillic names travel through the widget's HMAC,
// the ID token and userinfo unchanged.
const IVAN = { id: 777000111, first_name: 'Ivan', last_name: 'Petrov', username: 'ivan_e2e' };
const MARIA = { id: 777000222, first_name: 'Мария', last_name: 'Иванова', username: 'maria_e2e' };
const OLGA = { id: 777000333, first_name: 'Olga', last_name: 'Sokolova', username: 'olga_e2e' };

const appServer = await startAppServer();
const browser = await launchBrowser();
try {
  let config;
  await check('openid-client: discovery of the provider', async () => {
    config = await configure();
    assertEqual(config.serverMetadata().issuer, ISSUER, 'issuer');
  });

  await apacheScenario(browser, IVAN);

  await fallbackScenario(browser);

  if (config) {
    const { page, tokens } = await openidClientScenario(browser, config, MARIA);

    // Same browser, already signed in at the provider: Apache needs only consent, no login.
    let ssoPage;
    await check('apache: single sign-on after the openid-client login needs no second Telegram login', async () => {
      await page.goto(APACHE_PROTECTED);
      assert(!page.url().startsWith(`${ISSUER}/login`), 'the login page was shown again');
      await approveConsentIfAsked(page);
      await arriveAt(page, APACHE_PROTECTED);
      const info = await apacheInfo(page);
      assertEqual(info.id_token.sub, String(MARIA.id), 'sub at Apache');
      assert(await hasApacheSession(page), 'no session at Apache after single sign-on');
      ssoPage = page;
    });

    if (tokens && (await openidClientLogout(config, page, tokens.id_token)) && ssoPage) {
      await check('apache: back-channel logout from the provider ends the Apache session too', async () => {
        // The provider notifies Apache in the background after the logout response.
        const deadline = Date.now() + 10_000;
        while (await hasApacheSession(ssoPage)) {
          if (Date.now() > deadline) throw new Error('Apache still has a session 10 s after the logout');
          await new Promise((r) => setTimeout(r, 200));
        }
      });
    }
    await page.context().close();

    await deviceFlow(browser, config, MARIA, async (p, name) => {
      await p.screenshot({ path: join(OUT, `${name}-desktop-light-en.png`), fullPage: true });
    });

    await accountScenario(browser, config, OLGA);

    await pagesScenario(browser, config);

    await adminScenario(browser, OLGA);

    let newKid;
    await check('keys: `keys rotate` makes a new key that the running server publishes in its JWKS', async () => {
      newKid = await rotateKey();
    });
    if (newKid) {
      await apacheAfterRotation(browser, IVAN, newKid);
      // openid-client fetches the JWKS again for an unknown kid only when its copy is at least
      // 60 s old (oauth4webapi's guard against key-miss floods): an app that fetched it less
      // than a minute before the rotation rejects new tokens until then.
      const wait = 61 - jwksAge(config);
      if (wait > 0) {
        console.log(`note: waiting ${wait} s until openid-client's JWKS copy is 60 s old`);
        await new Promise((r) => setTimeout(r, wait * 1000));
      }
      await openidClientAfterRotation(browser, config, MARIA, newKid);
    }
  }
} finally {
  await browser.close();
  appServer.close();
}
process.exit(failures() > 0 ? 1 : 0);
