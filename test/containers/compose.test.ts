// Issue 4 (c) and acceptance 2: docker-compose.yml, brought up (1) by testcontainers'
// DockerComposeEnvironment and (2) exactly as the README says, `up --build --abort-on-container-exit
// --exit-code-from client`. The client waits for the healthy server, prints the scenario table, its
// END with the shared token stops the server (exit 0), and the client exits 0.
// compose v1 (docker-compose) is all there is here, hence the standalone executable option; with
// compose v2 installed (and no v1), the plugin is used.

import { DockerComposeEnvironment, type StartedDockerComposeEnvironment } from 'testcontainers';
import { afterAll, describe, expect, inject, it } from 'vitest';
import {
  DockerResources,
  REPO_ROOT,
  StoppedStartupCheck,
  composeCommand,
  containerLogs,
  dockerOk,
  runStreaming,
  uniqueName,
  waitForExit,
} from '../support/docker.js';

const TOKEN = 'compose-test-token';

/** The id of a compose service's container (running or exited). */
async function serviceContainer(project: string, service: string): Promise<string> {
  const ids = (await dockerOk(['ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`]))
    .split(/\s+/)
    .filter(Boolean);
  expect(ids, `containers of ${project}/${service}`).toHaveLength(1);
  return ids[0]!;
}

describe('docker-compose.yml', () => {
  const res = new DockerResources();
  const { standalone, cmd, pre } = composeCommand();
  let environment: StartedDockerComposeEnvironment | undefined;

  afterAll(async () => {
    await environment?.down({ removeVolumes: true, timeout: 0 }).catch(() => undefined);
    await res.cleanup();
  });

  it('DockerComposeEnvironment: the client exits 0 with the scenario table, END stops the server with exit 0', async () => {
    const project = uniqueName('tcpkvtest');
    res.addComposeProject(project);
    let compose = new DockerComposeEnvironment(REPO_ROOT, 'docker-compose.yml')
      .withProjectName(project)
      .withBuild()
      .withEnvironment({ NODE_IMAGE: inject('tcpkvNodeImage'), TCPKV_SHUTDOWN_TOKEN: TOKEN })
      // `up -d` returns once the server is healthy and the client started; then wait for both to finish.
      .withDefaultWaitStrategy(new StoppedStartupCheck())
      .withStartupTimeout(120_000);
    if (standalone) compose = compose.withClientOptions({ executable: { standalone: true } });
    environment = await compose.up();

    const client = await serviceContainer(project, 'client');
    const server = await serviceContainer(project, 'server');
    const clientExit = await waitForExit(client, 60_000);
    const output = await containerLogs(client);
    expect(clientExit, output).toBe(0);
    expect(output).toMatch(/#\s+request\s+expected\s+got\s+result/);
    expect(output).toMatch(/16\/16 cases passed/);
    expect(output).not.toMatch(/\bFAIL\b/);
    expect(await waitForExit(server, 30_000)).toBe(0);
    expect(await dockerOk(['inspect', '--format', '{{.Config.User}}', server])).toBe('node');
    expect(await dockerOk(['inspect', '--format', '{{.Config.User}}', client])).toBe('node');

    await environment.down({ removeVolumes: true, timeout: 0 });
    environment = undefined;
  });

  it('`up --build --abort-on-container-exit --exit-code-from client` exits 0 and shows the table', async () => {
    const project = uniqueName('tcpkvtest');
    res.addComposeProject(project);
    const env = { ...process.env, NODE_IMAGE: inject('tcpkvNodeImage'), TCPKV_SHUTDOWN_TOKEN: TOKEN };
    let output = '';
    try {
      const code = await runStreaming(
        cmd,
        [...pre, '-p', project, '-f', 'docker-compose.yml', 'up', '--build', '--abort-on-container-exit', '--exit-code-from', 'client'],
        { cwd: REPO_ROOT, env, onOutput: (chunk) => (output += chunk) },
      );
      expect(code, output).toBe(0);
      expect(output).toMatch(/16\/16 cases passed/);
      expect(output).toMatch(/PASS/);
    } finally {
      await runStreaming(cmd, [...pre, '-p', project, '-f', 'docker-compose.yml', 'down', '-v', '--timeout', '0'], { cwd: REPO_ROOT, env });
    }
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
