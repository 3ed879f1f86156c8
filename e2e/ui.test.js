// End-to-end test of the dnp web UI in headless Chromium against `dnp-server demo`.
// Run through scripts/e2e, which starts the demo and sets DNP_E2E_URL.
//
// The journey of a new listener: sign up, connect Spotify through the emulated OAuth
// flow, add an artist, preview, enforce with the progress bar reaching 100 %, roll back,
// see the analytics chart; then the other pages, a 375 px wide phone, two-step sign-in,
// and sign-in with Google and Apple (the demo's emulated ones), asking only for the code.
// Every page's assets must total under 200 KB; a screenshot of each page is saved.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.DNP_E2E_URL;
const EXECUTABLE = process.env.DNP_E2E_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.DNP_E2E_ARTIFACTS || path.resolve('test-artifacts/screenshots');
const ASSET_BUDGET = 200 * 1024;
const EMAIL = `listener-${Date.now()}@example.org`;
const PASSWORD = 'correct horse battery staple';

if (!BASE) throw new Error('DNP_E2E_URL is not set: run scripts/e2e, which starts dnp-server demo');

let context;
let page;
let profile;
let cdp;
let blocked; // the artist this test adds to the list
const assetBytes = {}; // page path -> bytes of HTML, CSS, JS and images

