// Telnet in a real Chromium against a real inetutils-telnetd: the engineer clicks Connect
// (Telnet) and lands at a shell prompt already logged in by the built-in script; NAWS makes
// `stty size` follow the tab; the resource page says Telnet is plaintext; an administrator
// writes a custom script in the Logon scripts page (a bad pattern is refused by field) and
// the next session runs it. The password never reaches the browser (canary).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiSession, launchBrowser, run, startServer, startSshd, waitForLine, waitForShell } from './harness.mjs';

const sshd = startSshd();
const PASSWORD = 'E2e-Telnet-Canary-Pw!41';

function recordReceived(ctx) {
  const received = [];
  ctx.on('response', async (r) => { try { received.push(await r.text()); } catch { /* no body */ } });
  ctx.on('page', (p) => p.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(typeof f.payload === 'string' ? f.payload : Buffer.from(f.payload).toString('latin1')))));
  return received;
}

async function connectTelnet(ctx, page, username) {
  await page.goto(page.url().replace(/#.*$/, '') + '#/accounts');
  const row = page.locator('[data-testid=accounts] tr', { hasText: username });
  await row.waitFor();
  const [tab] = await Promise.all([ctx.waitForEvent('page'), row.locator('[data-testid=connect-telnet]').click()]);
  await tab.waitForSelector('[data-testid=terminal]');
  return tab;
}

async function sttySize(tab, tag) {
  await run(tab, `echo ${tag} $(stty size)`);
  const handle = await tab.waitForFunction((t) => {
    const rows = document.querySelector('.xterm-rows')?.innerText.split('\n') ?? [];
    return rows.map((r) => r.trim()).find((r) => new RegExp(`^${t} \\d+ \\d+$`).test(r)) ?? false;
  }, tag, { timeout: 20000 });
  const [, rows, cols] = (await handle.jsonValue()).split(' ').map(Number);
  return { rows, cols };
}

test('a Telnet session logs in by script, follows the tab size, and runs an administrator\'s custom script', async () => {
  const server = await startServer();
  const target = sshd.user(PASSWORD);
  const { browser, close } = await launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    const received = recordReceived(ctx);
    const admin = await apiSession(ctx, server.url, 'admin', server.password);
    await admin.call('POST', '/auth/password', { current_password: server.password, new_password: 'operator passphrase one' });
    const resource = await admin.call('POST', '/resources', { name: 'lab-telnet', host: '127.0.0.1', resource_type: 'linux', ports: { telnet: sshd.telnetPort() }, policy_id: 'policy-low' });
    await admin.call('POST', `/resources/${resource.id}/accounts`, { username: target, secret: PASSWORD });

    // The resource page warns that Telnet is plaintext and shows the script that applies.
    const page = await ctx.newPage();
    await page.goto(`${server.url}/#/resources/${resource.id}`);
    await page.waitForSelector('[data-testid=telnet-settings] >> text=Plaintext.');
    await page.waitForSelector('[data-testid=telnet-settings] >> text=built-in script unix');

    const tab = await connectTelnet(ctx, page, target);
    await tab.setViewportSize({ width: 1200, height: 800 });
    await waitForShell(tab);
    await run(tab, 'echo $((6*7))');
    await waitForLine(tab, '42');
    const rowsShown = async () => tab.locator('.xterm-rows > div').count();
    const big = await sttySize(tab, 'big');
    assert.equal(big.rows, await rowsShown(), 'stty rows = rows on screen (NAWS)');
    await tab.setViewportSize({ width: 700, height: 420 });
    await tab.waitForFunction((r) => document.querySelectorAll('.xterm-rows > div').length < r, big.rows);
    const small = await sttySize(tab, 'small');
    assert.equal(small.rows, await rowsShown(), 'stty rows follow the tab');
    assert.ok(small.cols < big.cols, `${JSON.stringify(small)} < ${JSON.stringify(big)}`);
    await run(tab, 'exit');
    await tab.waitForSelector('text=Session ended');
    await tab.close();

    // An administrator writes a custom script for Linux resources in the web app.
    await page.goto(`${server.url}/#/logon-scripts`);
    const card = page.locator('[data-testid=logon-type-linux]');
    await card.locator('button', { hasText: 'Change…' }).click();
    await card.locator('select[name=script-mode]').selectOption('custom');
    await card.locator('input[name=step-0-label]').fill('user name prompt');
    await card.locator('input[name=step-2-expect]').fill('[$#');
    await card.locator('button', { hasText: 'Save' }).click();
    await card.locator('[role=alert]', { hasText: 'not a valid pattern' }).waitFor();
    await card.locator('input[name=step-2-expect]').fill('[$#] ?$');
    await card.locator('button', { hasText: 'Save' }).click();
    await card.locator('text=Custom script').waitFor();
    await card.locator('[data-testid=logon-steps] >> text=user name prompt').waitFor();

    // The next session runs it, shown step by step while it logs in.
    const tab2 = await connectTelnet(ctx, page, target);
    await waitForShell(tab2);
    await run(tab2, 'echo again-$((2*4))');
    await waitForLine(tab2, 'again-8');
    const audit = await admin.call('GET', '/audit?action=session.start');
    assert.equal(audit[0].detail.logon_script_source, 'resource type');
    assert.equal(audit[0].detail.logon_script.script.steps[0].label, 'user name prompt');

    assert.ok(received.length > 10, 'responses and frames were recorded');
    const b64 = Buffer.from(PASSWORD).toString('base64');
    for (const r of received) assert.ok(!r.includes(PASSWORD) && !r.includes(b64), 'the password reached the browser');
  } finally {
    await close();
    server.stop();
  }
});
