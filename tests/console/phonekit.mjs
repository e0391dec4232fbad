// Drives the PhoneKit toolbar (the demo page: PhoneKit.js + template.html in the pbFrame
// iframe) in headless Chromium against a real server with the sandbox, as three people
// would: agent 1001 takes a customer's call, holds and retrieves it, is whispered to by
// supervisor 9001, consults agent 1002 and hands the caller over, counts down its wrap-up
// to autoReady, loses its socket and gets every event on resume, and logs out.
//
//   node phonekit.mjs <base URL> [screenshot dir]
//
// Prints one JSON object: what each page showed and the events PhoneKit gave it.
// Exits non-zero with the reason on the first thing that is not as it should be.
import { chromium } from 'playwright-core';

const base = process.argv[2];
const shots = process.argv[3] || '';
const WAIT = { timeout: 15000 };

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const errors = [];
const out = {};

async function person(agentNo) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  page.on('pageerror', (e) => errors.push(`${agentNo}: ${e.message}`));
  // Keep the page's sockets reachable, so the test can cut one as a network would.
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = function (url, protocols) {
      const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
      window.__sockets.push(ws);
      return ws;
    };
    window.WebSocket.prototype = Native.prototype;
    Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  });
  await page.goto(`${base}/PhoneKit/demo.html?agent=${agentNo}`);
  const bar = page.frameLocator('#pbFrame');
  await bar.locator('#connText', { hasText: 'online' }).waitFor(WAIT);
  return { page, bar };
}

async function shot(p, name) {
  if (shots) await p.page.screenshot({ path: `${shots}/phonekit-${name}.png` });
}

async function state(p, word) {
  await p.bar.locator('#state', { hasText: word }).waitFor(WAIT);
}

function fail(why) {
  throw new Error(why);
}

