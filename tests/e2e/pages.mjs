// The provider's pages as people see them: desktop and phone widths, light and dark, English and
// Russian, with JavaScript off. Screenshots go to OUT; every page is checked for labelled
// controls, its language and its colour scheme.

import { join } from 'node:path';
import {
  ISSUER,
  OUT,
  assert,
  assertEqual,
  check,
  client,
  telegramLogin,
  approveConsent,
  arriveAt,
} from './lib.mjs';
import { CALLBACK, authorizationRequest } from './openid_client.mjs';

export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};

/** Controls without a name a screen reader can read out. */
export function unlabelledControls(page) {
  return page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
      const label = (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) || el.closest('label');
      if (!(label?.textContent.trim() || el.getAttribute('aria-label'))) bad.push(el.outerHTML);
    }
    for (const el of document.querySelectorAll('button, a')) {
      if (!(el.textContent.trim() || el.getAttribute('aria-label'))) bad.push(el.outerHTML);
    }
    return bad;
  });
}

/**
 * Text whose contrast with the background behind it is below WCAG 2.2's 4.5:1 (criterion 1.4.3,
 * normal-size text). Backgrounds that are not opaque are looked through to the next ancestor.
 */
export function lowContrastText(page) {
  return page.evaluate(() => {
    const rgb = (value) => {
      const m = value.match(/^rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)$/);
      return m ? { c: [m[1], m[2], m[3]].map(Number), a: m[4] === undefined ? 1 : Number(m[4]) } : null;
    };
    const luminance = ([r, g, b]) => {
      const lin = (v) => (v / 255 <= 0.04045 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
      return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const bg = rgb(getComputedStyle(e).backgroundColor);
        if (bg && bg.a === 1) return bg.c;
        if (bg === null || bg.a > 0) return null;
      }
      return [255, 255, 255];
    };
    const bad = [];
    for (const el of document.querySelectorAll('h1, p, li, label, button, a.button')) {
      if (!el.textContent.trim()) continue;
      const fg = rgb(getComputedStyle(el).color);
      const bg = background(el);
      if (!fg || !bg) continue;
      const [hi, lo] = [luminance(fg.c), luminance(bg)].sort((x, y) => y - x);
      const ratio = (hi + 0.05) / (lo + 0.05);
      if (ratio < 4.5) bad.push(`"${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
    }
    return bad;
  });
}

/** Relative luminance of the page background, 0 (black) to 1 (white). */
function backgroundLuminance(page) {
  return page.evaluate(() => {
    const [r, g, b] = getComputedStyle(document.body)
      .backgroundColor.match(/[\d.]+/g)
      .slice(0, 3)
      .map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  });
}

/**
 * One variant (viewport x scheme x language): walks login, emulator, consent, error, device and
 * logout pages with JavaScript off, screenshots each and checks it.
 */
async function variant(browser, config, { device, scheme, lang }, problems) {
  const context = await browser.newContext({
    viewport: VIEWPORTS[device],
    isMobile: device === 'phone',
    hasTouch: device === 'phone',
    colorScheme: scheme,
    locale: lang === 'ru' ? 'ru-RU' : 'en-US',
    javaScriptEnabled: false,
  });
  const page = await context.newPage();
  const shot = async (name) => {
    await page.screenshot({ path: join(OUT, `${name}-${device}-${scheme}-${lang}.png`), fullPage: true });
    const where = `${name} (${device}, ${scheme}, ${lang})`;
    for (const control of await unlabelledControls(page)) problems.push(`${where}: unlabelled ${control}`);
    for (const text of await lowContrastText(page)) problems.push(`${where}: low contrast ${text}`);
    const htmlLang = await page.evaluate(() => document.documentElement.lang);
    if (htmlLang !== lang) problems.push(`${where}: <html lang="${htmlLang}">, expected ${lang}`);
    const heading = await page.locator('h1').first().innerText();
    if (/[а-яё]/i.test(heading) !== (lang === 'ru')) problems.push(`${where}: heading "${heading}" is not in ${lang}`);
    const luminance = await backgroundLuminance(page);
    if (scheme === 'dark' ? luminance > 0.3 : luminance < 0.7) {
      problems.push(`${where}: background luminance ${luminance.toFixed(2)} in ${scheme} mode`);
    }
  };
  const user = { id: 555000000 + Math.floor(Math.random() * 1e6), first_name: 'Анна', last_name: 'Smirnova', username: 'anna_e2e' };
  const { url } = await authorizationRequest(config);
  await page.goto(url.href);
  await telegramLogin(page, user, shot);
  await approveConsent(page, shot);
  // No JavaScript ran, and the browser is back at the app with a code.
  await arriveAt(page, (u) => u.href.startsWith(CALLBACK));
  assert(new URL(page.url()).searchParams.get('code'), 'no code at the app without JavaScript');

  await page.goto(`${ISSUER}/authorize?response_type=code&client_id=no-such-app&scope=openid`);
  await shot('error');
  await page.goto(`${ISSUER}/device`);
  await shot('device');
  // Without an id_token_hint the provider asks before it signs anyone out.
  await page.goto(`${ISSUER}/logout?client_id=${encodeURIComponent(client('node').client_id)}`);
  await shot('logout');
  await context.close();
}

export async function pagesScenario(browser, config) {
  const problems = [];
  let walked = 0;
  await check('pages: login, consent, error, device and logout pages work without JavaScript at desktop and phone width, light and dark, English and Russian (screenshots written)', async () => {
    for (const device of Object.keys(VIEWPORTS)) {
      for (const scheme of ['light', 'dark']) {
        for (const lang of ['en', 'ru']) {
          await variant(browser, config, { device, scheme, lang }, problems);
          walked += 1;
        }
      }
    }
    assertEqual(walked, 8, 'variants walked');
  });
  const kinds = [
    ['every control has a label or text', (p) => p.includes('unlabelled')],
    ['<html lang> and the headings follow Accept-Language (en, ru)', (p) => p.includes('<html lang') || p.includes('heading')],
    ['the background follows the light or dark preference', (p) => p.includes('luminance')],
    ['text contrast is at least 4.5:1 (WCAG 2.2, 1.4.3)', (p) => p.includes('low contrast')],
  ];
  for (const [what, matches] of kinds) {
    await check(`pages: ${what}`, async () => {
      assert(walked > 0, 'no page was walked');
      const found = problems.filter(matches);
      assert(found.length === 0, found.slice(0, 8).join('; '));
    });
  }
}
