// The admin desk in Chromium, as an admin uses it: a Telegram login through the ordinary login
// pages (the emulator), then register an app (its secret shown once), block and unblock a user,
// and read the audit log; at desktop width in English and at phone width in Russian, with
// screenshots of each page in OUT. Every page is checked for labelled controls, readable
// contrast, and (on the phone) no sideways scrolling.

import { join } from 'node:path';
import { ISSUER, OUT, arriveAt, assert, assertEqual, check, telegramLogin } from './lib.mjs';
import { VIEWPORTS, lowContrastText, unlabelledControls } from './pages.mjs';

/** The admin named with `dev --admin` in run.sh. */
export const ADMIN = { id: 777000444, first_name: 'Anna', last_name: 'Admin', username: 'anna_admin_e2e' };

async function checkPage(page, where, problems) {
  for (const control of await unlabelledControls(page)) problems.push(`${where}: unlabelled ${control}`);
  for (const text of await lowContrastText(page)) problems.push(`${where}: low contrast ${text}`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) problems.push(`${where}: ${overflow}px wider than the screen`);
}

async function signIn(page) {
  await page.goto(`${ISSUER}/admin`);
  await telegramLogin(page, ADMIN);
  await arriveAt(page, `${ISSUER}/admin/apps`);
}

export async function adminScenario(browser, user) {
  await check('admin desk (desktop, English): an admin signs in with Telegram, registers an app (secret shown once), blocks and unblocks a user, and finds both in the audit log', async () => {
    const context = await browser.newContext({ viewport: VIEWPORTS.desktop, locale: 'en-US', colorScheme: 'light' });
    const page = await context.newPage();
    const problems = [];
    const shot = async (name) => {
      await checkPage(page, name, problems);
      await page.screenshot({ path: join(OUT, `admin-${name}-desktop-light-en.png`), fullPage: true });
    };
    await signIn(page);
    assert((await page.locator('#admin-name').innerText()).includes('Anna'), 'the admin is not named in the bar');
    await shot('apps');

    await page.locator('a', { hasText: 'New app' }).click();
    await arriveAt(page, `${ISSUER}/admin/apps/new`);
    await page.fill('#name', 'E2E CRM');
    await page.fill('#redirect_uris', 'https://crm.e2e.example/callback');
    await page.fill('#policy', '[policy]\nids = [777000111, 777000222]');
    await shot('new-app');
    await Promise.all([page.waitForLoadState('load'), page.locator('#new-app button[type=submit]').click()]);
    const secret = (await page.locator('#client-secret pre').innerText()).trim();
    assert(secret.startsWith('tgcs_'), `no secret shown: ${secret}`);
    await shot('app-created');
    // Opened again, the app's page no longer shows the secret.
    const appUrl = new URL(await page.locator('#edit-app').getAttribute('action'), ISSUER).href;
    await page.goto(appUrl);
    assertEqual(await page.locator('#client-secret').count(), 0, 'secret boxes after a reload');
    assertEqual(await page.locator('#name').inputValue(), 'E2E CRM', 'the name in the edit form');

    await page.goto(`${ISSUER}/admin/users`);
    await page.fill('#q', String(user.id));
    await Promise.all([page.waitForURL(/q=/), page.locator('form.search button').click()]);
    await Promise.all([page.waitForURL(`${ISSUER}/admin/users/${user.id}`), page.locator(`a[href$="/admin/users/${user.id}"]`).first().click()]);
    await Promise.all([page.waitForURL(/done=blocked/), page.locator('#block button').click()]);
    assert((await page.locator('.notice').innerText()).includes('blocked'), 'no notice after Block');
    await shot('user-blocked');
    await Promise.all([page.waitForURL(/done=unblocked/), page.locator('#unblock button').click()]);

    await page.goto(`${ISSUER}/admin/audit?user=${user.id}`);
    const rows = await page.locator('#audit tbody tr').allInnerTexts();
    const unblocked = rows.findIndex((r) => r.includes('admin.user.unblocked'));
    const blocked = rows.findIndex((r) => r.includes('admin.user.blocked'));
    assert(unblocked >= 0 && blocked > unblocked, `the audit does not list the unblock before the block: ${rows.slice(0, 4).join(' | ')}`);
    assert(rows[blocked].includes(`admin:${ADMIN.id}`), 'the block is not attributed to the admin');
    await shot('audit');

    await page.goto(`${ISSUER}/admin/keys`);
    assert((await page.locator('#keys tbody tr').count()) >= 1, 'no signing key listed');
    await shot('keys');
    assertEqual(problems.join('\n'), '', 'problems on the desk pages');
    await context.close();
  });

  await check('admin desk (phone, Russian): the pages fit a phone screen and speak Russian', async () => {
    const context = await browser.newContext({ viewport: VIEWPORTS.phone, isMobile: true, hasTouch: true, locale: 'ru-RU', colorScheme: 'dark' });
    const page = await context.newPage();
    const problems = [];
    await signIn(page);
    assert((await page.locator('nav').innerText()).includes('Пользователи'), 'the bar is not in Russian');
    for (const [name, path] of [['apps', '/admin/apps'], ['users', '/admin/users'], ['audit', '/admin/audit'], ['keys', '/admin/keys']]) {
      await page.goto(`${ISSUER}${path}`);
      await checkPage(page, name, problems);
      await page.screenshot({ path: join(OUT, `admin-${name}-phone-dark-ru.png`), fullPage: true });
    }
    assertEqual(problems.join('\n'), '', 'problems on the desk pages at phone width');
    await context.close();
  });
}
