// The dashboard's cost: bytes a browser loads when it opens it, and the controller's CPU with
// N dashboards open against the same time with none. Run by bench/dashboard/run.sh.
// Environment: API (controller URL), READ_TOKEN, CONTROLLER_PID, CHROMIUM, PAGES (5),
// PHASE_SECONDS (60 per phase).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../tests/e2e/dashboard/', import.meta.url));
const { chromium } = require('playwright-core');
const { API, READ_TOKEN, CONTROLLER_PID, CHROMIUM } = process.env;
const PAGES = Number(process.env.PAGES || 5);
const SECONDS = Number(process.env.PHASE_SECONDS || 60);
const TICKS = 100;  // USER_HZ

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);  // utime + stime
}
async function cpuPercent(seconds) {
  const t0 = cpuTicks(CONTROLLER_PID);
  const w0 = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return (100 * (cpuTicks(CONTROLLER_PID) - t0) / TICKS) / ((Date.now() - w0) / 1000);
}
async function loginUrl() {
  const r = await fetch(API + '/v1/dashboard/login', { headers: { Authorization: 'Bearer ' + READ_TOKEN } });
  return API + (await r.json()).path;
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const idle = await cpuPercent(SECONDS);
console.log(`controller CPU, no dashboard: ${idle.toFixed(2)} % of a core over ${SECONDS} s`);

const pages = [];
let firstLoad = 0;
for (let i = 0; i < PAGES; i++) {
  const context = await browser.newContext();  // each its own login and cookie, as N operators
  const page = await context.newPage();
  let bytes = 0;
  page.on('response', async (r) => { const b = await r.body().catch(() => null); if (b) bytes += b.length; });
  await page.goto(await loginUrl());
  await page.locator('[data-testid^="node-"]').first().waitFor({ timeout: 20000 });
  if (i === 0) {
    // What the first page loaded until the network is quiet (its long poll stays in flight,
    // so this waits out the 30 s limit).
    await page.waitForLoadState('networkidle').catch(() => {});
    firstLoad = bytes;
    const byType = await page.evaluate(() => performance.getEntriesByType('resource')
      .map((e) => `${new URL(e.name).pathname} ${e.encodedBodySize} B`).join(', '));
    const doc = await page.evaluate(() => performance.getEntriesByType('navigation')[0].encodedBodySize);
    console.log(`first load: ${firstLoad} bytes of bodies (document ${doc} B, ${byType})`);
  }
  pages.push(page);
}
const open = await cpuPercent(SECONDS);
console.log(`controller CPU, ${PAGES} dashboards open: ${open.toFixed(2)} % of a core over ${SECONDS} s ` +
            `(+${(open - idle).toFixed(2)} points)`);
await browser.close();
