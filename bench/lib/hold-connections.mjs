// A separate client process for the idle-connection memory figure: opens N keep-alive connections to
// 127.0.0.1:PORT (at most 200 connecting at once), sends one GET on each and reads its answer, then
// prints `ready <n>` and holds them all idle until it is killed.
//
//   node bench/lib/hold-connections.mjs PORT N

import net from 'node:net';

const port = Number(process.argv[2]);
const total = Number(process.argv[3]);
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'latin1');
const sockets = [];

function openOne() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    const timer = setTimeout(() => reject(new Error('no answer in 10 s')), 10_000);
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('connect', () => socket.write(REQUEST));
    const onData = (chunk) => {
      got += chunk.toString('latin1');
      // the answer is small and has a Content-Length: done once the body is in
      const end = got.indexOf('\r\n\r\n');
      const m = /content-length:\s*(\d+)/i.exec(got);
      if (end >= 0 && m && got.length >= end + 4 + Number(m[1])) {
        clearTimeout(timer);
        socket.off('data', onData);
        if (!got.startsWith('HTTP/1.1 200')) return reject(new Error(`unexpected answer: ${got.split('\r\n')[0]}`));
        resolve(socket);
      }
    };
    socket.on('data', onData);
  });
}

let next = 0;
async function worker() {
  while (next < total) {
    next++;
    const socket = await openOne();
    socket.on('close', () => {
      process.stderr.write('a held connection was closed by the server\n');
      process.exit(3);
    });
    sockets.push(socket);
  }
}

try {
  await Promise.all(Array.from({ length: Math.min(200, total) }, worker));
  process.stdout.write(`ready ${sockets.length}\n`);
} catch (error) {
  process.stderr.write(`hold-connections: ${error.message} after ${sockets.length} connections\n`);
  process.exit(2);
}
setInterval(() => {}, 1 << 30);
process.once('SIGTERM', () => process.exit(0));
