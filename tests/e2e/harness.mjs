// Why: browser tests need the real server and a real browser. This starts the portcullis
// binary on 127.0.0.1 with a throw-away data directory, reads its port and bootstrap password,
// and launches Debian's chromium headless (no browser downloads: peers.md).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = process.env.PORTCULLIS_BIN ?? join(ROOT, 'target/debug/portcullis');

export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-e2e-'));
  const env = { ...process.env };
  delete env.PORTCULLIS_CONFIG;
  const child = spawn(BIN, ['--data-dir', join(dir, 'data'), '--master-key-file', join(dir, 'master.key'), '--listen', '127.0.0.1:0', 'serve'], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env,
  });
  let out = '', err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const url = await new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error('server did not start:\n' + err)), 60000);
    const check = () => {
      const m = out.match(/listening on (https:\/\/\S+)/);
      if (m) { clearTimeout(t); ok(m[1]); }
    };
    child.stdout.on('data', check);
    child.on('exit', (code) => { clearTimeout(t); fail(new Error(`server exited ${code}:\n${err}`)); });
    child.on('error', (e) => { clearTimeout(t); fail(new Error(`cannot start ${BIN}: ${e.message}`)); });
  });
  const password = err.match(/one-time password:\s*(\S+)/)?.[1];
  return {
    url, password, log: () => out + err,
    stop: () => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); },
  };
}

// Playwright gives every launch() a fresh, empty profile directory of its own.
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return { browser, close: () => browser.close() };
}
