// Why: browser tests need the real server and a real browser. This starts the portcullis
// binary on 127.0.0.1 with a throw-away data directory, reads its port and bootstrap password,
// and launches Debian's chromium headless (no browser downloads: peers.md).
import { execFileSync, spawn } from 'node:child_process';
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

const SSHD_SH = join(ROOT, 'tests/support/sshd.sh');

/// A private sshd on 127.0.0.1 for this test process (tests/support/sshd.sh, shared with the
/// Rust tests), cleaned up by its watchdog when this process exits.
export function startSshd() {
  const dir = join(tmpdir(), `portcullis-e2e-sshd-${process.pid}`);
  const out = execFileSync('sh', [SSHD_SH, 'start', dir, String(process.pid)]).toString().trim();
  const [port, fingerprint] = out.split(/\s+/);
  let n = 0;
  return {
    port: Number(port), fingerprint,
    user(password) {
      const name = `pce${process.pid}u${n++}`;
      execFileSync('sh', [SSHD_SH, 'user', dir, name, password]);
      return name;
    },
  };
}

/// Logs in through the API of a browser context (sharing its cookies) and returns a helper
/// that sends JSON with the CSRF header.
export async function apiSession(ctx, url, username, password) {
  const r = await ctx.request.post(`${url}/api/v1/auth/login`, { data: { username, password } });
  if (!r.ok()) throw new Error(`login ${r.status()}: ${await r.text()}`);
  let csrf = (await r.json()).csrf_token;
  const call = async (method, path, data) => {
    const res = await ctx.request.fetch(`${url}/api/v1${path}`, { method, data, headers: { 'x-csrf-token': csrf } });
    const body = await res.json().catch(() => null);
    if (!res.ok()) throw new Error(`${method} ${path} -> ${res.status()}: ${JSON.stringify(body)}`);
    return body;
  };
  return { call };
}
