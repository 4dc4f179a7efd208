// The rest of the browser SSH session, in a real Chromium against a real sshd: the terminal
// follows the tab's size (stty size), copy and paste work, logging out ends the session, a
// key-based account logs in without its key reaching the browser, and the two refusals an
// engineer can meet (a wrong vault password, a changed host key) are shown in plain words,
// with an administrator accepting the new key from the resource page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminWithSshResource, apiSession, clickConnect, launchBrowser, run, startServer, startSshd, waitForLine, waitForShell } from './harness.mjs';

const sshd = startSshd();

/// Everything the browser receives (HTTP bodies and WebSocket frames), for canary checks.
function recordReceived(ctx) {
  const received = [];
  ctx.on('response', async (r) => { try { received.push(await r.text()); } catch { /* no body */ } });
  ctx.on('page', (p) => p.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(typeof f.payload === 'string' ? f.payload : Buffer.from(f.payload).toString('latin1')))));
  return received;
}

function assertNeverReceived(received, secret, what) {
  assert.ok(received.length > 10, 'responses and frames were recorded');
  const b64 = Buffer.from(secret).toString('base64');
  for (const r of received) {
    assert.ok(!r.includes(secret) && !r.includes(b64), `${what} reached the browser`);
  }
}

/// The rows and columns the shell sees (`stty size`), read from the terminal.
async function sttySize(tab, tag) {
  await run(tab, `echo ${tag} $(stty size)`);
  const handle = await tab.waitForFunction((t) => {
    const rows = document.querySelector('.xterm-rows')?.innerText.split('\n') ?? [];
    const hit = rows.map((r) => r.trim()).find((r) => new RegExp(`^${t} \\d+ \\d+$`).test(r));
    return hit ?? false;
  }, tag, { timeout: 20000 });
  const [, rows, cols] = (await handle.jsonValue()).split(' ').map(Number);
  return { rows, cols };
}

test('the terminal follows the tab size, copies and pastes, and logging out ends the session', async () => {
  const server = await startServer();
  const target = sshd.user('E2e-Resize-Pw!73q');
  const { browser, close } = await launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    const { admin, resource } = await adminWithSshResource(ctx, server, sshd);
    await admin.call('POST', `/resources/${resource.id}/accounts`, { username: target, secret: 'E2e-Resize-Pw!73q' });
    const page = await ctx.newPage();
    await page.goto(server.url);
    const tab = await clickConnect(ctx, page, target);
    await tab.setViewportSize({ width: 1200, height: 800 });
    await waitForShell(tab);

    // The shell's size is the terminal's size, and follows the tab when it shrinks.
    const rowsShown = async () => tab.locator('.xterm-rows > div').count();
    const big = await sttySize(tab, 'big');
    assert.equal(big.rows, await rowsShown(), 'stty rows = rows on screen');
    await tab.setViewportSize({ width: 700, height: 420 });
    await tab.waitForFunction((r) => document.querySelectorAll('.xterm-rows > div').length < r, big.rows);
    const small = await sttySize(tab, 'small');
    assert.equal(small.rows, await rowsShown(), 'stty rows = rows on screen after the resize');
    assert.ok(small.rows < big.rows && small.cols < big.cols, `${JSON.stringify(small)} < ${JSON.stringify(big)}`);

    // Paste (Ctrl+Shift+V) types the clipboard into the shell ...
    await tab.evaluate(() => navigator.clipboard.writeText('echo pasted-$((5+5))'));
    await tab.keyboard.press('Control+Shift+V');
    await tab.waitForFunction(() => (document.querySelector('.xterm-rows')?.innerText ?? '').includes('echo pasted-$((5+5))'));
    await tab.keyboard.press('Enter');
    await waitForLine(tab, 'pasted-10');
    // ... and copy (select, Ctrl+Shift+C) puts the selection on the clipboard.
    await tab.evaluate(() => navigator.clipboard.writeText('nothing copied yet'));
    // (xterm's screen layer takes the mouse: double-click the word's position, as a user does)
    const box = await tab.locator('.xterm-rows > div', { hasText: /^pasted-10\s*$/ }).boundingBox();
    await tab.mouse.dblclick(box.x + 12, box.y + box.height / 2);
    await tab.keyboard.press('Control+Shift+C');
    await tab.waitForFunction(async () => (await navigator.clipboard.readText()) === 'pasted-10');

    // Logging out of the web app ends the session in the other tab, with the reason.
    await page.click('text=Log out');
    await tab.waitForSelector('[data-testid=session-ended]', { timeout: 20000 });
    assert.match(await tab.textContent('[data-testid=session-ended]'), /You logged out; the session was ended\./);
    await assert.rejects(admin.call('GET', '/sessions'), /401/, 'the logged-out web session is gone');
    const again = await apiSession(ctx, server.url, 'admin', 'operator passphrase one');
    assert.deepEqual(await again.call('GET', '/sessions'), [], 'no session outlives the logout');
  } finally {
    await close();
    server.stop();
  }
});

