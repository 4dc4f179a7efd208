// An engineer clicks Connect and works in a real SSH session in the browser: the gateway logs
// in with the vault's password (never sent to the browser), the terminal runs commands, and
// a reload returns to the same shell.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiSession, launchBrowser, startServer, startSshd } from './harness.mjs';

const PASSWORD = 'E2e-Ssh-Canary-Pw!42x';
const SHOTS = process.env.E2E_SCREENSHOTS;

async function screenText(tab) {
  return tab.locator('.xterm-rows').innerText();
}

async function waitForLine(tab, line) {
  await tab.waitForFunction((l) => {
    const rows = document.querySelector('.xterm-rows');
    return !!rows && rows.innerText.split('\n').some((r) => r.trim() === l);
  }, line, { timeout: 20000 });
}

test('Connect opens a logged-in SSH terminal; reload keeps the shell; the password never reaches the browser', async () => {
  const server = await startServer();
  const sshd = startSshd();
  const target = sshd.user(PASSWORD);
  const { browser, close } = await launchBrowser();
  const received = [];
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
    ctx.on('response', async (r) => { try { received.push(await r.text()); } catch { /* no body */ } });
    ctx.on('page', (p) => p.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(typeof f.payload === 'string' ? f.payload : Buffer.from(f.payload).toString('latin1')))));

    // Set-up through the API: admin password, a resource pointing at the test sshd, the account.
    const admin = await apiSession(ctx, server.url, 'admin', server.password);
    await admin.call('POST', '/auth/password', { current_password: server.password, new_password: 'operator passphrase one' });
    const res = await admin.call('POST', '/resources', { name: 'lab-sshd', host: '127.0.0.1', ports: { ssh: sshd.port }, policy_id: 'policy-low' });
    await admin.call('POST', `/resources/${res.id}/accounts`, { username: target, secret: PASSWORD });

    const page = await ctx.newPage();
    page.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(String(f.payload))));
    await page.goto(server.url);
    await page.waitForSelector('[data-testid=accounts] td:has-text("lab-sshd")');
    const [tab] = await Promise.all([ctx.waitForEvent('page'), page.click('[data-testid=connect]')]);
    await tab.waitForSelector('[data-testid=session-state]:has-text("connected")', { timeout: 20000 });
    await tab.waitForFunction(() => (document.querySelector('.xterm-rows')?.innerText ?? '').includes('$'), null, { timeout: 20000 });
    await tab.locator('[data-testid=terminal]').click();
    await tab.keyboard.type('echo $((6*7))');
    await tab.keyboard.press('Enter');
    await waitForLine(tab, '42');
    assert.match(await tab.textContent('[data-testid=terminal-bar]'), new RegExp(`${target}@lab-sshd`));

    // The live-sessions page lists it, and updates by itself.
    await page.goto(`${server.url}/#/sessions`);
    await page.waitForSelector(`[data-testid=live-sessions] td:has-text("${target}@lab-sshd")`);
    assert.match(await page.textContent('[data-testid=live-sessions]'), /connected/);

    // Set a variable, reload the tab: the same shell comes back.
    await tab.keyboard.type('export PCV=still-the-same-shell');
    await tab.keyboard.press('Enter');
    await tab.reload();
    await tab.waitForSelector('[data-testid=session-state]:has-text("connected")', { timeout: 20000 });
    await tab.locator('[data-testid=terminal]').click();
    await tab.keyboard.type('echo $PCV');
    await tab.keyboard.press('Enter');
    await waitForLine(tab, 'still-the-same-shell');
    if (SHOTS) await tab.screenshot({ path: `${SHOTS}/ssh-session.png` });

    // Exit: a clear end-of-session screen with a reconnect button.
    await tab.keyboard.type('exit');
    await tab.keyboard.press('Enter');
    await tab.waitForSelector('[data-testid=session-ended]');
    assert.match(await tab.textContent('[data-testid=session-ended]'), /exited with status 0/);

    assert.ok(received.length > 10, 'responses and frames were recorded');
    const b64 = Buffer.from(PASSWORD).toString('base64');
    for (const r of received) {
      assert.ok(!r.includes(PASSWORD) && !r.includes(b64), 'the account password reached the browser');
    }
    assert.ok(!server.log().includes(PASSWORD), 'the password reached the server log');
  } finally {
    await close();
    server.stop();
  }
});
