// A separate client process for the watchers bench: opens N watch streams (GET /kv?watch&stream) on
// 127.0.0.1:PORT under PREFIX (at most 200 connecting at once), prints `ready <n>`, then every 250 ms
// `changes <total>`: the change lines all watchers have received so far. Runs until killed.
//
//   node bench/lib/hold-watchers.mjs PORT N PREFIX

import net from 'node:net';

const [port, total, prefix] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4] ?? 'w/'];
const request = Buffer.from(`GET /kv?watch&stream&prefix=${encodeURIComponent(prefix)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 'latin1');
let changes = 0;
const sockets = [];

function openOne() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let head = true;
    socket.once('error', reject);
    socket.once('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      const text = chunk.toString('latin1');
      if (head) {
        if (!text.startsWith('HTTP/1.1 200')) return reject(new Error(`unexpected answer: ${text.split('\r\n')[0]}`));
        head = false;
        resolve(socket);
      }
      // one change per `"key":` (keys and values in the bench never hold that text)
      for (let at = text.indexOf('"key":'); at >= 0; at = text.indexOf('"key":', at + 6)) changes++;
    });
  });
}

let next = 0;
async function worker() {
  while (next < total) {
    next++;
    sockets.push(await openOne());
  }
}
await Promise.all(Array.from({ length: Math.min(200, total) }, worker));
process.stdout.write(`ready ${sockets.length}\n`);
setInterval(() => process.stdout.write(`changes ${changes}\n`), 250);