before(async () => {
  await mkdir(SHOTS, { recursive: true });
  profile = await mkdtemp(path.join(tmpdir(), 'dnp-e2e-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(20000);
  cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  page.on('pageerror', (e) => { pageErrors.push(e.message); });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
});

after(async () => {
  if (context) await context.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

const pageErrors = [];
const consoleErrors = [];

/** Loads `url` from scratch (cache off) and sums the bytes of its assets. */
async function visit(url, waitFor) {
  const sizes = [];
  const onResponse = async (r) => {
    const type = r.request().resourceType();
    if (!['document', 'script', 'stylesheet', 'image', 'font'].includes(type)) return;
    if (!r.url().startsWith(BASE)) return;
    sizes.push(r.body().then((b) => b.length, () => 0));
  };
  page.on('response', onResponse);
  await page.goto(BASE + url);
  if (waitFor) await page.locator(waitFor).first().waitFor();
  await page.waitForLoadState('networkidle');
  page.off('response', onResponse);
  const bytes = (await Promise.all(sizes)).reduce((a, b) => a + b, 0);
  assetBytes[new URL(BASE + url).pathname] = bytes;
  assert.ok(bytes > 0, `no assets counted for ${url}`);
  assert.ok(bytes < ASSET_BUDGET, `${url} loads ${bytes} bytes of assets, over the 200 KB budget`);
  return bytes;
}

async function shot(name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Every form control has a label (or an aria-label). */
async function assertLabelled() {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    .map((el) => el.outerHTML.slice(0, 120)));
  assert.deepEqual(unlabelled, [], `controls without a label on ${page.url()}`);
  const landmarks = await page.evaluate(() => ({ main: !!document.querySelector('main'), nav: !!document.querySelector('nav') }));
  assert.ok(landmarks.main && landmarks.nav, 'main and nav landmarks');
}

/** The name of an artist of the emulated library: the demo account's list names a few. */
async function artistOfTheLibrary() {
  const login = await fetch(`${BASE}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'demo@dnp.example', password: 'dnp-demo-password' }),
  }).then((r) => r.json());
  const list = await fetch(`${BASE}/api/v1/dnp`, { headers: { authorization: `Bearer ${login.access_token}` } }).then((r) => r.json());
  assert.ok(list.items.length > 0, 'the demo account has a seeded list');
  return list.items[0].artist.name;
}

function totp(base32, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/[\s=]/g, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const o = mac[mac.length - 1] & 0xf;
  const n = ((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3];
  return String(n % 1e6).padStart(6, '0');
}

test('the index answers JSON to API clients and the UI to browsers', async () => {
  const json = await fetch(`${BASE}/`).then((r) => r.json());
  assert.equal(json.name, 'dnp');
  assert.ok(json.providers.some((p) => p.id === 'spotify'));
  const html = await fetch(`${BASE}/`, { headers: { accept: 'text/html' } });
  assert.match(html.headers.get('content-type'), /text\/html/);
  assert.match(html.headers.get('content-security-policy'), /default-src 'self'/);
});

test('sign up', async () => {
  await visit('/signin?mode=register', 'form');
  await assertLabelled();
  await page.getByLabel('Email address').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await shot('01-sign-up');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(`${BASE}/dashboard`);
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Connect Spotify' }).count(), 1);
});

test('connect Spotify through the emulated OAuth flow', async () => {
  await page.getByRole('link', { name: 'Connect Spotify' }).click();
  await page.waitForURL(`${BASE}/dashboard**`);
  await page.getByText('Spotify is connected').waitFor();
  const card = page.locator('li.card.spotify');
  await card.getByText('Healthy').waitFor();
  assert.equal(await card.getByRole('button', { name: 'Disconnect' }).count(), 1);
  await visit('/dashboard', 'li.card.spotify .badge.ok');
  await assertLabelled();
  await shot('02-dashboard');
});

test('a refused authorization brings the browser back to the dashboard with the reason', async () => {
  await page.goto(`${BASE}/api/v1/connections/tidal/callback?error=access_denied`);
  await page.waitForURL(`${BASE}/dashboard**`);
  await page.getByText('TIDAL could not be connected').waitFor();
  await page.getByRole('link', { name: 'Try connecting TIDAL again' }).waitFor();
  // API clients still get the API's JSON error.
  const r = await fetch(`${BASE}/api/v1/connections/tidal/callback?error=access_denied`);
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.code, 'unauthenticated');
});

test('add an artist to the list', async () => {
  blocked = await artistOfTheLibrary();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My list' }).click();
  await page.getByRole('heading', { name: 'My Do-Not-Play list', level: 1 }).waitFor();
  await page.getByLabel('Artist name').fill(blocked);
  await page.getByRole('button', { name: 'Search' }).click();
  const candidates = page.getByRole('list', { name: `Artists matching ${blocked}` });
  await candidates.waitFor();
  await candidates.getByText(/100 % match/).first().waitFor();
  await shot('03-dnp-search');
  await page.getByRole('button', { name: `Add ${blocked} to my list` }).first().click();
  await page.locator('.entries .who', { hasText: blocked }).waitFor();
  await visit('/dnp', '.entries .who');
  await assertLabelled();
  assert.equal(await page.locator('.entries li').count(), 1);
  await shot('04-dnp-list');
});

let previewTotal = 0;

test('preview grouped by service and kind, with reasons and confidence', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Clean up' }).click();
  await page.getByRole('heading', { name: 'Clean up my libraries', level: 1 }).waitFor();
  await assertLabelled();
  assert.ok(await page.getByRole('checkbox', { name: /Spotify/ }).isChecked());
  await page.getByRole('radio', { name: /recommended/ }).check();
  await page.getByRole('button', { name: 'Preview changes' }).click();
  await page.getByRole('heading', { name: 'Preview', level: 2 }).waitFor({ timeout: 60000 });
  const lead = await page.locator('p.lead', { hasText: 'dnp will make' }).textContent();
  previewTotal = Number(lead.match(/make (\d+) change/)[1]);
  assert.ok(previewTotal > 0, `the preview plans changes: ${lead}`);
  const spotify = page.getByRole('region', { name: 'Spotify' });
  const groups = spotify.locator('details.group[data-kind]');
  assert.ok(await groups.count() >= 1, 'at least one group of actions');
  await groups.first().locator('summary').click();
  const firstRow = groups.first().locator('tbody tr').first();
  assert.match(await firstRow.locator('td.reason').textContent(), new RegExp(blocked));
  assert.match(await firstRow.locator('td.num').textContent(), /\d+ %/);
  await shot('05-preview');
});

test('items a service cannot remove come as a checklist with links', async () => {
  // The demo's libraries give Apple Music nothing to skip deterministically, so this test
  // answers the plan request itself with a plan of the shape the planner makes for Apple
  // Music library items, and checks how the page shows it.
  const plan = {
    id: '00000000-0000-4000-8000-000000000000', created_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 86400000).toISOString(),
    summary: { total_actions: 0, actions_by_kind: {}, skipped_items: 2, api_calls: 0 },
    skipped_providers: [],
    providers: [{
      provider: 'apple_music', snapshot_taken_at: new Date().toISOString(),
      plan: {
        provider: 'apple_music', batches: [],
        summary: { items_scanned: 10, actions: {}, total_actions: 0, api_calls: 0, skipped: { unsupported: 2 }, quota_units: 0, days: 0 },
        skipped: ['Song One', 'Album Two'].map((label, i) => ({
          action: { id: i, kind: i ? 'remove_album' : 'unlike_track', target: { type: 'track', track_id: `i.${i}` }, label,
            reason: { entry_id: 'e', artist_name: 'Blocked Artist', matched: 'primary_credit', credit: 'x', confidence: 1 } },
          reason: { code: 'unsupported', reason: 'Apple Music’s API does not remove library items', alternative: 'manual_checklist' },
          url: `https://music.apple.com/library/${i}`,
        })),
      },
    }],
  };
  await page.route('**/api/v1/enforcement/plans', (route) => route.fulfill({ status: 201, contentType: 'application/json', body: JSON.stringify(plan) }));
  try {
    await page.getByRole('checkbox', { name: 'Check my libraries for changes first' }).uncheck();
    await page.getByRole('button', { name: 'Preview changes' }).click();
    await page.getByRole('heading', { name: 'Remove these by hand in Apple Music' }).waitFor();
    const items = page.locator('.checklist li');
    assert.equal(await items.count(), 2);
    assert.equal(await items.first().getByRole('link', { name: /Open Song One in Apple Music/ }).getAttribute('href'), 'https://music.apple.com/library/0');
    await items.first().getByRole('checkbox', { name: /Song One/ }).check();
    await page.getByText('2 items must be removed by hand').waitFor();
    await shot('05b-manual-checklist');
  } finally {
    await page.unroute('**/api/v1/enforcement/plans');
  }
  await page.getByRole('checkbox', { name: 'Check my libraries for changes first' }).check();
  await page.getByRole('button', { name: 'Preview changes' }).click();
  await page.getByRole('button', { name: new RegExp(`Remove ${previewTotal} items? now`) }).waitFor({ timeout: 60000 });
});

