/*!
 * PhoneKit — the voicepaas agent SDK (window.PhoneKit). One agent's socket to the platform:
 * sign in, commands, events, reconnect with resume, the WebPhone (JsSIP) and the toolbar
 * (an iframe with id "pbFrame", driven over postMessage). No dependencies; JsSIP only for
 * the WebPhone. Works served by the platform or copied to your own site.
 */
(function (global) {
  'use strict';

  /** Every command of the agent socket; each is also a PhoneKit method of the same name. */
  var COMMANDS = [
    'login', 'logout', 'ready', 'pause', 'callOut', 'answer', 'bridge', 'hangup', 'holdCall',
    'retrieveCall', 'transfer', 'consult', 'consultTransfer', 'consultConference',
    'cancelConsult', 'setUserData', 'sendDtmf', 'getState', 'ping', 'monitor', 'whisper',
    'barge', 'intercept', 'forceHangup', 'forceReady', 'forcePause', 'forceLogout',
    'monitorQueues', 'unmonitorQueues'
  ];
  /** Commands without params: `method(cb)`; the others are `method(params, cb)`. */
  var NO_PARAMS = {
    logout: 1, ready: 1, bridge: 1, answer: 1, hangup: 1, holdCall: 1, retrieveCall: 1,
    consultTransfer: 1, consultConference: 1, cancelConsult: 1, getState: 1, ping: 1,
    unmonitorQueues: 1
  };
  var BACKOFF = [1, 2, 4, 8, 16, 30];
  var PING_EVERY_MS = 20000;
  var NOT_CONNECTED = { statusCode: '20114', statusMsg: 'not connected to the platform', data: {} };

  var me = null; // the one live instance (PhoneKit serves one agent per page)

  function noop() {}
  function now() { return Date.now(); }
  function copy(o) { return JSON.parse(JSON.stringify(o)); }

  /** Where the bundled files are: next to this script (…/PhoneKit/js/PhoneKit.js). */
  var scriptBase = (function () {
    var s = document.currentScript && document.currentScript.src;
    return s ? s.replace(/js\/PhoneKit\.js(\?.*)?$/, '') : '/PhoneKit/';
  })();

  /** The socket URL of `opts`: `url` may be http(s):// or ws(s)://. */
  function socketUrl(opts) {
    var base = String(opts.url || global.location.origin).replace(/\/+$/, '');
    base = base.replace(/^http/i, 'ws');
    var q = 'agentNo=' + encodeURIComponent(opts.agentNo);
    if (opts.events) q += '&events=' + encodeURIComponent(opts.events);
    return base + '/v1/Applications/' + encodeURIComponent(opts.appSid) + '/cti?' + q;
  }

  function Kit(opts, callback) {
    this.opts = opts;
    this.firstCallback = callback || noop;
    this.nextId = 1;
    this.pending = {};
    this.ws = null;
    this.authed = false;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.token = opts.token || null;
    this.state = {
      conn: 'connecting', agent: null, sessionSid: '', lastSeq: 0,
      workStatus: 'offline', pauseCause: '', since: now(), wrapupUntil: 0,
      agentState: 'offline', calls: {}, queues: {}, webphone: 'off'
    };
    this.phone = null;
    this.ringing = null;
    this.frame = null;
    this.connect();
  }

  Kit.prototype.emitConn = function (what) {
    this.state.conn = what;
    (this.opts.onConnEvent || noop)(what);
    this.publish();
  };

  Kit.prototype.connect = function () {
    var self = this;
    if (self.stopped) return;
    var ready = self.opts.tokenProvider
      ? Promise.resolve().then(function () { return self.opts.tokenProvider(); })
      : Promise.resolve(self.token);
    ready.then(function (token) {
      if (self.stopped) return;
      self.token = token || null;
      self.open();
    }, function () {
      self.emitConn('connect_fail');
      self.retry();
    });
  };

  Kit.prototype.open = function () {
    var self = this;
    var opened = false;
    var ws;
    try {
      ws = new WebSocket(socketUrl(self.opts));
    } catch (e) {
      self.emitConn('connect_fail');
      self.retry();
      return;
    }
    self.ws = ws;
    ws.onopen = function () {
      opened = true;
      self.emitConn('connected');
      self.auth();
    };
    ws.onmessage = function (m) { self.receive(m.data); };
    ws.onclose = function () {
      if (self.ws !== ws) return;
      self.ws = null;
      self.authed = false;
      clearInterval(self.pinger);
      self.failPending();
      if (self.stopped) return;
      self.emitConn(opened ? 'disconnected' : 'connect_fail');
      self.retry();
    };
  };

  /** Reconnects after 1, 2, 4, 8, 16, 30 s (±20 %), then every 30 s. */
  Kit.prototype.retry = function () {
    var self = this;
    if (self.stopped) return;
    var base = BACKOFF[Math.min(self.attempt, BACKOFF.length - 1)];
    self.attempt += 1;
    var ms = base * 1000 * (0.8 + Math.random() * 0.4);
    clearTimeout(self.timer);
    self.timer = setTimeout(function () { self.connect(); }, ms);
  };

  Kit.prototype.auth = function () {
    var self = this;
    var p = {};
    if (self.token) p.token = self.token; else p.pwd = self.opts.pwd;
    if (String(self.opts.encryptNumber) === 'true') p.encryptNumber = 'true';
    if (self.state.sessionSid) {
      p.sessionSid = self.state.sessionSid;
      p.lastSeq = String(self.state.lastSeq);
    }
    self.request('auth', p, function (resp) {
      if (resp.statusCode !== '00000') {
        var failedToken = self.token;
        self.emitConn('auth_fail');
        if (self.opts.tokenProvider) {
          // A fresh token may do: ask once more, stop if it is the same.
          Promise.resolve(self.opts.tokenProvider()).then(function (t) {
            if (t && t !== failedToken) { self.token = t; self.retry(); } else { self.stop(); }
          }, function () { self.stop(); });
        } else {
          self.stop();
        }
        if (self.firstCallback) { self.firstCallback(resp); self.firstCallback = null; }
        return;
      }
      self.authed = true;
      self.attempt = 0;
      var d = resp.data || {};
      self.state.agent = d;
      if (d.resumed !== '1') {
        self.state.sessionSid = d.sessionSid || '';
        self.state.lastSeq = Number(d.lastSeq || 0);
      }
      self.pinger = setInterval(function () { self.request('ping', {}, noop); }, PING_EVERY_MS);
      self.emitConn('auth_succ');
      if (self.firstCallback) { self.firstCallback(resp); self.firstCallback = null; }
      self.refresh();
      if (Object.keys(self.state.queues).length) self.request('monitorQueues', { queueSids: Object.keys(self.state.queues) }, function (r) { self.tookQueues(r); });
    }, true);
  };

  /** Reads the agent's state and calls again (after every sign-in or resume). */
  Kit.prototype.refresh = function () {
    var self = this;
    self.request('getState', {}, function (r) {
      if (r.statusCode !== '00000') return;
      var d = r.data;
      var st = self.state;
      if (d.agentState !== st.agentState) st.since = now();
      st.workStatus = d.workStatus;
      st.pauseCause = d.pauseCause || '';
      st.agentState = d.agentState;
      if (d.sessionSid) st.sessionSid = d.sessionSid;
      st.calls = {};
      (d.calls || []).forEach(function (c) { c.since = now(); st.calls[c.callSid] = c; });
      if (st.agent) st.agent.phoneType = d.phoneType;
      self.publish();
    });
  };

  Kit.prototype.request = function (cmd, params, cb, beforeAuth) {
    if (!this.ws || this.ws.readyState !== 1 || (!this.authed && !beforeAuth)) {
      (cb || noop)(copy(NOT_CONNECTED));
      return;
    }
    var id = this.nextId++;
    this.pending[id] = cb || noop;
    this.ws.send(JSON.stringify({ id: id, cmd: cmd, params: params || {} }));
  };

  Kit.prototype.failPending = function () {
    var pending = this.pending;
    this.pending = {};
    Object.keys(pending).forEach(function (id) { pending[id](copy(NOT_CONNECTED)); });
  };

  Kit.prototype.receive = function (text) {
    var f;
    try { f = JSON.parse(text); } catch (e) { return; }
    if (f.id !== undefined && f.statusCode !== undefined) {
      var cb = this.pending[f.id];
      delete this.pending[f.id];
      if (cb) cb({ statusCode: f.statusCode, statusMsg: f.statusMsg, data: f.data || {} });
      return;
    }
    if (typeof f.seq === 'number') {
      if (f.seq <= this.state.lastSeq && this.state.sessionSid) return;
      this.state.lastSeq = f.seq;
    }
    var d = f.data || {};
    switch (f.type) {
      case 'statusEvent': this.onStatus(d); (this.opts.onStatusEvent || noop)(d); break;
      case 'callEvent': this.onCall(d); (this.opts.onCallEvent || noop)(d); break;
      case 'queueEvent': this.onQueue(d); (this.opts.onQueueEvent || noop)(d); break;
      case 'connEvent':
        if (d.connEvent === 'kicked_out') { this.stop(); this.emitConn('kicked_out'); }
        break;
      default: break;
    }
    this.publish();
  };

  Kit.prototype.onStatus = function (d) {
    var st = this.state;
    var before = st.agentState;
    if (d.sessionSid) st.sessionSid = d.sessionSid;
    st.workStatus = d.workStatus;
    st.pauseCause = d.pauseCause || '';
    st.wrapupUntil = d.eventName === 'completed' && d.wrapupTime ? now() + Number(d.wrapupTime) * 1000 : 0;
    if (d.eventName === 'logout') {
      st.calls = {};
      st.sessionSid = '';
      st.lastSeq = 0;
      this.webphoneOff();
    }
    if (d.eventName === 'login' && st.agent) st.agent.phoneType = d.phoneType;
    st.agentState = this.derive(d.eventName === 'completed');
    if (st.agentState !== before) st.since = now();
  };

  Kit.prototype.onCall = function (d) {
    var st = this.state;
    var before = st.agentState;
    if (d.eventName === 'completed' || d.eventName === 'failed') {
      delete st.calls[d.callSid];
    } else {
      var c = st.calls[d.callSid] || { since: now() };
      if (d.eventName === 'answered' && c.callState !== 'connected' && c.callState !== 'held') c.since = now();
      ['conversationSid', 'callSid', 'callType', 'callSubtype', 'callState', 'userNumber', 'isBridged',
        'coAgentNo', 'queueSid', 'userData', 'monitorMode', 'agentNumber', 'didNumber'].forEach(function (k) {
        if (d[k] !== undefined) c[k] = d[k];
      });
      st.calls[d.callSid] = c;
    }
    st.agentState = this.derive(false);
    if (st.agentState !== before) st.since = now();
  };

  /** agentState from what the events said: a call rings or talks, else the work status. */
  Kit.prototype.derive = function (wrapupStarts) {
    var st = this.state;
    if (st.workStatus === 'offline') return 'offline';
    var calls = Object.keys(st.calls).map(function (k) { return st.calls[k]; });
    if (calls.length) {
      var talking = calls.some(function (c) { return c.callState === 'connected' || c.callState === 'held'; });
      var bridged = calls.some(function (c) { return c.isBridged === '1' || c.callState === 'held'; });
      return talking && bridged ? 'talking' : 'ringing';
    }
    if (wrapupStarts || (st.agentState === 'wrapup' && st.pauseCause === 'wrapup')) return 'wrapup';
    return st.workStatus;
  };

  Kit.prototype.onQueue = function (d) {
    var q = this.state.queues[d.queueSid];
    if (!q) return;
    ['waitingCount', 'longestWaitSeconds', 'agentsReady', 'agentsBusy', 'agentsPaused', 'agentsWrapup',
      'agentsOffline'].forEach(function (k) { if (d[k] !== undefined) q[k] = d[k]; });
    if (d.eventName === 'agentState' && d.agentNo) {
      var a = q.agents.filter(function (x) { return x.agentNo === d.agentNo; })[0];
      if (!a) { a = { agentNo: d.agentNo }; q.agents.push(a); }
      a.agentState = d.agentState;
      a.pauseCause = d.pauseCause || '';
      a.since = d.timestamp;
    }
  };

  Kit.prototype.tookQueues = function (r) {
    if (r.statusCode !== '00000') return;
    var self = this;
    (r.data.queues || []).forEach(function (q) {
      q.agents = q.agents || [];
      self.state.queues[q.queueSid] = q;
    });
    self.publish();
  };

  // ---- the WebPhone (phoneType 3): JsSIP registered over wsAddr while logged in ----

  Kit.prototype.webphoneOn = function (d) {
    var self = this;
    var JsSIP = global.JsSIP;
    self.webphoneOff();
    if (!d || String(d.phoneType) !== '3' || !d.wsAddr) return;
    if (!JsSIP) { self.state.webphone = 'no JsSIP on this page'; self.publish(); return; }
    var socket = new JsSIP.WebSocketInterface(d.wsAddr);
    var ua = new JsSIP.UA({
      sockets: [socket],
      uri: 'sip:' + d.sipNumber + '@' + d.sipDomain,
      password: d.sipPwd,
      register: true,
      session_timers: false
    });
    self.phone = ua;
    self.state.webphone = 'registering';
    ua.on('registered', function () { self.state.webphone = 'registered'; self.publish(); });
    ua.on('unregistered', function () { if (self.phone === ua) { self.state.webphone = 'unregistered'; self.publish(); } });
    ua.on('registrationFailed', function (e) { self.state.webphone = 'registration failed: ' + (e.cause || ''); self.publish(); });
    ua.on('newRTCSession', function (e) {
      if (e.originator !== 'remote') return;
      var session = e.session;
      self.session = session;
      var info = (e.request.getHeader('Call-Info') || '') + ' ' + (e.request.getHeader('Alert-Info') || '');
      var auto = /answer-after=0|auto[-_]?answer/i.test(info);
      var stopRing = function () { self.ring(false); self.state.webphone = 'registered'; self.publish(); };
      session.on('accepted', stopRing);
      session.on('ended', function () { stopRing(); self.session = null; });
      session.on('failed', function () { stopRing(); self.session = null; });
      if (auto) {
        self.answerLocal();
      } else {
        self.state.webphone = 'ringing';
        self.ring(true);
        self.publish();
      }
    });
    ua.start();
  };

  Kit.prototype.answerLocal = function () {
    var s = this.session;
    if (!s || !s.isInProgress()) return false;
    s.answer({ mediaConstraints: { audio: true, video: false } });
    return true;
  };

  Kit.prototype.webphoneOff = function () {
    var ua = this.phone;
    this.phone = null;
    this.ring(false);
    if (ua) { try { ua.unregister({ all: false }); ua.stop(); } catch (e) { /* already gone */ } }
    this.state.webphone = 'off';
  };

  Kit.prototype.ring = function (on) {
    if (on) {
      if (!this.ringing) {
        this.ringing = new Audio(scriptBase + 'res/ring.wav');
        this.ringing.loop = true;
      }
      var p = this.ringing.play();
      if (p && p.catch) p.catch(noop);
    } else if (this.ringing) {
      this.ringing.pause();
      this.ringing.currentTime = 0;
    }
  };

  // ---- the toolbar: the iframe "pbFrame" shows `state` and sends back commands ----

  Kit.prototype.publish = function () {
    var frame = document.getElementById('pbFrame');
    if (!frame || !frame.contentWindow) return;
    if (!this.frame) {
      this.frame = frame;
      frame.contentWindow.postMessage({ phoneKit: 'hello' }, '*');
    }
    var view = copy(this.state);
    view.masked = String(this.opts.encryptNumber) === 'true';
    view.sent = now();
    frame.contentWindow.postMessage({ phoneKit: 'state', state: view }, '*');
  };

  Kit.prototype.fromToolbar = function (ev) {
    var frame = document.getElementById('pbFrame');
    if (!frame || ev.source !== frame.contentWindow || !ev.data || !ev.data.phoneKitBar) return;
    var msg = ev.data;
    var self = this;
    if (msg.phoneKitBar === 'ready') { self.frame = null; self.publish(); return; }
    if (msg.phoneKitBar === 'height') {
      var h = Number(msg.height);
      if (h > 0 && h < 5000) frame.style.height = h + 'px';
      return;
    }
    if (msg.phoneKitBar !== 'command' || COMMANDS.indexOf(msg.cmd) < 0) return;
    var done = function (resp) {
      frame.contentWindow.postMessage({ phoneKit: 'reply', ref: msg.ref, cmd: msg.cmd, resp: resp }, '*');
    };
    global.PhoneKit[msg.cmd].apply(null, NO_PARAMS[msg.cmd] ? [done] : [msg.params || {}, done]);
  };

  Kit.prototype.stop = function () {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    var ws = this.ws;
    this.ws = null;
    this.authed = false;
    this.failPending();
    if (ws) { try { ws.close(1000); } catch (e) { /* closed */ } }
    this.state.conn = 'stopped';
    this.publish();
  };

  // ---- the API ----

  var PhoneKit = {
    /** Connects and signs in the agent; `callback(resp)` gets the auth reply. */
    initial: function (params, callback) {
      if (me) me.destroyAll();
      me = new Kit(params || {}, callback);
      return PhoneKit;
    },
    /** Disconnects for good (no reconnect), unregistering the WebPhone. */
    destroy: function () { if (me) me.destroyAll(); me = null; },
    /** A copy of what PhoneKit knows: connection, agent, work status, calls, queues. */
    state: function () { return me ? copy(me.state) : null; }
  };

  Kit.prototype.destroyAll = function () { this.webphoneOff(); this.stop(); };

  COMMANDS.forEach(function (cmd) {
    PhoneKit[cmd] = function (a, b) {
      var params = NO_PARAMS[cmd] ? {} : (a || {});
      var cb = (NO_PARAMS[cmd] ? a : b) || noop;
      if (!me) { cb(copy(NOT_CONNECTED)); return; }
      // A ringing WebPhone call is answered here; the platform hears it from the phone.
      if (cmd === 'answer' && me.answerLocal()) {
        cb({ statusCode: '00000', statusMsg: 'success', data: {} });
        return;
      }
      me.request(cmd, params, function (resp) {
        if (resp.statusCode === '00000') {
          if (cmd === 'login') {
            me.state.agent = Object.assign(me.state.agent || {}, resp.data);
            if (resp.data.sessionSid) me.state.sessionSid = resp.data.sessionSid;
            me.webphoneOn(resp.data);
          }
          if (cmd === 'logout') me.webphoneOff();
          if (cmd === 'monitorQueues') me.tookQueues(resp);
          if (cmd === 'unmonitorQueues') me.state.queues = {};
          me.publish();
        }
        cb(resp);
      });
    };
  });

  global.addEventListener('message', function (ev) { if (me) me.fromToolbar(ev); });
  global.PhoneKit = PhoneKit;
})(window);
