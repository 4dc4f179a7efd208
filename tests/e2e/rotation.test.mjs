// The rotation engine from the browser against a real PostgreSQL: an administrator sets how a
// database resource's roles are rotated, clicks "Rotate now", and follows the job on the
// Rotation jobs page until it has succeeded; the role's old password then no longer logs in
// and the vault's new one does. No secret reaches the browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiSession, launchBrowser, startPostgres, startServer } from './harness.mjs';

const pg = startPostgres();

test('rotating a PostgreSQL role from the resource page, followed on the jobs page', async () => {
  const server = await startServer();
  const { browser, close } = await launchBrowser();
  try {
    pg.sql("CREATE ROLE e2e_rot_admin LOGIN CREATEROLE PASSWORD 'E2e-Admin-Pw-31'");
    pg.sql("CREATE ROLE e2e_app LOGIN PASSWORD 'E2e-App-Old-Pw-32'");
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const seen = [];
    ctx.on('page', (p) => p.on('response', async (r) => { try { seen.push(await r.text()); } catch { /* bodies of redirects */ } }));
    const admin = await apiSession(ctx, server.url, 'admin', server.password);
    await admin.call('POST', '/auth/password', { current_password: server.password, new_password: 'operator passphrase one' });
    const resource = await admin.call('POST', '/resources', { name: 'pg-main', host: '127.0.0.1', resource_type: 'database', ports: { database: pg.port }, policy_id: 'policy-low' });
    await admin.call('POST', `/resources/${resource.id}/accounts`, { username: 'e2e_rot_admin', secret: 'E2e-Admin-Pw-31' });
    const app = await admin.call('POST', `/resources/${resource.id}/accounts`, { username: 'e2e_app', secret: 'E2e-App-Old-Pw-32' });

    const page = await ctx.newPage();
    await page.goto(`${server.url}/#/resources/${resource.id}`);
    const settings = page.locator('[data-testid=rotation-settings]');
    await settings.locator('text=Not set').waitFor();
    await settings.locator('[data-testid=edit-rotation]').click();
    await settings.locator('select[name=privileged_account_id]').selectOption({ label: 'e2e_rot_admin' });
    await settings.locator('button[type=submit]').click();
    await settings.locator('text=as e2e_rot_admin').waitFor();
    const row = page.locator('[data-testid=resource-accounts] tr', { hasText: 'e2e_app' });
    await row.locator('[data-testid=rotate-now]').click();
    await page.locator('[data-testid=rotation-queued]').waitFor();
    await page.locator('a[href="#/rotation"]').first().click();
    const job = page.locator('[data-testid=rotation-jobs] tr', { hasText: 'e2e_app@pg-main' });
    await job.locator('[data-testid=job-state] >> text=succeeded').waitFor({ timeout: 30000 });
    assert.match(await job.locator('[data-testid=job-message]').innerText(), /new secret logs in/);

    const revealed = await admin.call('POST', `/accounts/${app.id}/reveal`, { reason: 'e2e check' });
    assert.notEqual(revealed.secret, 'E2e-App-Old-Pw-32');
    assert.ok(pg.loginWorks('e2e_app', revealed.secret), 'the new password does not log in');
    assert.ok(!pg.loginWorks('e2e_app', 'E2e-App-Old-Pw-32'), 'the old password still logs in');
    // What the pages received holds neither secret (the reveal above was an API call).
    for (const secret of [revealed.secret, 'E2e-App-Old-Pw-32', 'E2e-Admin-Pw-31']) {
      assert.ok(!seen.some((b) => b.includes(secret)), 'a secret reached the browser page');
    }
  } finally {
    await close();
    server.stop();
  }
});
