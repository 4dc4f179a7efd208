// A session recorded end to end and replayed in the browser: the engineer's status bar says
// the session is recorded; the administrator finds it under Recorded sessions, sees it
// verified, plays it at 8x, seeks with the timeline, and jumps to a typed command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminWithSshResource, clickConnect, launchBrowser, run, startServer, startSshd, waitForLine, waitForShell } from './harness.mjs';

const playerText = (page) => page.locator('[data-testid=player-screen] .xterm-rows').innerText();
const playerHasLine = (page, line) => page.waitForFunction((l) => {
  const rows = document.querySelector('[data-testid=player-screen] .xterm-rows');
  return !!rows && rows.innerText.split('\n').some((r) => r.trim() === l);
}, line, { timeout: 20000 });

test('a recorded session plays back: 8x, seek, and a click on a typed command', async () => {
  const server = await startServer();
  const sshd = startSshd();
  const target = sshd.user('E2e-Player-Pw!62r');
  const { browser, close } = await launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1300, height: 800 } });
    const { admin, resource } = await adminWithSshResource(ctx, server, sshd);
    await admin.call('POST', `/resources/${resource.id}/accounts`, { username: target, secret: 'E2e-Player-Pw!62r' });
    const page = await ctx.newPage();
    await page.goto(server.url);
    const tab = await clickConnect(ctx, page, target);
    await waitForShell(tab);
    await tab.waitForSelector('[data-testid=session-recorded]');
    await run(tab, 'echo first-$((1+1))');
    await waitForLine(tab, 'first-2');
    await tab.waitForTimeout(3000);
    await run(tab, 'echo second-$((2+2))');
    await waitForLine(tab, 'second-4');
    // A secret prompt: the replay keeps a length; the bytes are kept apart (hidden input).
    await run(tab, "read -s -p 'Password: ' pw; echo; echo got-${#pw}");
    await waitForLine(tab, 'Password:');
    await run(tab, 'e2e-hidden-77');
    await waitForLine(tab, 'got-13');
    await run(tab, 'exit');
    await tab.waitForSelector('[data-testid=session-ended]');
    await tab.close();

    // Found under Recorded sessions (complete once the session has closed).
    await page.goto(`${server.url}/#/recordings`);
    const row = page.locator('[data-testid=recordings] tr', { hasText: target });
    await row.waitFor();
    for (let i = 0; i < 50 && !(await row.textContent()).includes('complete'); i++) {
      await page.waitForTimeout(200);
      await page.click('text=Search');
    }
    await row.locator('[data-testid=play-recording]').click();
    await page.waitForSelector('[data-testid=recording-verification]:has-text("Verified: chain and signed manifest intact")');
    await page.waitForSelector('[data-testid=player-screen] .xterm-rows');
    assert.ok(!(await playerText(page)).includes('second-4'), 'starts at the beginning');

    // Play at 8x: the end appears (how fast is the player's arithmetic, not this machine's).
    await page.selectOption('[data-testid=player-speed]', '8');
    await page.click('[data-testid=player-play]');
    await playerHasLine(page, 'second-4');

    // Seek back to the start with the timeline.
    await page.locator('[data-testid=player-timeline]').fill('0');
    await page.waitForFunction(() => !document.querySelector('[data-testid=player-screen] .xterm-rows')?.innerText.includes('first-2'));
    assert.match(await page.textContent('[data-testid=player-time]'), /^0:00:00 \//);

    // The typed commands are listed; clicking the second jumps to when it was typed:
    // the first command's output is there, the second's is not yet.
    const commands = page.locator('[data-testid=player-commands] li');
    const typed = (await commands.allTextContents()).map((c) => c.replace(/^\d+:\d\d:\d\d\s*/, ''));
    assert.deepEqual(typed.filter((c) => !c.startsWith('read ') && !c.startsWith('[secret')), ['echo first-$((1+1))', 'echo second-$((2+2))', 'exit']);
    assert.ok(typed.some((c) => c.startsWith('[secret')), typed.join(' | '));
    assert.ok(!typed.some((c) => c.includes('e2e-hidden-77')), 'the hidden input is in the replay');
    await commands.nth(1).locator('button').click();
    await playerHasLine(page, 'first-2');
    assert.ok(!(await playerText(page)).split('\n').some((l) => l.trim() === 'second-4'));
    if (process.env.E2E_SCREENSHOTS) await page.screenshot({ path: `${process.env.E2E_SCREENSHOTS}/player.png` });

    // Search: the echoed text is found, and the hit opens the player at that moment.
    await page.goto(`${server.url}/#/recordings`);
    await page.fill('input[name=q]', 'second-4');
    await page.click('text=Search recordings');
    const hit = page.locator('[data-testid=search-hits] tr', { hasText: 'second-4' }).first();
    await hit.waitFor();
    await hit.click();
    await playerHasLine(page, 'second-4');
    await page.waitForSelector('[data-testid=player-hits] li:has-text("second-4")');
    assert.doesNotMatch(await page.textContent('[data-testid=player-time]'), /^0:00:00 \//, 'opened at the hit, not at the start');
    const audit = await admin.call('GET', '/audit?action=recording.play');
    assert.ok(audit.length >= 1, 'playback audited');

    // A super administrator opens the hidden input with a reason; it is an audit alert.
    await page.click('[data-testid=open-hidden-input]');
    await page.click('.modal button:has-text("Open")');
    await page.waitForSelector('.modal .notice.error');
    await page.fill('.modal input[name=reason]', 'e2e check of hidden input');
    await page.click('.modal button:has-text("Open")');
    await page.waitForSelector('[data-testid=hidden-input] li:has-text("e2e-hidden-77")');
    const opened = await admin.call('GET', '/audit?action=recording.hidden_input');
    assert.equal(opened[0].detail.reason, 'e2e check of hidden input');
  } finally {
    await close();
    server.stop();
  }
});