try {
  // Agent 1001 signs in (the toolbar offers the login) and becomes ready.
  let a = await person('1001');
  if (await a.bar.locator('#logout').isEnabled()) fail('logout enabled before login');
  if (await a.bar.locator('#hangup').isEnabled()) fail('hangup enabled with no call');
  await shot(a, 'signed-in');
  await a.bar.locator('#login').click();
  await state(a, 'Ready');
  if (!(await a.bar.locator('#call').isEnabled())) fail('call disabled when ready');
  await shot(a, 'ready');

  // A customer calls in: the ready agent's phone rings, answers by itself, and the agent
  // connects with the toolbar's Answer.
  await a.page.click('#customer');
  await state(a, 'Ringing');
  await a.bar.locator('#answer:enabled').waitFor(WAIT);
  if (await a.bar.locator('#hold').isEnabled()) fail('hold enabled while ringing');
  out.ringingNumber = await a.bar.locator('#userNumber').textContent();
  await shot(a, 'ringing');
  await a.bar.locator('#answer').click();
  await state(a, 'Talking');
  await a.bar.locator('#talk', { hasText: /0:0[1-9]/ }).waitFor(WAIT);
  await shot(a, 'talking');

  // Hold and retrieve.
  await a.bar.locator('#hold').click();
  await a.bar.locator('#retrieve:enabled').waitFor(WAIT);
  if (await a.bar.locator('#hold').isEnabled()) fail('hold enabled while held');
  out.heldState = await a.bar.locator('#callState').textContent();
  await shot(a, 'held');
  await a.bar.locator('#retrieve').click();
  await a.bar.locator('#hold:enabled').waitFor(WAIT);

  // The supervisor watches the queues and whispers to 1001; then leaves.
  const s = await person('9001');
  await s.bar.locator('#login').click();
  await state(s, 'Ready');
  await s.bar.locator('#watch').click();
  const whisper = s.bar.locator('button[data-cmd="whisper"][data-agent="1001"]');
  await whisper.waitFor(WAIT);
  await s.bar.locator('button[data-cmd="whisper"][data-agent="1001"]:enabled').waitFor(WAIT);
  out.supervisorQueue = await s.bar.locator('#queues caption').first().textContent();
  await whisper.click();
  await state(s, 'Talking');
  await s.bar.locator('#callState', { hasText: 'whisper' }).waitFor(WAIT);
  out.supervisorCall = await s.bar.locator('#callState').textContent();
  await shot(s, 'supervisor-whisper');
  await s.bar.locator('#hangup').click();
  await state(s, 'Ready');

  // Agent 1002 comes in; 1001 consults it and hands the caller over.
  const b = await person('1002');
  await b.bar.locator('#login').click();
  await state(b, 'Ready');
  await a.bar.locator('#consultTarget').fill('1002');
  await a.bar.locator('#consult').click();
  await a.bar.locator('#consultTransfer:enabled').waitFor(WAIT);
  out.consulting = await a.bar.locator('#callState').textContent();
  await shot(a, 'consulting');
  await a.bar.locator('#consultTransfer').click();
  await state(a, 'Wrap-up');
  await a.bar.locator('#wrapup', { hasText: 'wrap-up ends in' }).waitFor(WAIT);
  out.wrapup = await a.bar.locator('#wrapup').textContent();
  await shot(a, 'wrapup');
  await state(b, 'Talking');
  out.transferredTo = await b.bar.locator('#callState').textContent();

  // 1001's socket drops during its wrap-up; autoReady comes while it is away, and the
  // resumed socket replays it.
  // New connections are refused until the wrap-up (10 s) is surely over.
  const before = await a.page.evaluate(() => window.demoEvents.length);
  let refusing = true;
  await a.page.routeWebSocket(/\/cti\?/, (ws) => (refusing ? ws.close() : ws.connectToServer()));
  await a.page.evaluate(() => window.__sockets[window.__sockets.length - 1].close());
  await a.bar.locator('#connText', { hasText: /reconnecting|cannot reach/ }).waitFor(WAIT);
  await shot(a, 'reconnecting');
  // Commands while the socket is down are answered at once with 20114.
  out.whileDown = await a.page.evaluate(() => new Promise((done) => PhoneKit.ready(done)));
  await a.page.waitForTimeout(12000);
  const during = await a.page.evaluate(() => window.demoEvents.length);
  if (during !== before) fail(`events arrived while disconnected: ${before} → ${during}`);
  refusing = false;
  await a.bar.locator('#connText', { hasText: 'online' }).waitFor({ timeout: 30000 });
  await state(a, 'Ready');
  out.resumed = await a.page.evaluate(() => ({
    events: window.demoEvents.length,
    lastSeq: PhoneKit.state().lastSeq,
    names: window.demoEvents.map((d) => d.eventName + (d.callSubtype ? '/' + d.callSubtype : '')),
    sessionSid: PhoneKit.state().sessionSid,
  }));
  out.eventsBeforeDrop = before;

  // The same agent signed in on another page: this one is kicked out and stays out.
  const again = await person('1001');
  await a.bar.locator('#connText', { hasText: 'signed in elsewhere' }).waitFor(WAIT);
  await a.page.waitForTimeout(2500);
  out.afterKick = await a.page.evaluate(() => PhoneKit.state().conn);
  await a.page.close();
  a = again;

  // A wrong password: auth_fail, and no retries.
  const stranger = await browser.newPage();
  await stranger.goto(`${base}/PhoneKit/template/template.html`);
  out.wrongPassword = await stranger.evaluate(async (args) => {
    await new Promise((loaded) => {
      const s = document.createElement('script');
      s.src = args.base + '/PhoneKit/js/PhoneKit.js';
      s.onload = loaded;
      document.head.appendChild(s);
    });
    const conn = [];
    const resp = await new Promise((done) => PhoneKit.initial({
      url: args.base, appSid: args.appSid, agentNo: '1002', pwd: 'not the password',
      onConnEvent: (e) => conn.push(e),
    }, done));
    await new Promise((r) => setTimeout(r, 2500));
    return { statusCode: resp.statusCode, conn, state: PhoneKit.state().conn };
  }, { base, appSid: (await (await fetch(`${base}/PhoneKit/demo/agent`, { method: 'POST' })).json()).appSid });

  // Log out.
  await a.bar.locator('#logout').click();
  await state(a, 'Offline');
  if (!(await a.bar.locator('#login').isEnabled())) fail('login disabled after logout');
  await shot(a, 'logged-out');
  out.errors = errors;
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ failed: String(e.message || e), errors, so_far: out }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
