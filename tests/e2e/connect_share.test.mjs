// The foundation's browser story: an administrator logs in for the first time, adds a
// resource and an account, creates an engineer and shares the account with Connect; the
// engineer logs in, sees the account, and has no way to see its secret. Every byte the
// browser received is checked for the canary secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer } from './harness.mjs';

const CANARY = 'CANARY-browser-7Qz!pW2x-991';
const SHOTS = process.env.E2E_SCREENSHOTS; // optional folder for screenshots

test('admin shares an account with Connect; the engineer cannot see its secret', async () => {
  const server = await startServer();
  const { browser, close } = await launchBrowser();
  const received = [];
  try {
    assert.ok(server.password, 'bootstrap password printed');
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    ctx.on('response', async (r) => { try { received.push(await r.text()); } catch { /* redirects, aborted */ } });
    const page = await ctx.newPage();
    const shot = async (name) => SHOTS && page.screenshot({ path: `${SHOTS}/${name}.png` });

    // First login: the bootstrap password forces a change.
    await page.goto(server.url);
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', server.password);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-testid=change-password]');
    await page.fill('input[name=current_password]', server.password);
    await page.fill('input[name=new_password]', 'short');
    await page.fill('input[name=confirm]', 'short');
    await page.click('[data-testid=change-password] button[type=submit]');
    await page.waitForSelector('[data-field=new_password]'); // inline validation, before any request
    await page.fill('input[name=new_password]', 'operator passphrase one');
    await page.fill('input[name=confirm]', 'operator passphrase one');
    await page.click('[data-testid=change-password] button[type=submit]');
    await page.waitForSelector('[data-testid=whoami]');

    // A resource, with inline validation of the host on blur.
    await page.click('nav >> text=Resources');
    await page.click('text=Add resource');
    await page.fill('[data-testid=resource-form] input[name=name]', 'db-prod-1');
    await page.fill('[data-testid=resource-form] input[name=host]', 'not a host!');
    await page.click('[data-testid=resource-form] input[name=name]');
    await page.waitForSelector('[data-field=host]');
    await page.fill('[data-testid=resource-form] input[name=host]', '10.20.0.5');
    await shot('add-resource');
    await page.click('[data-testid=resource-form] button[type=submit]');
    await page.waitForSelector('h1:has-text("db-prod-1")');

    // An account with the canary password.
    await page.click('text=Add account');
    await page.fill('[data-testid=secret-form] input[name=username]', 'root');
    await page.fill('[data-testid=secret-form] input[name=secret]', CANARY);
    await page.click('[data-testid=secret-form] button[type=submit]');
    await page.waitForSelector('[data-testid=resource-accounts] td:has-text("root")');
    const resourceUrl = page.url();

    // The engineer.
    await page.click('nav >> text=Users');
    await page.click('text=Add user');
    await page.fill('[data-testid=user-form] input[name=username]', 'engineer');
    await page.fill('[data-testid=user-form] input[name=full_name]', 'Eng Ineer');
    await page.click('[data-testid=user-form] button[type=submit]');
    const otp = (await page.textContent('[data-testid=one-time-password]')).trim();
    await page.click('text=Done');

    // Share the account with Connect.
    await page.goto(resourceUrl);
    await page.click('[data-testid=resource-accounts] button:has-text("Share…")');
    await page.selectOption('[data-testid=share-form] select[name=subject]', { label: 'engineer (Eng Ineer)' });
    await page.selectOption('[data-testid=share-form] select[name=level]', 'connect');
    await page.click('[data-testid=share-form] button[type=submit]');
    await page.waitForSelector('.modal td:has-text("engineer")');
    await shot('share');
    await page.click('.modal button[aria-label=Close]');
    await page.click('text=Log out');

    // The engineer logs in, changes the one-time password, and sees the account.
    await page.fill('input[name=username]', 'engineer');
    await page.fill('input[name=password]', otp);
    await page.click('button[type=submit]');
    await page.waitForSelector('[data-testid=change-password]');
    await page.fill('input[name=current_password]', otp);
    await page.fill('input[name=new_password]', 'field technician passphrase');
    await page.fill('input[name=confirm]', 'field technician passphrase');
    await page.click('[data-testid=change-password] button[type=submit]');
    await page.click('nav >> text=Connect');
    await page.waitForSelector('[data-testid=accounts] td:has-text("root")');
    await shot('engineer-connect');
    const row = page.locator('[data-testid=accounts] tr', { hasText: 'root' });
    assert.match(await row.textContent(), /connect/);
    assert.match(await row.textContent(), /secret hidden/);
    assert.equal(await page.locator('button:has-text("Reveal")').count(), 0, 'no reveal button for Connect');

    // On the resource page too: no reveal, no change, no share.
    await page.click('[data-testid=accounts] a:has-text("db-prod-1")');
    await page.waitForSelector('[data-testid=resource-accounts] td:has-text("root")');
    for (const label of ['Reveal', 'Change secret', 'Share', 'Add account', 'Edit']) {
      assert.equal(await page.locator(`button:has-text("${label}")`).count(), 0, `engineer sees "${label}"`);
    }
    // Even calling the API from the page is refused.
    const status = await page.evaluate(async () => {
      const me = await (await fetch('/api/v1/auth/me')).json();
      const accounts = await (await fetch('/api/v1/accounts')).json();
      const r = await fetch(`/api/v1/accounts/${accounts[0].id}/reveal`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf_token }, body: JSON.stringify({ reason: 'curious engineer' }),
      });
      return r.status;
    });
    assert.equal(status, 403);
    assert.ok(!(await page.content()).includes(CANARY));
    assert.ok(received.length > 10, 'responses were recorded');
    for (const body of received) assert.ok(!body.includes(CANARY), 'the canary reached the browser');
    assert.ok(!server.log().includes(CANARY), 'the canary reached the server log');
  } finally {
    await close();
    server.stop();
  }
});
