// Why: browser tests need the real server and a real browser. This starts the portcullis
// binary on 127.0.0.1 with a throw-away data directory, reads its port and bootstrap password,
// and launches Debian's chromium headless (no browser downloads: peers.md).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = process.env.PORTCULLIS_BIN ?? join(ROOT, 'target/debug/portcullis');

export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-e2e-'));
  const env = { ...process.env };
  delete env.PORTCULLIS_CONFIG;
  // No nightly verification run in tests (it would add jobs).
  env.PORTCULLIS_ROTATION_VERIFY_AT = 'off';
  // The test peers listen on loopback, which the default resource_networks policy refuses.
  env.PORTCULLIS_RESOURCE_NETWORKS = '0.0.0.0/0,::/0';
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
    /// Authorizes a new ed25519 key for `user`; returns the private key (OpenSSH PEM).
    keyFor(user, passphrase) {
      const file = execFileSync('sh', [SSHD_SH, 'key', dir, user, passphrase]).toString().trim();
      return readFileSync(file, 'utf8');
    },
    /// Gives the server a new host key, as if it had been reinstalled; returns its fingerprint.
    rekey() {
      return execFileSync('sh', [SSHD_SH, 'rekey', dir]).toString().trim();
    },
    /// Writes `text` to the user's ~/name with `mode`, owned by the user.
    file(user, name, mode, text) {
      execFileSync('sh', [SSHD_SH, 'file', dir, user, name, mode], { input: text });
    },
    /// Starts (once) a Telnet server for the same users: inetutils-telnetd under inetd.
    telnetPort() {
      this._telnet ??= Number(execFileSync('sh', [SSHD_SH, 'telnet', dir, String(process.pid)]).toString().trim());
      return this._telnet;
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

/// Waits until the terminal of `tab` shows a row that is exactly `line` (trimmed).
export async function waitForLine(tab, line, timeout = 20000) {
  await tab.waitForFunction((l) => {
    const rows = document.querySelector('.xterm-rows');
    return !!rows && rows.innerText.split('\n').some((r) => r.trim() === l);
  }, line, { timeout });
}

/// Sets up the admin (new password) and a resource pointing at `sshd`; returns the admin API.
export async function adminWithSshResource(ctx, server, sshd, name = 'lab-sshd') {
  const admin = await apiSession(ctx, server.url, 'admin', server.password);
  await admin.call('POST', '/auth/password', { current_password: server.password, new_password: 'operator passphrase one' });
  const resource = await admin.call('POST', '/resources', { name, host: '127.0.0.1', ports: { ssh: sshd.port }, policy_id: 'policy-low' });
  return { admin, resource };
}

/// Clicks Connect on the row of `username` in the Connect page `page`; returns the session tab
/// once its terminal has been created (not necessarily connected).
export async function clickConnect(ctx, page, username) {
  const row = page.locator('[data-testid=accounts] tr', { hasText: username });
  await row.waitFor();
  const [tab] = await Promise.all([ctx.waitForEvent('page'), row.locator('[data-testid=connect]').click()]);
  await tab.waitForSelector('[data-testid=terminal]');
  return tab;
}

/// Waits for a connected session with a shell prompt, and focuses the terminal.
export async function waitForShell(tab) {
  await tab.waitForSelector('[data-testid=session-state]:has-text("connected")', { timeout: 20000 });
  await tab.waitForFunction(() => (document.querySelector('.xterm-rows')?.innerText ?? '').includes('$'), null, { timeout: 20000 });
  await tab.locator('[data-testid=terminal]').click();
}

/// Types a command line at the prompt and presses Enter.
export async function run(tab, line) {
  await tab.keyboard.type(line);
  await tab.keyboard.press('Enter');
}

const XRDP_SH = join(ROOT, 'tests/support/xrdp.sh');

/// A private xrdp on 127.0.0.1 for this test process (tests/support/xrdp.sh, shared with the
/// Rust tests) for the users `startSshd` creates; stopped by its watchdog at exit.
export function startXrdp() {
  const dir = join(tmpdir(), `portcullis-e2e-xrdp-${process.pid}`);
  const [port, fingerprint] = execFileSync('sh', [XRDP_SH, 'start', dir, String(process.pid)]).toString().trim().split(/\s+/);
  return { port: Number(port), fingerprint };
}

/// The desktop the RDP tests expect (tests/support/xrdp.rs): a solid root colour and an
/// xterm, black on white, at the top left.
export const ROOT_RGB = [0x3a, 0x6e, 0xa5];
export const XSESSION = "#!/bin/sh\nxsetroot -solid '#3a6ea5'\nexec xterm -geometry 80x24+0+0 -bg white -fg black\n";

const POSTGRES_SH = join(ROOT, 'tests/support/postgres.sh');

/// A private PostgreSQL on 127.0.0.1 whose TCP logins are checked with passwords
/// (tests/support/postgres.sh), stopped by its watchdog at exit.
export function startPostgres() {
  const dir = join(tmpdir(), `portcullis-e2e-pg-${process.pid}`);
  const port = Number(execFileSync('sh', [POSTGRES_SH, 'start', dir, String(process.pid)]).toString().trim());
  return {
    port,
    sql: (q) => execFileSync('sh', [POSTGRES_SH, 'sql', dir, String(port), q]).toString().trim(),
    loginWorks: (user, password) => {
      try {
        execFileSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', 'postgres', '-w', '-qAt', '-c', 'SELECT 1'], { env: { ...process.env, PGPASSWORD: password }, stdio: 'pipe' });
        return true;
      } catch { return false; }
    },
  };
}