test('enforce, with the progress bar reaching 100 %', async () => {
  await page.getByRole('button', { name: new RegExp(`Remove ${previewTotal} items? now`) }).click();
  const bar = page.locator('#results progress');
  await bar.waitFor();
  await page.locator('#results .progress-text', { hasText: '100 %' }).waitFor({ timeout: 60000 });
  const [value, max] = await bar.evaluate((p) => [p.value, p.max]);
  assert.equal(value, max, 'the bar is full');
  await page.locator('#results .badge', { hasText: 'Done' }).waitFor();
  await page.getByText('All done.').waitFor();
  await shot('06-enforced');
});

test('roll back from the history, after confirming', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'History' }).click();
  await page.getByRole('heading', { name: 'History', level: 1 }).waitFor();
  await visit('/history', 'table');
  await shot('07-history');
  await page.getByRole('link', { name: 'Clean-up on Spotify' }).first().click();
  await page.getByRole('heading', { name: 'Clean-up on Spotify', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Undo this clean-up' }).click();
  const dialog = page.getByRole('dialog', { name: 'Undo this clean-up?' });
  await dialog.waitFor();
  await shot('08-rollback-confirm');
  // Cancelling changes nothing.
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Undo this clean-up' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Undo', exact: true }).click();
  await page.locator('.progress-text', { hasText: '100 %' }).waitFor({ timeout: 60000 });
  await page.locator('.progress .badge', { hasText: 'Done' }).waitFor();
  await page.getByText(/Undo finished: \d+ items? put back/).waitFor();
  await shot('09-rolled-back');
  // The history now lists the undo.
  await visit('/history', 'table');
  await page.getByRole('link', { name: 'Undo on Spotify' }).first().waitFor();
});

test('the analytics chart shows the actions', async () => {
  await visit('/analytics', 'svg.chart');
  await assertLabelled();
  const chart = page.locator('#daily-chart svg.chart');
  assert.ok(await chart.locator('rect[data-series="spotify"]').count() >= 1, 'a Spotify bar today');
  assert.match(await chart.locator('desc').textContent(), /Spotify: [1-9]\d*/);
  assert.ok(await page.getByRole('list', { name: 'Changes by kind' }).locator('li').count() >= 1);
  const byKind = page.locator('#daily-kind-chart svg.chart');
  assert.ok(await byKind.locator('rect[data-series]').count() >= 1, 'a bar per kind today');
  assert.match(await byKind.locator('desc').textContent(), /: [1-9]\d*/);
  await shot('10-analytics');
});

