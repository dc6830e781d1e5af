// Issue 4 (e) and acceptance 3: `docker stop` sends SIGTERM to node (PID 1, exec-form entrypoint),
// the server shuts down gracefully and the container exits 0 well before the kill timeout. With a
// named volume on /data (the image's TCPKV_DATA_DIR, the append-only log), the data survives a
// restart of the container and a new container on the same volume.

import type { StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DockerResources,
  NODE_UID,
  SERVER_PORT,
  containerLogs,
  docker,
  dockerOk,
  inspectState,
  parseResponse,
  publishedPort,
  seedRequest,
  sendOnce,
  startServer,
} from '../support/docker.js';

/**
 * Waits for one more "listening" line than the container's log already holds: its restart is up.
 * (Not `docker logs --since`: it counts whole seconds, and a stop as quick as ours lets the first
 * start's line fall in the same second as the restart.)
 */
async function listeningLines(id: string): Promise<number> {
  const logs = (await docker(['logs', id])).stdout;
  return logs.split('"msg":"listening"').length - 1;
}

async function waitListening(id: string, before: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await listeningLines(id)) > before) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server ${id} did not log "listening" again`);
}

describe('docker stop and the /data volume', () => {
  const res = new DockerResources();
  let volume: string;
  let server: StartedTestContainer;

  beforeAll(async () => {
    volume = await res.createVolume('tcpkv-test-data');
    server = await startServer({ publish: true, dataVolume: volume, resources: res });
  });
  afterAll(async () => {
    await res.cleanup();
  });

  it('docker stop → graceful shutdown, exit code 0, well within the stop timeout', async () => {
    const port = server.getMappedPort(SERVER_PORT);
    const created = parseResponse(await sendOnce(port, seedRequest('POST', '127.0.0.1/create', 'name: tcpkv&kind: durable')));
    expect(created.status).toBe(200);

    const t0 = Date.now();
    await dockerOk(['stop', '--time', '10', server.getId()], { timeoutMs: 30_000 });
    const elapsed = Date.now() - t0;
    const state = await inspectState(server.getId());
    expect(state.Running).toBe(false);
    expect(state.OOMKilled).toBe(false);
    expect(state.ExitCode, await containerLogs(server.getId())).toBe(0);
    expect(elapsed).toBeLessThan(8_000); // exit code 0 and not the 10 s SIGKILL
  });

  it('the volume keeps /data (owned by uid 1000) across a restart of the container', async () => {
    const before = await listeningLines(server.getId());
    await dockerOk(['start', server.getId()]);
    await waitListening(server.getId(), before);
    const port = await publishedPort(server.getId());

    const owner = await dockerOk(['exec', server.getId(), 'stat', '-c', '%u', '/data']);
    expect(Number(owner)).toBe(NODE_UID);
    const mounts = await dockerOk(['inspect', '--format', '{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Destination}} {{end}}', server.getId()]);
    expect(mounts).toContain(`volume:${volume}:/data`);

    const listing = parseResponse(await sendOnce(port, seedRequest('GET', '127.0.0.1/')));
    expect(listing.status).toBe(200);
    expect(listing.body).toContain('name:tcpkv');
    expect(listing.body).toContain('kind:durable');
    // the log the server wrote belongs to the node user
    const files = await dockerOk(['exec', server.getId(), 'sh', '-c', 'find /data -mindepth 1 ! -user 1000 | head -5; ls -A /data | wc -l']);
    const lines = files.split('\n').filter(Boolean);
    expect(lines.slice(0, -1), 'files in /data not owned by uid 1000').toEqual([]);
    expect(Number(lines.at(-1))).toBeGreaterThan(0);
    await dockerOk(['stop', '--time', '10', server.getId()], { timeoutMs: 30_000 });
    expect((await inspectState(server.getId())).ExitCode).toBe(0);
  });

  it('a new container (an upgrade) on the same volume serves the same data', async () => {
    const next = await startServer({ publish: true, dataVolume: volume, resources: res });
    const listing = parseResponse(await sendOnce(next.getMappedPort(SERVER_PORT), seedRequest('GET', '127.0.0.1/')));
    expect(listing.status).toBe(200);
    expect(listing.body).toContain('name:tcpkv');
    expect(listing.body).toContain('kind:durable');
    await dockerOk(['stop', '--time', '10', next.getId()], { timeoutMs: 30_000 });
    expect((await inspectState(next.getId())).ExitCode).toBe(0);
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
