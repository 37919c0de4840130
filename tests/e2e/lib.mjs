// Shared pieces of the browser scenarios: results, the browser, the Telegram emulator, the CLI.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run tests/e2e/run.sh`);
  return value;
};

export const ISSUER = env('ISSUER');
export const OUT = env('OUT');

export function client(name) {
  return JSON.parse(readFileSync(join(env('E2E_CLIENTS'), `${name}.json`), 'utf8'));
}

let failed = 0;

/** Runs one named check; prints `PASS name` or `FAIL name: why` with the error's own details. */
export async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS ${name}`);
    return true;
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${describe(e)}`);
    return false;
  }
}

export const failures = () => failed;

/** An error as the library reported it: message, OAuth error code and body, cause. */
function describe(e) {
  const parts = [e?.message ?? String(e)];
  if (e?.code) parts.push(`code=${e.code}`);
  if (e?.error) parts.push(`error=${e.error}`);
  if (e?.error_description) parts.push(`error_description=${e.error_description}`);
  if (e?.cause && typeof e.cause === 'object') {
    try {
      parts.push(`cause=${JSON.stringify(e.cause).slice(0, 600)}`);
    } catch {
      parts.push(`cause=${e.cause}`);
    }
  }
  return parts.join(' | ');
}

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

export function assertEqual(actual, expected, what) {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Debian's Chromium, headless; Playwright gives each launch a fresh profile under TMPDIR. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The header of a compact JWS, decoded. */
export function jwtHeader(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString('utf8'));
}

const onIssuer = (path) => (url) => url.href.startsWith(`${ISSUER}${path}`);

/**
 * Waits until the page is at `url` (a string or a predicate); when it is not, the error says
 * where the browser is and what that page says (an RP's or the provider's error page).
 */
export async function arriveAt(page, url, timeout = 15_000) {
  try {
    await page.waitForURL(url, { timeout });
  } catch (e) {
    const text = await page
      .locator('body')
      .innerText({ timeout: 2_000 })
      .catch(() => '');
    throw new Error(`the browser is at ${page.url()} instead of ${typeof url === 'string' ? url : 'the expected page'}; the page says: ${text.replace(/\s+/g, ' ').slice(0, 300)}`, { cause: e });
  }
}

/**
 * Signs in on the provider's login page through the dev-mode Telegram emulator, as a person
 * would: follow the emulator link, type the Telegram user, submit. `shots` names screenshots.
 */
export async function telegramLogin(page, user, shots) {
  await arriveAt(page, onIssuer('/login'));
  if (shots) await shots('login');
  await page.locator('a[href*="/dev/telegram"]').click();
  await arriveAt(page, onIssuer('/dev/telegram'));
  if (shots) await shots('emulator');
  await page.fill('#id', String(user.id));
  await page.fill('#first_name', user.first_name);
  await page.fill('#last_name', user.last_name ?? '');
  await page.fill('#username', user.username ?? '');
  await Promise.all([
    page.waitForURL((url) => !url.href.startsWith(`${ISSUER}/dev/telegram`)),
    page.locator('form button[type=submit]').click(),
  ]);
}

/** Allows the app on the consent page. */
export async function approveConsent(page, shots) {
  await arriveAt(page, onIssuer('/consent'));
  if (shots) await shots('consent');
  await Promise.all([
    page.waitForURL((url) => !url.href.startsWith(`${ISSUER}/consent`)),
    page.locator('button[name=decision][value=approve]').click(),
  ]);
}

/** The consent page appears only for an app the user has not allowed yet. */
export async function approveConsentIfAsked(page, shots) {
  if (page.url().startsWith(`${ISSUER}/consent`)) await approveConsent(page, shots);
}

/** Counts the requests a browser context sends to the provider while `fn` runs. */
export async function requestsToIssuer(context, fn) {
  const seen = [];
  const listener = (request) => {
    if (request.url().startsWith(ISSUER)) seen.push(request.url());
  };
  context.on('request', listener);
  try {
    await fn();
  } finally {
    context.off('request', listener);
  }
  return seen;
}

/** `telegram-oidc --config <the dev server's database and keys> ...`. */
export async function cli(...args) {
  const { stdout } = await promisify(execFile)(env('E2E_BIN'), [
    '--config',
    env('E2E_CLI_CONFIG'),
    ...args,
  ]);
  return stdout;
}

/** Rotates the RS256 key and waits (bounded) until the running server publishes it. */
export async function rotateKey() {
  const out = await cli('keys', 'rotate', '--alg', 'rs256');
  const kid = /key (\S+) is now active/.exec(out)?.[1];
  assert(kid, `keys rotate printed no key id: ${out}`);
  // The server re-reads keys/ every 5 s and renders the JWKS at most every 5 s.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const jwks = await (await fetch(`${ISSUER}/jwks.json`)).json();
    if (jwks.keys.some((k) => k.kid === kid)) return kid;
    if (Date.now() > deadline) throw new Error(`the JWKS did not publish the new key ${kid} within 30 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
