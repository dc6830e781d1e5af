// What a Node user would write instead of tcpkv: the same GET / POST /create / PUT /update semantics on
// node:http, idiomatic and reasonably efficient — keep-alive on (Node's default), no framework, the
// listing rendered once per write (as tcpkv does), Content-Length on every answer.
//
// Standard HTTP only: the seed dialect (`Host: 127.0.0.1/create`, `\r\n\n`) is tcpkv's business.
//
//   node bench/servers/node-http.mjs [--port 0] [--bind 127.0.0.1]
// prints one JSON line {"server":"node-http","port":N,"pid":P} once listening.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    bind: { type: 'string', default: '127.0.0.1' },
    // node:https with this certificate and key instead of node:http
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});

const TEXT = { 'Content-Type': 'text/plain; charset=utf-8' };
const ALLOWED_HOSTS = new Set(['127.0.0.1', 'localhost']);
const MAX_BODY_BYTES = 1024 * 1024;

/** key → value; a Map keeps insertion order and `set` on an existing key keeps its place. */
const db = new Map();
let listing = null; // Buffer, rendered on the first GET after a write

function renderListing() {
  if (listing === null) {
    let body = 'No data in DB';
    if (db.size > 0) {
      body = 'The data in DB is as follows.';
      for (const [key, value] of db) body += '\n' + key + ':' + value;
    }
    listing = Buffer.from(body, 'utf8');
  }
  return listing;
}

function send(res, status, body) {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, { ...TEXT, 'Content-Length': bytes.length });
  res.end(bytes);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `key: value&key2: value2` → pairs, or an error text. Split at the first `:`, trimmed. */
function parsePairs(body) {
  let text;
  try {
    text = utf8.decode(body);
  } catch {
    return { error: 'The body is not valid UTF-8.' };
  }
  if (text.trim() === '') return { error: 'There is no content. Please check' };
  const pairs = [];
  for (const part of text.split('&')) {
    const colon = part.indexOf(':');
    if (colon < 0) return { error: 'Key-value format is not valid.' };
    const key = part.slice(0, colon).trim();
    if (key === '') return { error: 'Key value does not exist or is blank.' };
    pairs.push([key, part.slice(colon + 1).trim()]);
  }
  return { pairs };
}

function create(res, body) {
  const parsed = parsePairs(body);
  if (parsed.error) return send(res, 400, parsed.error);
  const seen = new Set();
  for (const [key] of parsed.pairs) {
    if (seen.has(key) || db.has(key)) return send(res, 400, 'The key already exists!');
    seen.add(key);
  }
  let out = '';
  for (const [key, value] of parsed.pairs) {
    db.set(key, value);
    out += key + ':' + value + '\n';
  }
  listing = null;
  send(res, 200, out + 'Post Successfully OK');
}

function update(res, body) {
  const parsed = parsePairs(body);
  if (parsed.error) return send(res, 400, parsed.error);
  let updated = '';
  let created = '';
  for (const [key, value] of new Map(parsed.pairs)) {
    const old = db.get(key);
    if (old === undefined) created += '\n' + key + ': ' + value;
    else updated += '\n' + key + ': ' + old + ' => ' + value;
    db.set(key, value);
  }
  listing = null;
  let out = '';
  if (updated !== '') out += 'Update Data as follow:' + updated + '\n';
  if (created !== '') out += 'Update(New) Data as follow:' + created + '\n';
  send(res, 200, out + 'Update with new data Successfully OK');
}

/** `/create/?x` → `create`; `/` → `` */
function routeOf(url) {
  let end = url.length;
  const q = url.search(/[?#]/);
  if (q >= 0) end = q;
  let path = url.slice(url.startsWith('/') ? 1 : 0, end);
  if (path.endsWith('/')) path = path.slice(0, -1);
  return path;
}

function hostOf(header) {
  if (header === undefined) return '';
  if (header.startsWith('[')) return header.slice(0, header.indexOf(']') + 1);
  const colon = header.indexOf(':');
  return colon < 0 ? header : header.slice(0, colon);
}

const tlsOptions = opts['tls-cert'] !== undefined ? { cert: readFileSync(opts['tls-cert']), key: readFileSync(opts['tls-key']) } : undefined;
const handler = (req, res) => {
  const { method } = req;
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST' && method !== 'PUT') {
    res.setHeader('Allow', 'HEAD, GET, POST, PUT');
    return send(res, 405, 'Method not allowed');
  }
  const host = hostOf(req.headers.host);
  if (!ALLOWED_HOSTS.has(host)) return send(res, 400, `Not allowed host: ${host}`);
  const path = routeOf(req.url);
  if (path === 'create' && method !== 'POST') return send(res, 404, 'Select the appropriate method(Create mode => POST)');
  if (path === 'update' && method !== 'PUT') return send(res, 404, 'Select the appropriate method(Update mode => PUT)');
  if (method === 'GET' || method === 'HEAD') return send(res, 200, renderListing()); // node:http drops the body for HEAD
  if (path !== 'create' && path !== 'update') return send(res, 404, 'Not found: POST /create adds data, PUT /update changes it');

  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      res.setHeader('Connection', 'close');
      send(res, 413, 'Content too large');
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (res.headersSent) return;
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
    if (path === 'create') create(res, body);
    else update(res, body);
  });
};
const server = tlsOptions !== undefined ? https.createServer({ ...tlsOptions, keepAlive: true }, handler) : http.createServer({ keepAlive: true }, handler);

// tcpkv keeps idle keep-alive connections for 60 s (TCPKV_IDLE_TIMEOUT_MS); match it rather than
// Node's 5 s default, so the idle-connection memory figure compares like with like.
server.keepAliveTimeout = 60_000;
server.headersTimeout = 10_000;

server.listen(Number(opts.port), opts.bind, () => {
  const address = server.address();
  process.stdout.write(JSON.stringify({ server: 'node-http', port: address.port, pid: process.pid }) + '\n');
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
