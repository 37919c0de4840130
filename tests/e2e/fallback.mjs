// The login page when telegram.org's widget script does not load, and with JavaScript off: a
// second provider (`telegram-oidc serve`, not dev mode, so the page carries the real widget tag)
// whose bot talks to a fake Bot API here; the browser's requests to telegram.org fail. The
// fallback must appear, and the bot login it points at must work all the way to the app; with
// JavaScript off the same way must be offered and work. Run from browser.mjs.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OUT, assert, assertEqual, arriveAt, check, env, jwtHeader } from './lib.mjs';

const BOT_TOKEN = '4440001111:E2E-fallback-bot-token';
const BOT_USERNAME = 'fallback_e2e_bot';
const WEBHOOK_SECRET = 'e2e-fallback-webhook-secret';

function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function listen(server, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve(`http://${host}:${server.address().port}`));
  });
}

/** The Bot API methods the server calls, answered as Telegram would; every call is kept. */
async function fakeBotApi() {
  const calls = [];
  let nextMessage = 100;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const [, bot, method] = /^\/(bot[^/]+)\/(\w+)$/.exec(req.url) ?? [];
      res.setHeader('content-type', 'application/json');
      if (bot !== `bot${BOT_TOKEN}`) {
        res.statusCode = 401;
        res.end(JSON.stringify({ ok: false, error_code: 401, description: 'Unauthorized' }));
        return;
      }
      const parsed = body ? JSON.parse(body) : {};
      calls.push({ method, body: parsed });
      const result = method === 'sendMessage'
        ? { message_id: (nextMessage += 1), date: 0, chat: { id: parsed.chat_id, type: 'private' }, text: parsed.text }
        : true;
      res.end(JSON.stringify({ ok: true, result }));
    });
  });
  const base = await listen(server);
  return { base, calls, close: () => server.close() };
}

/** The app: its redirect URI answers with a page; the scenario reads the code from the URL. */
async function fakeApp() {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end('<!doctype html><title>App</title><h1>The app received the callback</h1>');
  });
  const base = await listen(server);
  return { base, close: () => server.close() };
}

async function run(bin, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')}: ${err}`))));
  });
}

