#!/usr/bin/env node
// `npm test`: finds or sets up what the tests need, then runs every Vitest project.
//  - a WebGPU-capable Chromium for the e2e tests: $CHROME_PATH, else /usr/bin/chromium, else (Debian/
//    Ubuntu, as root) installs Debian's `chromium`;
//  - Vulkan's loader (libvulkan1) for Node's WebGPU (Dawn); with no GPU driver the engine points
//    Dawn at SwiftShader's ICD, which comes with Debian's chromium.
// It fails loudly when something is missing: no test is ever skipped for want of a GPU.
// Usage: node tools/test.mjs [unit|gpu|e2e ...] [-- extra vitest args]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const projects = (dash >= 0 ? argv.slice(0, dash) : argv).filter(Boolean);
const extra = dash >= 0 ? argv.slice(dash + 1) : [];
const wanted = projects.length ? projects : ['unit', 'gpu', 'e2e'];

function fail(msg) {
  console.error(`\n[test] ${msg}\n`);
  process.exit(1);
}

const isRoot = process.getuid?.() === 0;
const debian = existsSync('/etc/debian_version');

function aptInstall(pkgs) {
  if (!isRoot || !debian) return false;
  console.log(`[test] installing ${pkgs.join(' ')} with apt-get …`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const upd = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  if (upd.status !== 0) return false;
  const r = spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
  return r.status === 0;
}

function hasVulkanLoader() {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libvulkan.so.1');
  } catch {
    return ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1'].some(
      existsSync,
    );
  }
}

function findChrome() {
  const candidates = [process.env.CHROME_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(
    Boolean,
  );
  return candidates.find((p) => existsSync(p));
}

const needGpu = wanted.includes('gpu') || wanted.includes('e2e');
if (needGpu) {
  let chrome = findChrome();
  const needChromium = !chrome || !existsSync('/usr/lib/chromium/vk_swiftshader_icd.json');
  const needVulkan = !hasVulkanLoader();
  if (needChromium || needVulkan) {
    const pkgs = [...(needChromium && !chrome ? ['chromium'] : []), ...(needVulkan ? ['libvulkan1'] : [])];
    if (pkgs.length && !aptInstall(pkgs)) {
      fail(
        `missing ${pkgs.join(' and ')}. Install it (Debian/Ubuntu: sudo apt-get install -y ${pkgs.join(' ')}), ` +
          'or set CHROME_PATH to a Chromium/Chrome with WebGPU.',
      );
    }
    chrome = findChrome();
  }
  if (!chrome) fail("no Chromium found: set CHROME_PATH or install Debian's chromium.");
  process.env.CHROME_PATH = chrome;
  let version = '';
  try {
    version = execFileSync(chrome, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    fail(`${chrome} does not run.`);
  }
  console.log(`[test] browser: ${version} (${chrome})`);
  if (debian) {
    const release = readFileSync('/etc/debian_version', 'utf8').trim();
    console.log(`[test] Debian ${release}; Vulkan loader: ${hasVulkanLoader() ? 'yes' : 'no'}`);
  }
}

// Static checks first (seconds): types, Svelte, lint, formatting. `npm test` runs them with every project.
if (projects.length === 0) {
  for (const [name, cmd] of [
    ['types', ['tsc', '-p', 'tsconfig.json', '--noEmit']],
    ['svelte-check', ['svelte-check', '--tsconfig', './tsconfig.json', '--fail-on-warnings']],
    ['eslint', ['eslint', '.']],
    ['prettier', ['prettier', '--check', '--log-level', 'warn', '.']],
  ]) {
    console.log(`[test] ${name}`);
    const r = spawnSync('npx', cmd, { stdio: 'inherit', env: process.env });
    if (r.status !== 0) fail(`${name} failed`);
  }
}

const args = ['vitest', 'run', ...wanted.flatMap((p) => ['--project', p]), ...extra];
console.log(`[test] npx ${args.join(' ')}`);
const r = spawnSync('npx', args, { stdio: 'inherit', env: process.env });
process.exit(r.status ?? 1);
