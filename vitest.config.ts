// Two projects: fast tests on loopback sockets and real files (run in parallel), and tests that drive
// Docker (images, containers, compose) or infra files, run one file at a time because they share dockerd.
// The groups run one after the other (groupOrder): on a 2-core machine, container clusters starting
// beside the socket tests would turn their timing bounds into a measure of CPU contention.
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
          include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'],
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
