// The rotation engine from the browser against a real PostgreSQL: an administrator sets how a
// database resource's roles are rotated, clicks "Rotate now", and follows the job on the
// Rotation jobs page until it has succeeded; the role's old password then no longer logs in
// and the vault's new one does. No secret reaches the browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminWithSshResource, apiSession, launchBrowser, startPostgres, startServer, startSshd } from './harness.mjs';

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
    // This test cluster speaks no TLS: the default (certificate and name verified) would
    // refuse it, so the page is told to take it, and says what that risks.
    await settings.locator('select[name=db_tls]').selectOption('prefer');
    await settings.locator('button[type=submit]').click();
    await settings.locator('text=as e2e_rot_admin').waitFor();
    await settings.locator('.notice.error', { hasText: 'certificate is not checked' }).waitFor();
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

test('a Unix account: passwd over SSH chosen in the UI, verified, rotated, verified again; a schedule on the Rotation page', async () => {
  const server = await startServer();
  const sshd = startSshd();
  const { browser, close } = await launchBrowser();
  try {
    const user = sshd.user('E2e-Unix-Old-Pw-41');
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const seen = [];
    ctx.on('page', (p) => p.on('response', async (r) => { try { seen.push(await r.text()); } catch { /* bodies of redirects */ } }));
    const { admin, resource } = await adminWithSshResource(ctx, server, sshd, 'unix-main');
    const account = await admin.call('POST', `/resources/${resource.id}/accounts`, { username: user, secret: 'E2e-Unix-Old-Pw-41' });

    const page = await ctx.newPage();
    await page.goto(`${server.url}/#/resources/${resource.id}`);
    const settings = page.locator('[data-testid=rotation-settings]');
    await settings.locator('[data-testid=edit-rotation]').click();
    await settings.locator('select[name=method]').selectOption('passwd');
    // The built-in script is shown before it is saved: what will be typed, step by step.
    await settings.locator('[data-testid=rotation-script] >> text=passwd').first().waitFor();
    await settings.locator('button[type=submit]').click();
    await settings.locator('[data-testid=rotation-method] >> text=each account changes its own password').waitFor();

    const row = page.locator('[data-testid=resource-accounts] tr', { hasText: user });
    await row.locator('[data-testid=verify-now]').click();
    await page.locator('[data-testid=rotation-queued] >> text=Verification of').waitFor();
    // The account's badge shows the last check once it has run (the page shows it when
    // loaded; the Rotation page follows jobs live).
    let badge = '';
    for (let i = 0; i < 30 && badge !== 'in sync'; i++) {
      await page.waitForTimeout(1000);
      await page.reload();
      const r = page.locator('[data-testid=resource-accounts] tr', { hasText: user });
      await r.locator('[data-testid=account-rotation]').waitFor();
      const b = r.locator('[data-testid=last-check]');
      badge = (await b.count()) ? (await b.innerText()).trim() : '';
    }
    assert.equal(badge, 'in sync');
    await row.locator('[data-testid=rotate-now]').click();
    await page.locator('a[href="#/rotation"]').first().click();
    const job = page.locator('[data-testid=rotation-jobs] tr', { hasText: `${user}@unix-main` }).filter({ hasText: 'rotate' });
    await job.locator('[data-testid=job-state] >> text=succeeded').waitFor({ timeout: 60000 });
    const revealed = await admin.call('POST', `/accounts/${account.id}/reveal`, { reason: 'e2e check' });
    assert.notEqual(revealed.secret, 'E2e-Unix-Old-Pw-41');
    // The gateway's own check with the new password: in sync.
    const v = await admin.call('POST', `/accounts/${account.id}/verify`, {});
    const verified = page.locator('[data-testid=rotation-jobs] tr', { hasText: `${user}@unix-main` }).filter({ hasText: 'verify' }).first();
    await verified.locator('[data-testid=job-result] >> text=in sync').waitFor({ timeout: 30000 });
    assert.ok(v.job.id);

    // A schedule from the Rotation page.
    const form = page.locator('[data-testid=schedule-form]');
    await form.locator('select[name=target]').selectOption({ label: 'unix-main' });
    await form.locator('input[name=interval_days]').fill('7');
    await form.locator('input[name=time_of_day]').fill('04:30');
    await form.locator('button[type=submit]').click();
    await page.locator('[data-testid=rotation-schedules] tr', { hasText: 'resource unix-main' }).locator('text=7 day(s) at 04:30 UTC').waitFor();

    for (const secret of [revealed.secret, 'E2e-Unix-Old-Pw-41']) {
      assert.ok(!seen.some((b) => b.includes(secret)), 'a secret reached the browser page');
    }
  } finally {
    await close();
    server.stop();
  }
});

test('the vault data key rotated from the Vault keys page: confirmed in a modal, followed to retired', async () => {
  const server = await startServer();
  const { browser, close } = await launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const admin = await apiSession(ctx, server.url, 'admin', server.password);
    await admin.call('POST', '/auth/password', { current_password: server.password, new_password: 'operator passphrase one' });
    const resource = await admin.call('POST', '/resources', { name: 'dk-box', host: '127.0.0.1', ports: { ssh: 22 } });
    const account = await admin.call('POST', `/resources/${resource.id}/accounts`, { username: 'svc', secret: 'Vault-Key-E2e-Pw-77' });
    const before = await admin.call('GET', '/vault/data-keys');

    const page = await ctx.newPage();
    await page.goto(`${server.url}/#/vault-keys`);
    const keys = page.locator('[data-testid=data-keys]');
    await keys.locator('tr', { hasText: before.active_key_id }).locator('text=seals new values').waitFor();
    await page.locator('button', { hasText: 'Rotate data key' }).click();
    await page.locator('.modal button', { hasText: 'Rotate' }).click();
    const rotation = page.locator('[data-testid=data-key-rotations] tr').nth(1);
    await rotation.locator('text=finished').waitFor({ timeout: 30000 });
    await keys.locator('tr', { hasText: before.active_key_id }).locator('text=retired').waitFor();
    const after = await admin.call('GET', '/vault/data-keys');
    assert.notEqual(after.active_key_id, before.active_key_id);
    assert.equal(after.rotations[0].done, after.rotations[0].total);
    const revealed = await admin.call('POST', `/accounts/${account.id}/reveal`, { reason: 'e2e check' });
    assert.equal(revealed.secret, 'Vault-Key-E2e-Pw-77');
  } finally {
    await close();
    server.stop();
  }
});
