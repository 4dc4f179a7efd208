// An engineer clicks Connect and works in a real SSH session in the browser: the gateway logs
// in with the vault's password (never sent to the browser), the terminal runs commands, and
// a reload returns to the same shell.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminWithSshResource, clickConnect, launchBrowser, run, startServer, startSshd, waitForLine, waitForShell } from './harness.mjs';

const PASSWORD = 'E2e-Ssh-Canary-Pw!42x';
const SHOTS = process.env.E2E_SCREENSHOTS;

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
    const { admin, resource: res } = await adminWithSshResource(ctx, server, sshd);
    await admin.call('POST', `/resources/${res.id}/accounts`, { username: target, secret: PASSWORD });

    const page = await ctx.newPage();
    page.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(String(f.payload))));
    await page.goto(server.url);
    const tab = await clickConnect(ctx, page, target);
    await waitForShell(tab);
    await run(tab, 'echo $((6*7))');
    await waitForLine(tab, '42');
    assert.match(await tab.textContent('[data-testid=terminal-bar]'), new RegExp(`${target}@lab-sshd`));

    // The live-sessions page lists it, and updates by itself.
    await page.goto(`${server.url}/#/sessions`);
    await page.waitForSelector(`[data-testid=live-sessions] td:has-text("${target}@lab-sshd")`);
    assert.match(await page.textContent('[data-testid=live-sessions]'), /connected/);

    // Set a variable, reload the tab: the same shell comes back.
    await run(tab, 'export PCV=still-the-same-shell');
    await tab.reload();
    await waitForShell(tab);
    await run(tab, 'echo $PCV');
    await waitForLine(tab, 'still-the-same-shell');
    if (SHOTS) await tab.screenshot({ path: `${SHOTS}/ssh-session.png` });

    // Exit: a clear end-of-session screen with a reconnect button.
    await run(tab, 'exit');
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
