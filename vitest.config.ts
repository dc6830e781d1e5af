// Three projects, named for what they run:
//   unit         test/unit: pure code, the docs and the import graph (no server process)
//   integration  test/integration: real servers on loopback sockets, real files, a local etcd
//   docker       test/containers and test/infra: Docker (images, containers, compose) and infra files,
//                one file at a time because they share dockerd
// unit and integration run in parallel; docker after them (groupOrder): on a 2-core machine, container
// clusters starting beside the socket tests would turn their timing bounds into a measure of CPU
// contention. `npm test` (the README's test command, what CI runs) runs all three.
// Every run also writes a JSON report that .ci/run turns into its closing "N passed, M failed" line.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          sequence: { groupOrder: 0 },
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'docker',
          sequence: { groupOrder: 1 },
          include: ['test/containers/**/*.test.ts', 'test/infra/**/*.test.ts'],
          globalSetup: ['test/support/docker-global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
