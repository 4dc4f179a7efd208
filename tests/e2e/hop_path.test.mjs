// A hop chain in a real Chromium: an administrator adds a landing server in the web app and
// sets the target's "Reached through"; the engineer sees the path before connecting (Connect
// page) and in the session tab, and lands at the target's shell through the landing server
// (the private sshd tunnels to itself: tunnel mode over a real direct-tcpip channel). The
// network-isolated chains (1-3 hops, failover, errors per hop) are in
// tests/integration/hops.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminWithSshResource, launchBrowser, run, startServer, startSshd, waitForLine, waitForShell } from './harness.mjs';

const sshd = startSshd();

test('an administrator adds a landing server; the engineer sees the path and connects through it', async () => {
  const server = await startServer();
  const target = sshd.user('E2e-Hop-Target-Pw!52');
  const hopUser = sshd.user('E2e-Hop-Landing-Pw!61');
  const { browser, close } = await launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1300, height: 800 } });
    const { admin, resource: jump } = await adminWithSshResource(ctx, server, sshd, 'jump-box');
    await admin.call('POST', `/resources/${jump.id}/accounts`, { username: hopUser, secret: 'E2e-Hop-Landing-Pw!61' });
    const tgt = await admin.call('POST', '/resources', { name: 'inner-box', host: '127.0.0.1', ports: { ssh: sshd.port }, policy_id: 'policy-low' });
    await admin.call('POST', `/resources/${tgt.id}/accounts`, { username: target, secret: 'E2e-Hop-Target-Pw!52' });

    // The administrator adds the landing server in the web app ...
    const page = await ctx.newPage();
    await page.goto(`${server.url}/#/landing-servers`);
    await page.click('text=Add landing server');
    const form = page.locator('[data-testid=landing-form]');
    await form.locator('input[name=name]').fill('DC-edge');
    await form.locator('select[name=primary_resource_id]').selectOption({ label: `jump-box (127.0.0.1:${sshd.port})` });
    await form.locator(`select[name=account_id] >> option:has-text("${hopUser}")`).waitFor({ state: 'attached' });
    await form.locator('select[name=account_id]').selectOption({ label: hopUser });
    await form.locator('button', { hasText: 'Save' }).click();
    await page.locator('[data-testid=landing-servers] tr', { hasText: 'DC-edge' }).waitFor();
    // ... and says the target is reached through it.
    await page.goto(`${server.url}/#/resources/${tgt.id}`);
    const reached = page.locator('[data-testid=reached-through]');
    await reached.locator('select[name=landing_server_id] >> option:has-text("DC-edge")').waitFor({ state: 'attached' });
    await reached.locator('select[name=landing_server_id]').selectOption({ label: 'DC-edge' });
    await reached.locator('button', { hasText: 'Save' }).click();
    await page.locator('[data-testid=path]', { hasText: 'gateway → DC-edge → inner-box' }).waitFor();

    // The path is on the Connect page before connecting, and in the session tab.
    await page.goto(`${server.url}/#/accounts`);
    const row = page.locator('[data-testid=accounts] tr', { hasText: target });
    await row.locator('[data-testid=account-path]', { hasText: 'via DC-edge' }).waitFor();
    const [tab] = await Promise.all([ctx.waitForEvent('page'), row.locator('[data-testid=connect]').click()]);
    await waitForShell(tab);
    await tab.locator(`text=${target}@inner-box via DC-edge`).waitFor();
    await run(tab, 'echo hop-$((6*7)) ${SSH_CONNECTION%% *}');
    await waitForLine(tab, 'hop-42 127.0.0.1');
    const audit = await admin.call('GET', '/audit?action=session.start&outcome=ok');
    assert.deepEqual(audit[0].detail.path, [{ landing_server: 'DC-edge', secondary: false }]);
  } finally {
    await close();
    server.stop();
  }
});
