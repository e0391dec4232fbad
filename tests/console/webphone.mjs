// The WebPhone (phoneType 3) in headless Chromium against a fake SIP-over-WebSocket peer
// standing in for FreeSWITCH's WSS binding (there is no FreeSWITCH here): agent 1002 logs
// in with the toolbar as a WebPhone; PhoneKit registers JsSIP at wsAddr as
// sip:{sipNumber}@{sipDomain}; the peer calls it twice — once plainly (the toolbar rings and
// the agent answers with Answer), once asking for auto-answer (answered by itself) — and
// the agent logs out (JsSIP unregisters).
//
//   node webphone.mjs <base URL> <port for the fake peer> [screenshot dir]
//
// Prints one JSON object with what the peer saw; exits non-zero on the first failure.
import { chromium } from 'playwright-core';
import { WebSocketServer } from 'ws';

const [base, port, shots] = [process.argv[2], Number(process.argv[3]), process.argv[4] || ''];
const WAIT = { timeout: 15000 };
const seen = { registers: [], invites: [], answers: [], acks: 0 };
let peer = null;
let contact = null;
const waiters = [];

function header(msg, name) {
  const m = msg.match(new RegExp(`^${name}:\\s*(.*)$`, 'mi'));
  return m ? m[1].trim() : '';
}

function settle() {
  for (const w of waiters.splice(0)) w();
}

function until(check, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the peer did not see ${what}`)), 15000);
    const test = () => (check() ? (clearTimeout(timer), resolve()) : waiters.push(test));
    test();
  });
}

// The peer: answers REGISTER 200 OK, records answers to its INVITEs and ACKs them.
const server = new WebSocketServer({ port, handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false) });
server.on('connection', (ws) => {
  peer = ws;
  ws.on('message', (data) => {
    const msg = data.toString();
    const first = msg.split('\r\n')[0];
    if (first.startsWith('REGISTER ')) {
      seen.registers.push({
        uri: first.split(' ')[1],
        from: header(msg, 'From'),
        expires: header(msg, 'Expires') || (header(msg, 'Contact').match(/expires=(\d+)/) || [])[1] || '',
        userAgent: header(msg, 'User-Agent'),
      });
      const c = header(msg, 'Contact');
      if (c && !/expires=0/.test(c) && header(msg, 'Expires') !== '0') contact = c.replace(/^<|>.*$/g, '');
      const reply = [
        'SIP/2.0 200 OK',
        `Via: ${header(msg, 'Via')}`,
        `From: ${header(msg, 'From')}`,
        `To: ${header(msg, 'To')};tag=peer${seen.registers.length}`,
        `Call-ID: ${header(msg, 'Call-ID')}`,
        `CSeq: ${header(msg, 'CSeq')}`,
        `Contact: ${c};expires=${header(msg, 'Expires') === '0' ? 0 : 600}`,
        'Content-Length: 0', '', '',
      ].join('\r\n');
      ws.send(reply);
    } else if (first.startsWith('SIP/2.0 ')) {
      const status = Number(first.split(' ')[1]);
      const cseq = header(msg, 'CSeq');
      if (/INVITE/.test(cseq) && status === 200) {
        seen.answers.push({ callId: header(msg, 'Call-ID'), sdp: /m=audio/.test(msg) });
        const ack = [
          `ACK ${header(msg, 'Contact').replace(/^<|>.*$/g, '')} SIP/2.0`,
          `Via: SIP/2.0/WSS peer.invalid;branch=z9hG4bKack${seen.answers.length}`,
          'Max-Forwards: 70',
          `From: ${header(msg, 'From')}`,
          `To: ${header(msg, 'To')}`,
          `Call-ID: ${header(msg, 'Call-ID')}`,
          `CSeq: ${cseq.split(' ')[0]} ACK`,
          'Content-Length: 0', '', '',
        ].join('\r\n');
        ws.send(ack);
        seen.acks += 1;
      } else if (/INVITE/.test(cseq)) {
        seen.invites[seen.invites.length - 1].provisional.push(status);
      }
    }
    settle();
  });
});

const SDP = [
  'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 0', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:peer', 'a=ice-pwd:peerpasswordpeerpassword',
  'a=fingerprint:sha-256 ' + Array.from({ length: 32 }, (_, i) => (i * 7 % 256).toString(16).padStart(2, '0').toUpperCase()).join(':'),
  'a=setup:actpass', 'a=mid:0', 'a=sendrecv', 'a=rtcp-mux', 'a=rtpmap:111 opus/48000/2', 'a=rtpmap:0 PCMU/8000', '',
].join('\r\n');

/** FreeSWITCH calling the registered WebPhone (with `sip_auto_answer=true` when `auto`). */
function invite(n, auto) {
  const callId = `peer-call-${n}`;
  seen.invites.push({ callId, auto, provisional: [] });
  const lines = [
    `INVITE ${contact} SIP/2.0`,
    `Via: SIP/2.0/WSS peer.invalid;branch=z9hG4bKinv${n}`,
    'Max-Forwards: 70',
    `From: "13800138000" <sip:13800138000@peer.invalid>;tag=from${n}`,
    `To: <${contact}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:mod_sofia@peer.invalid;transport=ws>`,
  ];
  if (auto) lines.push('Call-Info: <sip:peer.invalid>;answer-after=0');
  lines.push('Content-Type: application/sdp', `Content-Length: ${Buffer.byteLength(SDP)}`, '', SDP);
  peer.send(lines.join('\r\n'));
}

const out = { seen };
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/PhoneKit/demo.html?agent=1002`);
  const bar = page.frameLocator('#pbFrame');
  await bar.locator('#connText', { hasText: 'online' }).waitFor(WAIT);
  await bar.locator('#phoneType').selectOption('3');
  await bar.locator('#login').click();
  await bar.locator('#state', { hasText: 'Ready' }).waitFor(WAIT);
  await bar.locator('#webphone', { hasText: 'registered' }).waitFor(WAIT);
  out.agent = await page.evaluate(() => PhoneKit.state().agent);
  if (shots) await page.screenshot({ path: `${shots}/phonekit-webphone.png` });

  // A plain call rings the toolbar until the agent answers.
  const ring = page.waitForRequest(/\/PhoneKit\/res\/ring\.wav$/, WAIT);
  invite(1, false);
  await bar.locator('#webphone', { hasText: 'ringing' }).waitFor(WAIT);
  out.ringTone = (await ring).url();
  await bar.locator('#answer:enabled').click();
  await until(() => seen.answers.length === 1, 'the answer to the first INVITE');
  await bar.locator('#webphone', { hasText: /^WebPhone: registered$/ }).waitFor(WAIT);

  // A call asking for auto-answer is answered by itself.
  invite(2, true);
  await until(() => seen.answers.length === 2, 'the auto-answer');

  // Logout unregisters.
  await bar.locator('#logout').click();
  await bar.locator('#state', { hasText: 'Offline' }).waitFor(WAIT);
  await until(() => seen.registers.some((r) => r.expires === '0'), 'the unregister');
  out.errors = errors;
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ failed: String(e.message || e), so_far: out }));
  process.exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
