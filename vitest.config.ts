import { playwright } from '@vitest/browser-playwright';
import { defineConfig, mergeConfig } from 'vitest/config';
import viteConfig from './vite.config.ts';

const long = process.env.STRATADISK_LONG === '1';

/** Debian's Chromium (installed by .ci/setup-system.sh); Playwright downloads nothing here. */
export const chromiumLaunch = {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};

export default mergeConfig(
  { ...viteConfig, root: '.' },
  defineConfig({
    test: {
      projects: [
        {
          extends: true,
          test: {
            name: 'node',
            environment: 'node',
            include: ['test/node/**/*.test.ts'],
            testTimeout: long ? 3_600_000 : 120_000,
            hookTimeout: 120_000,
            pool: 'forks',
          },
        },
        {
          // Playwright drives Debian's Chromium against the demo served by vite (test/e2e/harness.ts).
          extends: true,
          test: {
            name: 'e2e',
            environment: 'node',
            include: ['test/e2e/**/*.test.ts'],
            testTimeout: 180_000,
            hookTimeout: 180_000,
            pool: 'forks',
            fileParallelism: false,
          },
        },
        {
          extends: true,
          test: {
            name: 'browser',
            include: ['test/browser/**/*.test.ts'],
            // Local image servers for the copy-on-read tests (test/browser/remote).
            // The edge boot benchmark's servers (test/browser/bench; only in npm run bench:browser).
            // A replica WebSocket server (test/browser/replication/websocket.test.ts).
            globalSetup: ['test/browser/remote/servers.global.ts', 'test/browser/jobs/store-server.global.ts', 'test/browser/bench/edge-boot.global.ts', 'test/browser/replication/ws-server.global.ts'],
            testTimeout: long ? 3_600_000 : 120_000,
            hookTimeout: 120_000,
            browser: {
              enabled: true,
              headless: true,
              provider: playwright({ launchOptions: chromiumLaunch }),
              instances: [{ browser: 'chromium' }],
            },
          },
        },
      ],
    },
  }),
);
