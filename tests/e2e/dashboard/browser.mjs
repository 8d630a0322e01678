// The dashboard in a real browser (Playwright driving Debian's chromium), run by
// dashboard_e2e_test against a `hafab up` cluster of examples/quickstart.yaml:
//   1. the login link opens the dashboard; it shows the quickstart's roles and nodes, all up;
//   2. `hafab kill` of kvd's primary node: within 5 s the node shows down, the failover's
//      steps appear with their durations, and kvd's primary moves to another node;
//   3. the session cookie is invisible to scripts and writes nothing.
// A screenshot of each state goes to SHOTS. Prints one line per check; exits 1 on the first
// failure (with a screenshot of that moment).
//
// Environment: LOGIN_URL, HAFAB_BIN, STATE_DIR, SHOTS, CHROMIUM.
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const { LOGIN_URL, HAFAB_BIN, STATE_DIR, SHOTS, CHROMIUM } = process.env;
const FAILOVER_BOUND_MS = 5000;

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
// Failed loads are judged by their answers below (the console names no URL).
page.on('console', (m) => {
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(m.text());
});
// Every answer the page got that was not 2xx or 3xx, but for the POST this script sends on purpose.
page.on('response', (r) => {
  if (r.status() >= 400 && r.request().method() !== 'POST') pageErrors.push(`${r.status()} ${r.url()}`);
});

let failed = false;
async function shot(name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
  console.log(`screenshot ${SHOTS}/${name}.png`);
}
async function check(what, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    console.log(`ok   ${what} (${Date.now() - t0} ms)${detail ? ': ' + detail : ''}`);
  } catch (e) {
    console.log(`FAIL ${what} (${Date.now() - t0} ms): ${e.message.split('\n')[0]}`);
    failed = true;
    await shot('failure').catch(() => {});
    throw e;
  }
}
const testid = (id) => `[data-testid="${id}"]`;

try {
  let bytes = 0;
  page.on('response', async (r) => {
    const body = await r.body().catch(() => null);
    if (body) bytes += body.length;
  });
  await check('the login link opens the dashboard', async () => {
    const resp = await page.goto(LOGIN_URL);
    if (!resp.ok() || !page.url().endsWith('/ui/')) throw new Error(`at ${page.url()}: ${resp.status()}`);
  });
  await check('the roles and nodes of the quickstart show, all up', async () => {
    for (const r of ['kvd', 'echo']) await page.locator(testid('role-' + r)).waitFor({ timeout: 10000 });
    for (const n of ['n1', 'n2', 'n3']) {
      await page.locator(`${testid('node-' + n)}[data-state="up"]`).waitFor({ timeout: 15000 });
    }
    await page.locator(testid('primary-kvd')).filter({ hasText: ' on n' }).waitFor({ timeout: 10000 });
    return await page.locator(testid('leader')).textContent();
  });
  await page.waitForLoadState('networkidle').catch(() => {});
  console.log(`page weight: ${bytes} bytes on first load (document, script, style and first API answers)`);
  await shot('1-cluster');

  await check('the session cookie is HttpOnly and grants no write', async () => {
    const visible = await page.evaluate(() => document.cookie);
    if (visible.includes('hafab_session')) throw new Error('document.cookie shows the session');
    const status = await page.evaluate(async () =>
      (await fetch('/v1/roles/kvd/failover', { method: 'POST', body: '{}' })).status);
    if (status !== 401 && status !== 403) throw new Error(`a POST with the cookie got ${status}`);
    return `POST answered ${status}`;
  });

  const primaryText = await page.locator(testid('primary-kvd')).textContent();
  const oldNode = primaryText.split(' on ')[1].trim();
  const killedAt = Date.now();
  execFileSync(HAFAB_BIN, ['kill', oldNode, '--state-dir', STATE_DIR], { stdio: 'inherit' });
  console.log(`killed ${oldNode}, kvd's primary node (${primaryText})`);
  const left = () => Math.max(FAILOVER_BOUND_MS - (Date.now() - killedAt), 1);

  await check(`${oldNode} shows down within 5 s of the kill`, async () => {
    await page.locator(`${testid('node-' + oldNode)}[data-state="down"]`).waitFor({ timeout: left() });
    return `${Date.now() - killedAt} ms after the kill`;
  });
  await shot('2-node-down');
  await check('the failover and its steps with durations show within 5 s', async () => {
    const op = page.locator('[data-kind="failover"]').first();
    await op.waitFor({ timeout: left() });
    await op.locator(testid('step')).filter({ hasText: /\d+(\.\d+)? (ms|s)$/ }).first().waitFor({ timeout: left() });
    return (await op.locator(testid('step')).allTextContents()).join(' | ');
  });
  await check("kvd's primary moves off the killed node within 5 s", async () => {
    await page.locator(testid('primary-kvd')).filter({ hasNotText: ' on ' + oldNode }).filter({ hasText: ' on n' })
      .waitFor({ timeout: left() });
    return `${(await page.locator(testid('primary-kvd')).textContent())}, ${Date.now() - killedAt} ms after the kill`;
  });
  await shot('3-failover');
  await check('the failover completes, every step with its duration', async () => {
    const op = page.locator('[data-kind="failover"][data-state="done"]').first();
    await op.waitFor({ timeout: 20000 });
    const steps = await op.locator(testid('step')).allTextContents();
    if (!steps.length || steps.some((s) => s.includes('…'))) throw new Error(steps.join(' | '));
    return steps.join(' | ');
  });
  await shot('4-failover-done');
  await check('no script error and no failed request in the page', async () => {
    if (pageErrors.length) throw new Error(pageErrors.join('; '));
  });
} catch (e) {
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