test('a key-based account logs in; neither the key nor its passphrase reaches the browser', async () => {
  const server = await startServer();
  const target = sshd.user('Unused-Login-Pw!58z');
  const passphrase = 'E2e key passphrase canary 9';
  const pem = sshd.keyFor(target, passphrase);
  const { browser, close } = await launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
    const received = recordReceived(ctx);
    const { admin, resource } = await adminWithSshResource(ctx, server, sshd);
    await admin.call('POST', `/resources/${resource.id}/accounts`, { username: target, secret_kind: 'ssh_key', secret: pem, passphrase });
    const page = await ctx.newPage();
    await page.goto(server.url);
    const tab = await clickConnect(ctx, page, target);
    await waitForShell(tab);
    await run(tab, 'echo key-login-$((3*3)) $(whoami)');
    await waitForLine(tab, `key-login-9 ${target}`);

    const keyBody = pem.split('\n').find((l) => l.length > 40 && !l.startsWith('-----'));
    assertNeverReceived(received, keyBody, 'a line of the private key');
    assertNeverReceived(received, passphrase, 'the key passphrase');
    assert.ok(!server.log().includes(keyBody) && !server.log().includes(passphrase), 'the key reached the server log');
  } finally {
    await close();
    server.stop();
  }
});

test('a wrong vault password and a changed host key are refused in plain words; an admin accepts the new key', async () => {
  const server = await startServer();
  const good = sshd.user('E2e-Good-Pw!24k');
  const stale = sshd.user('E2e-Real-Pw!91m');
  const { browser, close } = await launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
    const { admin, resource } = await adminWithSshResource(ctx, server, sshd);
    await admin.call('POST', `/resources/${resource.id}/accounts`, { username: good, secret: 'E2e-Good-Pw!24k' });
    await admin.call('POST', `/resources/${resource.id}/accounts`, { username: stale, secret: 'E2e-Stale-Vault-Pw!3' });
    const page = await ctx.newPage();
    await page.goto(server.url);

    // The vault's password is out of date: the engineer is told so, with what to do.
    let tab = await clickConnect(ctx, page, stale);
    await tab.waitForSelector('[data-testid=session-ended]', { timeout: 30000 });
    const authText = await tab.textContent('[data-testid=session-ended]');
    assert.match(authText, new RegExp(`refused the vault's credential for ${stale}`));
    assert.match(authText, /verify or rotate it/);
    await tab.close();

    // First contact pins the key (trust on first use) ...
    tab = await clickConnect(ctx, page, good);
    await waitForShell(tab);
    await run(tab, 'exit');
    await tab.waitForSelector('[data-testid=session-ended]');
    await tab.close();
    // ... the server is reinstalled with a new key: refused, both fingerprints shown.
    const newKey = sshd.rekey();
    assert.notEqual(newKey, sshd.fingerprint);
    tab = await clickConnect(ctx, page, good);
    await tab.waitForSelector('[data-testid=session-ended]', { timeout: 30000 });
    const keyText = await tab.textContent('[data-testid=session-ended]');
    assert.match(keyText, /host key of .* has changed/);
    assert.ok(keyText.includes(sshd.fingerprint) && keyText.includes(newKey), keyText);
    await tab.close();

    // The administrator sees the offered key on the resource page and accepts it.
    await page.goto(`${server.url}/#/resources/${resource.id}`);
    const offered = page.locator('[data-testid=host-key-offered]');
    await offered.waitFor();
    assert.ok((await offered.textContent()).includes(newKey));
    page.once('dialog', (d) => d.accept());
    await offered.locator('button', { hasText: 'Accept this key' }).click();
    await page.waitForSelector(`[data-testid=host-key] code:text-is("${newKey}")`);
    await offered.waitFor({ state: 'detached' });
    const audit = await admin.call('GET', '/audit?action=hostkey.mismatch');
    assert.ok(JSON.stringify(audit).includes(newKey), 'the mismatch is in the audit log');

    // Now it connects again.
    await page.goto(server.url);
    tab = await clickConnect(ctx, page, good);
    await waitForShell(tab);
    await run(tab, 'echo rekeyed-$((1+1))');
    await waitForLine(tab, 'rekeyed-2');
  } finally {
    await close();
    server.stop();
  }
});
