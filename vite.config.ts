import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { transformWithOxc, type Plugin, type Rolldown } from 'vite';
import { defineConfig } from 'vitest/config';

/**
 * Offline (PWA): after a build, lists every file of the output (app, workers, built-in models,
 * bundled data) with a content hash and writes /sw.js, compiled from src/app/pwa/sw.ts with that
 * list inlined. Not precached: source maps, the KaTeX fonts' .woff/.ttf fallbacks (every browser
 * with WebGPU takes .woff2), web-llm's chunk (6 MB, fetched only when the teacher panel opens; the
 * teacher needs the network to download its model anyway) and files over PRECACHE_MAX_BYTES
 * (multi-GB models belong in OPFS).
 */
const PRECACHE_MAX_BYTES = 64 * 1024 * 1024;

function precache(): Plugin {
  let outDir = 'dist';
  return {
    name: 'd2g-precache',
    apply: 'build',
    configResolved(c) {
      outDir = resolve(c.root, c.build.outDir);
    },
    closeBundle: {
      order: 'post',
      sequential: true,
      async handler() {
        const files: string[] = [];
        const walk = (dir: string) => {
          for (const name of readdirSync(dir)) {
            const p = join(dir, name);
            if (statSync(p).isDirectory()) walk(p);
            else files.push(p);
          }
        };
        walk(outDir);
        const manifest = files
          .map((p) => ({ p, url: relative(outDir, p).split('\\').join('/') }))
          .filter(
            ({ p, url }) =>
              url !== 'sw.js' &&
              !/\.(map|woff|ttf)$/.test(url) &&
              !/^assets\/webllm-[\w-]+\.js$/.test(url) &&
              statSync(p).size <= PRECACHE_MAX_BYTES,
          )
          .map(({ p, url }) => ({
            url,
            rev: createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16),
          }))
          .sort((a, b) => a.url.localeCompare(b.url));
        const src = 'src/app/pwa/sw.ts';
        const { code } = await transformWithOxc(readFileSync(src, 'utf8'), src, { lang: 'ts' });
        writeFileSync(
          join(outDir, 'sw.js'),
          `const __D2G_PRECACHE__ = ${JSON.stringify(manifest)};\n${code}`,
        );
      },
    },
  };
}

/**
 * web-llm (6.1 MB built) is imported only by src/method/teacher/webllm.ts, dynamically, and only
 * the teacher worker imports that: its chunk is named `assets/webllm-<hash>.js`, so it can be told
 * apart (by the precache, and by tests/e2e/teacher.test.ts, which serves a fake in its place).
 */
const chunkFileNames = (c: Rolldown.PreRenderedChunk): string =>
  c.facadeModuleId !== null && /[\\/]@mlc-ai[\\/]web-llm[\\/]/.test(c.facadeModuleId)
    ? 'assets/webllm-[hash].js'
    : 'assets/[name]-[hash].js';

export default defineConfig({
  plugins: [svelte(), precache()],
  worker: { format: 'es', rolldownOptions: { output: { chunkFileNames } } },
  server: { port: 5173, strictPort: false },
  build: { target: 'es2022', rolldownOptions: { output: { chunkFileNames } } },
  test: {
    // SwiftShader runs kernels on the CPU: give GPU tests room, and run GPU files one at a time
    // (the machine has two cores; parallel software GPUs only thrash).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['tests/unit/**/*.test.ts'], environment: 'node' } },
      {
        extends: true,
        test: {
          name: 'gpu',
          include: ['tests/gpu/**/*.test.ts'],
          environment: 'node',
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['tests/e2e/**/*.test.ts'],
          environment: 'node',
          fileParallelism: false,
          globalSetup: ['tests/e2e/global-setup.ts'],
        },
      },
    ],
  },
});
