/**
 * Builds the app once for the whole e2e run (every file then only serves it): a build takes tens of
 * seconds on the 2-core CI machine, once per file it was minutes of `npm test`. `startApp` builds
 * by itself when a file runs without this setup or with its own D2G_E2E_OUT.
 */
import { buildApp, e2eOutDir } from './harness.ts';

export default async function setup(): Promise<void> {
  const outDir = e2eOutDir();
  await buildApp(outDir);
  process.env.D2G_E2E_BUILT = outDir;
}