test('notifications and settings', async () => {
  await visit('/notifications', 'h1');
  await page.getByRole('heading', { name: 'Notifications', level: 1 }).waitFor();
  await shot('11-notifications');
  await visit('/settings', 'h1');
  await assertLabelled();
  await page.getByLabel(/Clean up automatically/).check();
  await page.getByLabel('How often').selectOption('24');
  await page.getByRole('button', { name: 'Save schedule' }).click();
  await page.getByText('Next run:').waitFor();
  await page.getByLabel('Your name').fill('  Ada \u202eLovelace ');
  await page.getByRole('button', { name: 'Save name' }).click();
  await page.getByText(/^Signed in as Ada Lovelace \(/).waitFor();
  assert.equal(await page.getByLabel('Your name').inputValue(), 'Ada Lovelace');
  await shot('12-settings');
  await visit('/dashboard', 'h1');
  assert.notEqual(await page.locator('.stats li', { hasText: 'Next scheduled' }).locator('time').count(), 0);
});

test('works 375 px wide', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  for (const [p, name] of [['/dashboard', '13-phone-dashboard'], ['/enforce', '14-phone-enforce'], ['/analytics', '15-phone-analytics'], ['/dnp', '16-phone-dnp']]) {
    await visit(p, 'h1');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${p} scrolls sideways by ${overflow}px at 375 px`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('keyboard: the skip link and visible focus', async () => {
  await visit('/dashboard', 'h1');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'focus is visible');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
});

test('two-step sign-in: set up, sign out, sign in with the code', async () => {
  await visit('/settings', 'h1');
  await page.getByRole('button', { name: 'Set up two-step sign-in' }).click();
  const secret = (await page.locator('#mfa-secret').textContent()).replace(/\s/g, '');
  await page.getByLabel('Code').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.getByText('Signing in asks for a code').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${BASE}/signin`);
  await page.getByLabel('Email address').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Enter your 6-digit code' }).waitFor();
  await shot('17-sign-in-code');
  await page.getByLabel('Code').fill(totp(secret));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${BASE}/dashboard`);
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
});

test('sign-in with an identity provider, then only the code once two-step sign-in is on', async () => {
  // The demo's identity providers sign in as the demo account.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${BASE}/signin`);
  await page.getByRole('link', { name: 'Continue with Google' }).click();
  await page.waitForURL(`${BASE}/dashboard`);
  await visit('/settings', 'h1');
  await page.getByRole('button', { name: 'Set up two-step sign-in' }).click();
  const secret = (await page.locator('#mfa-secret').textContent()).replace(/\s/g, '');
  await page.getByLabel('Code').fill(totp(secret));
  await page.getByRole('button', { name: 'Turn on' }).click();
  await page.getByText('Signing in asks for a code').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${BASE}/signin`);
  // Apple answers with a form post; its binding cookie is SameSite=None; Secure.
  await page.getByRole('link', { name: 'Continue with Apple' }).click();
  await page.waitForURL(`${BASE}/signin?step=mfa`);
  await page.getByRole('heading', { name: 'Enter your 6-digit code' }).waitFor();
  assert.equal(await page.getByLabel('Password').count(), 0, 'no password asked');
  await shot('18-sign-in-code-after-apple');
  await page.getByLabel('Code').fill(totp(secret));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${BASE}/dashboard`);
  await page.getByRole('heading', { name: 'Dashboard', level: 1 }).waitFor();
  // The step cookie was spent; the session cookies were set.
  const names = (await context.cookies()).map((c) => c.name);
  assert.ok(names.includes('dnp_access') && !names.includes('dnp_oauth_mfa'), names.join(', '));
});

test('no script errors, and every page within the asset budget', () => {
  assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');
  const real = consoleErrors.filter((e) => !/Failed to load resource: the server responded with a status of 401/.test(e));
  assert.deepEqual(real, [], 'console errors');
  for (const [p, bytes] of Object.entries(assetBytes)) {
    assert.ok(bytes < ASSET_BUDGET, `${p}: ${bytes} bytes`);
  }
  console.log('asset bytes per page:', JSON.stringify(assetBytes));
});
