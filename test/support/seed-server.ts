// The seed's own server (test/fixtures/seed-server/main_server.py, transcribed from the course report)
// run as a real process on a free loopback port. It shares no code with the product: it is the
// reference the client is held to.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const SEED_SERVER_PY = fileURLToPath(new URL('../fixtures/seed-server/main_server.py', import.meta.url));

export interface SeedServer {
  readonly port: number;
  readonly proc: ChildProcess;
  /** its exit code (0 after END; 1 when it crashed, as the original does on some input) */
  readonly exited: Promise<number | null>;
  /** everything it printed (its "request:" log and any traceback) */
  output(): string;
  /** how many connections it has read a request from */
  requests(): number;
  stop(): void;
}

export async function startSeedServer(): Promise<SeedServer> {
  const proc = spawn('python3', ['-u', SEED_SERVER_PY, '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const m = /ready to receive \(Host: 127\.0\.0\.1, Port: (\d+)\)/.exec(out);
      if (m) resolve(Number(m[1]));
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    void exited.then((code) => reject(new Error(`seed server exited with ${code} before listening:\n${out}`)));
  });
  return {
    port,
    proc,
    exited,
    output: () => out,
    requests: () => out.split('\nrequest:\n').length - 1,
    stop: () => void proc.kill('SIGKILL'),
  };
}
