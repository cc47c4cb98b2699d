// The web console, end to end: a real `strata serve` on a free loopback port, Debian's
// Chromium driven headless by playwright-core. The console must load (saying
// "connecting" until the live tail answers), draw dark scrollbars, list a stream
// appended over HTTP and show its events, show a live event arriving in the tail, list
// the projections, page through the streams of a prefix, and show the shop: orders with
// their status and lines, products with stock, an order's history with its actors, and a
// clear note when the shop is not mounted.
//
// STRATA_BIN names the binary (default: target/debug/strata, then target/release/strata);
// CHROMIUM names the browser (default: /usr/bin/chromium); SCREENSHOT_DIR, if set,
// receives a screenshot of the console.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = process.env.STRATA_BIN
  || [join(root, 'target/debug/strata'), join(root, 'target/release/strata')].find(existsSync);
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';

let server;
let serverExit;
let base;
let dataDir;
let browser;
let page;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function http(method, path, body, extraHeaders) {
  const res = await fetch(base + path, {
    method,
    headers: Object.assign(body ? { 'content-type': 'application/json' } : {}, extraHeaders),
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  assert.ok(res.ok, `${method} ${path} answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

before(async () => {
  assert.ok(bin && existsSync(bin), 'build the strata binary first (cargo build -p strata-cli) or set STRATA_BIN');
  assert.ok(existsSync(browserPath), `no browser at ${browserPath} (apt-get install chromium)`);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'strata-console-'));
  server = spawn(bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  server.stderr.on('data', (chunk) => { log += chunk; });
  serverExit = new Promise((ok) => server.on('exit', (code, signal) => ok({ code, signal, log })));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(base + '/health');
      if (res.ok) break;
    } catch (_) { /* not up yet */ }
    assert.ok(Date.now() < deadline, `strata serve did not answer within 30 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.problems = problems;
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    server.kill('SIGTERM');
    const exit = await serverExit;
    assert.equal(exit.code, 0, `strata serve exited with ${exit.code} (${exit.signal}):\n${exit.log}`);
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('the console loads from the binary, "connecting" until the live tail answers', async () => {
  // The live tail's request is held until the page has been looked at.
  let release;
  const gate = new Promise((ok) => { release = ok; });
  let held = false;
  const subscribe = (url) => url.pathname === '/subscribe';
  await page.route(subscribe, async (route) => {
    held = true;
    await gate;
    await route.continue();
  });
  const response = await page.goto(base + '/');
  assert.equal(response.status(), 200);
  assert.equal(await page.title(), 'strata console');
  for (const deadline = Date.now() + 10_000; !held;) {
    assert.ok(Date.now() < deadline, 'the console never asked for /subscribe');
    await new Promise((r) => setTimeout(r, 20));
  }
  const conn = page.locator('#conn');
  assert.equal(await conn.textContent(), 'connecting');
  assert.equal(await conn.getAttribute('class'), 'pill wait');
  release();
  await page.waitForSelector('#conn.on', { timeout: 10_000 });
  assert.equal(await conn.textContent(), 'live');
  await page.unroute(subscribe);
});

/** The channels of a computed `rgb(...)` colour, or null. */
function rgb(text) {
  const m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(text);
  return m ? m.slice(1, 4).map(Number) : null;
}

test('scrollbars are dark on the dark theme', async () => {
  const style = await page.$eval('#tail-list', (node) => {
    const computed = getComputedStyle(node);
    return { color: computed.scrollbarColor, scheme: computed.colorScheme, overflow: computed.overflowY };
  });
  assert.equal(style.overflow, 'auto', 'the tail scrolls');
  assert.equal(style.scheme, 'dark');
  const [thumb, track] = style.color.split(/\)\s+/).map(rgb);
  assert.ok(thumb && track, `scrollbar-color is ${style.color}`);
  const light = (c) => (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255;
  assert.ok(light(track) < 0.15, `the track ${style.color} is dark`);
  assert.ok(light(thumb) < 0.4, `the thumb ${style.color} is not white`);
  assert.ok(light(thumb) > light(track), `the thumb ${style.color} stands out from the track`);
});

test('a stream appended over HTTP is listed and its events shown', async () => {
  await http('POST', '/streams/console-1', {
    expected_version: 'no_stream',
    events: [{ type: 'Opened', data: { owner: 'ann' }, metadata: { actor: 'ann' } }],
  });
  const item = page.locator('#streams-list li[data-stream="console-1"]');
  await item.waitFor({ timeout: 10_000 });
  await page.fill('#streams-search', 'console');
  await item.waitFor({ timeout: 5_000 });
  await item.click();
  const event = page.locator('#stream-events .event').first();
  await event.waitFor({ timeout: 5_000 });
  const text = await event.textContent();
  assert.match(text, /Opened/);
  assert.match(text, /"owner": "ann"/);
  assert.match(text, /"actor": "ann"/);
});

test('a live event arrives in the tail', async () => {
  await http('POST', '/streams/live-7', { events: [{ type: 'Arrived', data: { n: 7 } }] });
  const row = page.locator('#tail-list .event', { hasText: 'live-7' });
  await row.waitFor({ timeout: 10_000 });
  assert.match(await row.first().textContent(), /Arrived/);
});

test('projections are listed with their lag', async () => {
  await page.waitForFunction(
    () => document.querySelectorAll('#projections-table tbody tr[data-projection]').length >= 4,
    null,
    { timeout: 10_000 },
  );
  const names = await page.$$eval('#projections-table tbody tr[data-projection]', (rows) => rows.map((r) => r.dataset.projection));
  assert.ok(names.includes('shop_orders'), names.join(', '));
  const lag = await page.locator('#projections-table tbody tr[data-projection="shop_orders"] td').nth(4).textContent();
  assert.match(lag, /\d+ ev/);
  await page.locator('#projections-table tr[data-projection="shop_orders"] button.show-parked').click();
  await page.locator('#parked', { hasText: 'nothing parked' }).waitFor({ timeout: 5_000 });
});

test('the stream list pages by prefix', async () => {
  // One page more than the console asks for at a time (200).
  for (let i = 0; i < 205; i++) {
    await http('POST', `/streams/paged-${String(i).padStart(3, '0')}`, { events: [{ type: 'Made', data: { i } }] });
  }
  await page.fill('#streams-search', 'paged-');
  const more = page.locator('#streams-list li.more');
  await more.waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('#streams-list li[data-stream]').count(), 200);
  assert.equal(await page.locator('#streams-list li[data-stream]').last().getAttribute('data-stream'), 'paged-199');
  await more.click();
  await page.locator('#streams-list li[data-stream="paged-204"]').waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('#streams-list li[data-stream]').count(), 205);
  assert.equal(await page.locator('#streams-list li.more').count(), 0, 'the last page offers no more');
  assert.match(await page.locator('#streams-shown').textContent(), /\(205\)/);
});

test('the shop view shows a placed order with its lines, the stock, and the order\'s history', async () => {
  const ann = { 'x-actor': 'ann', 'x-correlation-id': 'cart-ann' };
  await http('POST', '/shop/products/console-mug', { name: 'Console mug', description: 'a blue mug', price: 1250 });
  await http('POST', '/shop/inventory/console-mug/receive', { quantity: 5 });
  await http('POST', '/shop/orders/c-1', { customer: 'ann' }, ann);
  await http('POST', '/shop/orders/c-1/lines', { sku: 'console-mug', quantity: 2 }, ann);
  await http('POST', '/shop/orders/c-1/place', undefined, ann);

  const row = page.locator('#shop-orders tr[data-order="c-1"]');
  await row.waitFor({ timeout: 10_000 });
  assert.match(await row.textContent(), /c-1\s*ann/);
  // Checkout moves it on from placed by itself.
  await page.locator('#shop-orders tr[data-order="c-1"] .status-confirmed').waitFor({ timeout: 10_000 });
  // Checkout holds 2 of the 5 received.
  const available = page.locator('#shop-products tr[data-sku="console-mug"] td.available', { hasText: /^3$/ });
  await available.waitFor({ timeout: 10_000 });
  assert.match(await page.locator('#shop-products tr[data-sku="console-mug"]').textContent(), /Console mug\s*12\.50/);

  await row.click();
  const line = page.locator('#shop-lines tr[data-sku="console-mug"]');
  await line.waitFor({ timeout: 5_000 });
  assert.deepEqual(await line.locator('td').allTextContents(), ['console-mug', '2', '12.50', '25.00']);
  assert.match(await page.locator('#shop-order .order-facts').textContent(), /confirmed.*customer ann.*total 25\.00/);

  const steps = page.locator('#shop-history li');
  await page.locator('#shop-history li', { hasText: 'OrderConfirmed' }).waitFor({ timeout: 5_000 });
  const created = steps.first();
  assert.match(await created.locator('.type').textContent(), /^OrderCreated$/);
  assert.equal(await created.locator('.actor').textContent(), 'by ann');
  assert.match(await created.locator('.ids').textContent(), /correlation cart-ann/);
  assert.ok(await created.locator('.when').textContent());
  const types = await steps.locator('.type').allTextContents();
  assert.deepEqual(types.slice(0, 3), ['OrderCreated', 'OrderLineAdded', 'OrderPlaced']);
  assert.equal(await steps.nth(2).locator('.actor').textContent(), 'by ann');
});

test('without the shop mounted, the view says so', async () => {
  const other = await browser.newPage();
  try {
    await other.route((url) => url.pathname.startsWith('/shop/'), (route) => route.fulfill({
      status: 404,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'not_found', message: 'no route' } }),
    }));
    await other.goto(base + '/');
    await other.locator('#shop-absent', { hasText: 'the shop is not mounted' }).waitFor({ timeout: 10_000 });
    assert.equal(await other.locator('#shop-body').isHidden(), true);
  } finally {
    await other.close();
  }
});

test('the charts draw and nothing failed in the page', async () => {
  await page.waitForFunction(() => /events\/s/.test(document.querySelector('#throughput-now').textContent), null, { timeout: 10_000 });
  if (process.env.SCREENSHOT_DIR) {
    mkdirSync(process.env.SCREENSHOT_DIR, { recursive: true });
    await page.screenshot({ path: join(process.env.SCREENSHOT_DIR, 'console.png'), fullPage: true });
  }
  assert.deepEqual(page.problems, []);
});
