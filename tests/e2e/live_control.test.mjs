// Live session control with two browsers against a real sshd: an engineer works in a session;
// the administrator, from the Live sessions page, watches it (earlier output at once, then
// live; read-only), the engineer is told who is watching; the administrator joins as a peer
// and types once the engineer hands over the keyboard; then terminates the session with a
// reason every browser shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminWithSshResource, apiSession, clickConnect, launchBrowser, run, startServer, startSshd, waitForLine, waitForShell } from './harness.mjs';

test('an administrator watches read-only, joins and is handed the keyboard, then terminates; every browser is told', async () => {
  const server = await startServer();
  const sshd = startSshd();
  const target = sshd.user('E2e-Watch-Pw!81k');
  const { browser, close } = await launchBrowser();
  try {
    // The administrator's browser: set-up, then the engineer gets Connect on the account.
    const adminCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1300, height: 800 } });
    const { admin, resource } = await adminWithSshResource(adminCtx, server, sshd);
    const account = await admin.call('POST', `/resources/${resource.id}/accounts`, { username: target, secret: 'E2e-Watch-Pw!81k' });
    const eng = await admin.call('POST', '/users', { username: 'engineer', role: 'password_user' });
    await admin.call('POST', '/shares', { subject_kind: 'user', subject_id: eng.user.id, object_kind: 'account', object_id: account.id, level: 'connect' });

    // The engineer's browser.
    const engCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 700 } });
    const engApi = await apiSession(engCtx, server.url, 'engineer', eng.one_time_password);
    await engApi.call('POST', '/auth/password', { current_password: eng.one_time_password, new_password: 'a member passphrase, long' });
    const engPage = await engCtx.newPage();
    await engPage.goto(server.url);
    const tab = await clickConnect(engCtx, engPage, target);
    await waitForShell(tab);
    await run(tab, 'echo before-watch-$((2+3))');
    await waitForLine(tab, 'before-watch-5');

    // The administrator finds it on Live sessions and watches.
    const adminPage = await adminCtx.newPage();
    await adminPage.goto(`${server.url}/#/sessions`);
    const row = adminPage.locator('[data-testid=live-sessions] tr', { hasText: 'engineer' });
    await row.waitFor();
    const [watch] = await Promise.all([adminCtx.waitForEvent('page'), row.locator('[data-testid=watch-session]').click()]);
    await watch.waitForSelector('[data-testid=read-only]');
    await waitForLine(watch, 'before-watch-5'); // the screen so far, at once
    assert.match(await watch.textContent('[data-testid=terminal-bar]'), /Watching engineer's session/);

    // The engineer is told, and keeps working; the observer sees it live; its keys go nowhere.
    await tab.waitForSelector('[data-testid=session-participants]:has-text("admin (observer)")');
    await watch.locator('[data-testid=terminal]').click();
    await watch.keyboard.type('echo observer-typed');
    await watch.keyboard.press('Enter');
    await tab.locator('[data-testid=terminal]').click();
    await run(tab, 'echo live-$((6*7))');
    await waitForLine(watch, 'live-42');
    await waitForLine(tab, 'live-42');
    assert.ok(!(await tab.locator('.xterm-rows').innerText()).includes('observer-typed'), "the observer's keys reached the shell");
    await adminPage.waitForSelector('[data-testid=live-sessions] td:has-text("admin (observer)")');

    // The administrator joins as a peer; the engineer hands over the keyboard; the peer's
    // command runs in the engineer's shell.
    const [peer] = await Promise.all([adminCtx.waitForEvent('page'), row.locator('[data-testid=join-session]').click()]);
    await peer.waitForSelector('[data-testid=terminal] .xterm-rows');
    await tab.waitForSelector('[data-testid=keyboard]:has-text("Keyboard: engineer")');
    await tab.click('[data-testid=keyboard] >> text=Give to admin');
    await peer.waitForSelector('[data-testid=keyboard]:has-text("Keyboard: admin")');
    await peer.locator('[data-testid=terminal]').click();
    await run(peer, 'echo from-the-peer-$((5*5))');
    await waitForLine(tab, 'from-the-peer-25');
    await tab.click('[data-testid=keyboard] >> text=Take the keyboard');
    await tab.waitForSelector('[data-testid=keyboard]:has-text("Keyboard: engineer")');

    // Terminate with a reason: both browsers show who, when and why.
    adminPage.once('dialog', (d) => d.accept('suspicious activity'));
    await row.locator('[data-testid=terminate-session]').click();
    for (const page of [tab, watch, peer]) {
      await page.waitForSelector('[data-testid=session-ended]', { timeout: 20000 });
      assert.match(await page.textContent('[data-testid=session-ended]'), /Terminated by admin at .*: suspicious activity/);
    }
    await adminPage.waitForSelector('[data-testid=live-sessions] td:has-text("No live sessions.")');

    // Session limits of the resource, set on its page: a bad value is named, a good one applies.
    await adminPage.goto(`${server.url}/#/resources/${resource.id}`);
    const limits = adminPage.locator('[data-testid=session-limits]');
    await limits.waitFor();
    assert.match(await limits.textContent(), /idle none, at most none/);
    await limits.locator('input[name=idle_limit]').fill('soon');
    await limits.locator('button', { hasText: 'Save limits' }).click();
    await adminPage.waitForSelector('[data-field=idle_limit]');
    await limits.locator('input[name=idle_limit]').fill('15m');
    await limits.locator('input[name=max_duration]').fill('8h');
    await limits.locator('button', { hasText: 'Save limits' }).click();
    await adminPage.waitForSelector('[data-testid=session-limits]:has-text("idle 15 min, at most 8 h")');
    const applied = await engApi.call('GET', `/resources/${resource.id}/session-limits`);
    assert.deepEqual(applied.applied, { idle_limit_s: 900, max_duration_s: 28800 });
  } finally {
    await close();
    server.stop();
  }
});
