// A Node client that speaks exactly what the OWT JavaScript SDK 5.1 speaks (SioSignaling, see
// /work/shared/reference/owt-js-client.md §2–§5), driven by the pytest suite over stdin/stdout.
//
// Commands: one JSON object per line on stdin, each with an optional "id" echoed in its result:
//   {"cmd": "join", "token": "<base64 token>", "io": {<extra io() options>}}
//   {"cmd": "text", "to": "all", "message": "hi"}
//   {"cmd": "refresh"}                     refreshReconnectionTicket
//   {"cmd": "logout"}
//   {"cmd": "emit", "event": "relogin", "payload": ...}   any request, acked (status, data)
//   {"cmd": "drop_transport"}              socket.io.engine.close(): the Manager reconnects, the SDK relogins
//   {"cmd": "state"}                       the stored ticket and connection state; "active": false once
//                                          socket.io-client will never reconnect (a server or client
//                                          disconnect), so no relogin can follow
// Output: one JSON object per line on stdout:
//   results  {"result": "<cmd>", "id": ..., "ok": bool, "status": ..., "data": ..., "error": ...}
//   events   {"event": "text"|"participant"|"stream"|"progress"|"drop", "data": ...}
//   session  {"event": "connect"|"disconnect"|"relogin"|"ticket"|"serverdisconnected", ...}
// The process exits when stdin closes, or after OWT_FLOW_MAX_SECONDS (default 120) in any case.

import readline from 'node:readline';
import {io} from 'socket.io-client';

const SDK_VERSION = '5.1';
const REQUEST_TIMEOUT_MS = Number(process.env.OWT_FLOW_REQUEST_TIMEOUT_MS || 10000);
const MAX_SECONDS = Number(process.env.OWT_FLOW_MAX_SECONDS || 120);

// --- the SDK's base64 decoder (src/sdk/base/base64.js, licode-derived) ---------------------------
// Characters outside the standard alphabet are skipped without error (so '-' and '_' of URL-safe
// base64 are silently lost), and the result is one Latin-1 char per byte.
const BASE64_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const REVERSE = Object.fromEntries([...BASE64_CHARS].map((c, i) => [c, i]));
const END_OF_INPUT = -1;

function sdkDecodeBase64(str) {
  let pos = 0;
  const next = () => {
    while (true) {
      if (pos >= str.length) return END_OF_INPUT;
      const c = str.charAt(pos);  // a non-string throws TypeError here, as in the SDK
      pos += 1;
      if (c in REVERSE) return REVERSE[c];
    }
  };
  let result = '';
  const buf = new Array(4);
  while ((buf[0] = next()) !== END_OF_INPUT && (buf[1] = next()) !== END_OF_INPUT) {
    buf[2] = next();
    buf[3] = next();
    result += String.fromCharCode(((buf[0] << 2) & 0xff) | (buf[1] >> 4));
    if (buf[2] === END_OF_INPUT) break;
    result += String.fromCharCode(((buf[1] << 4) & 0xff) | (buf[2] >> 2));
    if (buf[3] === END_OF_INPUT) break;
    result += String.fromCharCode(((buf[2] << 6) & 0xff) | buf[3]);
  }
  return result;
}

// --- output ------------------------------------------------------------------------------------
function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// --- the SioSignaling state ----------------------------------------------------------------------
let socket = null;
let loggedIn = false;
let reconnectionTicket = null;
let refreshTimer = null;
let reconnectTimes = 0;

function emitWithAck(event, ...payload) {
  // The SDK's send(): emit(name, payload, ack(status, data)); only 'ok'/'success' resolve.
  return new Promise((resolve) => {
    if (!socket) {
      resolve({ok: false, error: 'not joined'});
      return;
    }
    const timer = setTimeout(() => resolve({ok: false, error: 'timeout'}), REQUEST_TIMEOUT_MS);
    socket.emit(event, ...payload, (status, data) => {
      clearTimeout(timer);
      const ok = status === 'ok' || status === 'success';
      resolve({ok, status, data: data === undefined ? null : data, error: ok ? undefined : data});
    });
  });
}

function onReconnectionTicket(ticketString) {
  // signaling.js _onReconnectionTicket: store the raw string, decode, schedule the refresh.
  reconnectionTicket = ticketString;
  const ticket = JSON.parse(sdkDecodeBase64(ticketString));
  const now = Date.now();
  const millisecondsInOneMinute = 60 * 1000;
  const millisecondsInTenSeconds = 10 * 1000;
  if (ticket.notAfter <= now - millisecondsInTenSeconds) return ticket;
  let refreshAfter = ticket.notAfter - now - millisecondsInOneMinute;
  if (refreshAfter < 0) refreshAfter = ticket.notAfter - now - millisecondsInTenSeconds;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refresh('timer'), refreshAfter);
  out({event: 'ticket', ticket: ticketString, decoded: ticket, refreshInMs: refreshAfter});
  return ticket;
}

async function refresh(origin) {
  const res = await emitWithAck('refreshReconnectionTicket');
  if (res.ok) {
    res.decoded = decodeTicketSafely(res.data);
    if (typeof res.data === 'string') onReconnectionTicket(res.data);
  }
  if (origin === 'timer') out({event: 'refresh', ...res});
  return res;
}

function decodeTicketSafely(ticketString) {
  try {
    return JSON.parse(sdkDecodeBase64(ticketString));
  } catch (err) {
    return {decodeError: String(err)};
  }
}