/** A second provider, configured as in production apart from loopback addresses. */
async function startProvider(botApi, appBase) {
  const bin = env('E2E_BIN');
  const dir = mkdtempSync(join(tmpdir(), 'fallback-'));
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const config = join(dir, 'provider.toml');
  writeFileSync(config, [
    `issuer = "${issuer}"`,
    `listen = "127.0.0.1:${port}"`,
    `database_url = "sqlite://${dir}/provider.db"`,
    `keys_dir = "${dir}/keys"`,
    '[telegram]',
    `bot_username = "${BOT_USERNAME}"`,
    `bot_token = "${BOT_TOKEN}"`,
    `bot_api_url = "${botApi.base}"`,
    // `updates` is left at its default: a webhook secret is set, so the bot hears a webhook.
    `webhook_secret = "${WEBHOOK_SECRET}"`,
    '',
  ].join('\n'));
  const added = JSON.parse(await run(bin, ['--config', config, 'client', 'add', '--json', '--name', 'Fallback app', '--redirect-uri', `${appBase}/cb`]));
  const server = spawn(bin, ['--config', config, 'serve'], {
    stdio: ['ignore', 'ignore', 'ignore'],
    env: { ...process.env, RUST_LOG: 'warn' },
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const up = await fetch(`${issuer}/healthz`).then((r) => r.ok, () => false);
    if (up) break;
    if (Date.now() > deadline || server.exitCode !== null) throw new Error('the second provider did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { issuer, client: added, stop: () => server.kill() };
}

/** What Telegram would post to the webhook when `user` sends `/start payload`, then presses a button. */
function webhook(provider) {
  let updateId = 5000;
  return async (update) => {
    const resp = await fetch(`${provider.issuer}/telegram/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': WEBHOOK_SECRET },
      body: JSON.stringify({ update_id: (updateId += 1), ...update }),
    });
    assertEqual(resp.status, 200, 'webhook status');
  };
}

const from = (user) => ({ id: user.id, is_bot: false, first_name: user.first_name, username: user.username, language_code: 'en' });

/**
 * Confirms the login in the "chat": `/start <payload>` from the link the page shows, then the
 * button of the number the page shows.
 */
async function approveInChat(page, provider, botApi, user) {
  const link = await page.locator('#bot-login a[href^="https://t.me/"]').getAttribute('href');
  const payload = new URL(link).searchParams.get('start');
  assert(payload, `no start payload in ${link}`);
  const post = webhook(provider);
  const before = botApi.calls.filter((c) => c.method === 'sendMessage').length;
  await post({ message: { message_id: 1, date: 0, from: from(user), chat: { id: user.id, type: 'private' }, text: `/start ${payload}` } });
  const sent = botApi.calls.filter((c) => c.method === 'sendMessage');
  assertEqual(sent.length, before + 1, 'messages the bot sent');
  // Number matching: the page shows a number; the bot offers three, and that one approves.
  const number = (await page.locator('#bot-match-code').textContent()).trim();
  const approve = sent.at(-1).body.reply_markup.inline_keyboard.flat().find((b) => b.text === number);
  assert(approve, `no button ${number} in ${JSON.stringify(sent.at(-1).body)}`);
  await post({
    callback_query: {
      id: `cq-${user.id}`,
      chat_instance: '1',
      from: from(user),
      message: { message_id: 101, date: 0, chat: { id: user.id, type: 'private' } },
      data: approve.callback_data,
    },
  });
}

/** From the consent page to the app, and the ID token the code buys. */
async function consentAndRedeem(page, provider, appBase) {
  await arriveAt(page, (url) => url.href.startsWith(`${provider.issuer}/consent`));
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(`${appBase}/cb`)),
    page.locator('button[name=decision][value=approve]').click(),
  ]);
  const code = new URL(page.url()).searchParams.get('code');
  assert(code, `no code at ${page.url()}`);
  const { client_id: id, client_secret: secret } = provider.client;
  const resp = await fetch(`${provider.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: `${appBase}/cb` }),
  });
  assertEqual(resp.status, 200, 'token status');
  const { id_token: idToken } = await resp.json();
  assert(jwtHeader(idToken).kid, 'a signed ID token');
  return JSON.parse(Buffer.from(idToken.split('.')[1], 'base64url').toString('utf8'));
}

function authorizeUrl(provider, appBase) {
  const url = new URL(`${provider.issuer}/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: provider.client.client_id,
    redirect_uri: `${appBase}/cb`,
    scope: 'openid profile',
    state: 'fallback-state',
    nonce: 'fallback-nonce',
  }).toString();
  return url.href;
}

export async function fallbackScenario(browser) {
  const botApi = await fakeBotApi();
  const app = await fakeApp();
  let provider;
  try {
    await check('fallback: a provider outside dev mode starts with the bot login on by default', async () => {
      provider = await startProvider(botApi, app.base);
    });
    if (!provider) return;

    await check('fallback: with the widget script blocked, the page shows the other ways and the bot login works to the app', async () => {
      const context = await browser.newContext();
      let blocked = 0;
      await context.route(/^https:\/\/telegram\.org\//, (route) => {
        blocked += 1;
        return route.abort('blockedbyclient');
      });
      const page = await context.newPage();
      await page.goto(authorizeUrl(provider, app.base));
      await arriveAt(page, (url) => url.href.startsWith(`${provider.issuer}/login`));
      const fallback = page.locator('#widget-fallback');
      await fallback.waitFor({ state: 'visible', timeout: 5_000 });
      assert(blocked > 0, 'the page did not ask telegram.org for the widget script');
      assert(!(await page.locator('#telegram-login').isVisible()), 'the empty widget area is still shown');
      await page.screenshot({ path: join(OUT, 'fallback-widget-blocked-desktop-light-en.png'), fullPage: true });
      await fallback.locator('a[href="#bot-login"]').click();
      assert(await page.locator('#bot-login a[href^="https://t.me/"]').isVisible(), 'the bot link is not shown');
      assert(await page.locator('#bot-login svg').isVisible(), 'the QR code is not shown');
      const user = { id: 444000001, first_name: 'Fallback', username: 'fallback_user' };
      await approveInChat(page, provider, botApi, user);
      // The page's own check notices the approval and goes on.
      const claims = await consentAndRedeem(page, provider, app.base);
      assertEqual(claims.sub, String(user.id), 'sub');
      assertEqual(JSON.stringify(claims.amr), '["telegram_bot"]', 'amr');
      await context.close();
    });

    await check('fallback: with JavaScript off, the page offers the bot login and it works to the app', async () => {
      const context = await browser.newContext({ javaScriptEnabled: false });
      const page = await context.newPage();
      await page.goto(authorizeUrl(provider, app.base));
      await arriveAt(page, (url) => url.href.startsWith(`${provider.issuer}/login`));
      const notice = await page.locator('noscript').first().textContent();
      assert(/needs JavaScript/.test(notice ?? ''), `no <noscript> notice: ${notice}`);
      assert(await page.locator('#bot-login a[href^="https://t.me/"]').isVisible(), 'the bot link is not shown');
      await page.screenshot({ path: join(OUT, 'fallback-no-javascript-desktop-light-en.png'), fullPage: true });
      const user = { id: 444000002, first_name: 'NoScript', username: 'noscript_user' };
      await approveInChat(page, provider, botApi, user);
      await page.locator('#bot-complete button[type=submit]').click();
      const claims = await consentAndRedeem(page, provider, app.base);
      assertEqual(claims.sub, String(user.id), 'sub');
      await context.close();
    });
  } finally {
    provider?.stop();
    botApi.close();
    app.close();
  }
}