function relogin() {
  // The SDK sends the stored ticket string and expects a bare ticket string back (§5.9).
  const sentTicket = reconnectionTicket;
  const timer = setTimeout(() => out({event: 'relogin', ok: false, error: 'timeout'}), REQUEST_TIMEOUT_MS);
  socket.emit('relogin', reconnectionTicket, (status, data) => {
    clearTimeout(timer);
    if (status !== 'ok') {
      out({event: 'relogin', ok: false, status, error: data === undefined ? null : data});
      out({event: 'serverdisconnected', reason: 'relogin failed'});
      return;
    }
    reconnectTimes = 0;
    if (typeof data !== 'string') {
      // The SDK would throw "base64Str.charAt is not a function" inside this callback.
      out({event: 'relogin', ok: false, status, error: 'relogin ack is not a ticket string', data});
      return;
    }
    const decoded = onReconnectionTicket(data);
    out({event: 'relogin', ok: true, status, ticketType: typeof data, ticket: data, decoded, sentTicket});
  });
}

function join(cmd) {
  return new Promise((resolve) => {
    let token;
    try {
      token = JSON.parse(sdkDecodeBase64(cmd.token));
    } catch (err) {
      resolve({ok: false, error: `token decode failed: ${err}`});
      return;
    }
    if (typeof token.host !== 'string') {
      resolve({ok: false, error: 'Invalid host.'});
      return;
    }
    const url = token.host.indexOf('http') === -1 ? (token.secure === true ? 'https://' : 'http://') + token.host : token.host;
    socket = io(url, {reconnection: true, reconnectionAttempts: 10, 'force new connection': true, ...(cmd.io || {})});
    for (const name of ['participant', 'text', 'stream', 'progress']) {
      socket.on(name, (data) => out({event: name, data: data === undefined ? null : data}));
    }
    socket.on('drop', () => {
      reconnectTimes = 10;
      out({event: 'drop'});
    });
    socket.on('disconnect', (reason) => {
      clearTimeout(refreshTimer);
      out({event: 'disconnect', reason});
      if (reconnectTimes >= 10) {
        loggedIn = false;
        out({event: 'serverdisconnected', reason});
      }
    });
    socket.on('connect_error', (err) => out({event: 'connect_error', error: String(err && err.message)}));
    socket.io.on('reconnect_attempt', (n) => out({event: 'reconnect_attempt', attempt: n}));
    socket.io.on('reconnect_failed', () => out({event: 'reconnect_failed'}));
    const timer = setTimeout(() => resolve({ok: false, error: 'timeout', url}), REQUEST_TIMEOUT_MS);
    // Emitted right after io(), before the connection is up: socket.io-client buffers it.
    socket.emit('login', {token: cmd.token, userAgent: {sdk: {version: SDK_VERSION, type: 'JavaScript'}}, protocol: '1.2'},
        (status, data) => {
          clearTimeout(timer);
          if (status !== 'ok') {
            resolve({ok: false, status, error: data === undefined ? null : data, url});
            return;
          }
          let decoded = null;
          try {
            decoded = onReconnectionTicket(data.reconnectionTicket);
          } catch (err) {
            resolve({ok: false, status, error: `reconnection ticket decode failed: ${err}`, data});
            return;
          }
          loggedIn = true;
          // Registered only after a successful login: only *re*connections relogin.
          socket.on('connect', () => {
            out({event: 'connect', id: socket.id});
            if (loggedIn) relogin();
          });
          resolve({ok: true, status, data, ticket: decoded, url});
        });
  });
}

async function logout() {
  const res = await emitWithAck('logout');
  reconnectTimes = 10;
  if (socket) socket.disconnect();
  return res;
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case 'join':
      return join(cmd);
    case 'text':
      return emitWithAck('text', {to: cmd.to, message: cmd.message});
    case 'refresh':
      return refresh('command');
    case 'logout':
      return logout();
    case 'emit':
      return cmd.payload === undefined ? emitWithAck(cmd.event) : emitWithAck(cmd.event, cmd.payload);
    case 'drop_transport':
      if (!socket) return {ok: false, error: 'not joined'};
      socket.io.engine.close();
      return {ok: true};
    case 'state':
      return {ok: true, data: {connected: Boolean(socket && socket.connected), active: Boolean(socket && socket.active),
        loggedIn, ticket: reconnectionTicket,
        decoded: reconnectionTicket ? decodeTicketSafely(reconnectionTicket) : null}};
    default:
      return {ok: false, error: `unknown command ${cmd.cmd}`};
  }
}

function shutdown(code) {
  clearTimeout(refreshTimer);
  if (socket) socket.disconnect();
  process.exit(code);
}

const watchdog = setTimeout(() => {
  out({event: 'watchdog', error: `still running after ${MAX_SECONDS} s`});
  shutdown(2);
}, MAX_SECONDS * 1000);
watchdog.unref();

process.on('uncaughtException', (err) => {
  out({event: 'uncaught', error: String(err && err.stack || err)});
  shutdown(3);
});

const lines = readline.createInterface({input: process.stdin});
lines.on('line', async (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    out({result: 'parse', ok: false, error: String(err)});
    return;
  }
  let res;
  try {
    res = await handle(cmd);
  } catch (err) {
    res = {ok: false, error: String(err && err.stack || err)};
  }
  out({result: cmd.cmd, id: cmd.id === undefined ? null : cmd.id, ...res});
});
lines.on('close', () => shutdown(0));
out({event: 'ready', node: process.versions.node});
