// RDP in a real Chromium against a real xrdp: the engineer clicks Connect (RDP), the canvas
// shows the target's desktop (its known root colour), typing into the remote xterm creates a
// file on the target, the remote desktop follows the tab's size, a moving photograph is drawn
// from JPEG and then exactly, and the password never reaches the browser (canary).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiSession, launchBrowser, ROOT_RGB, startServer, startSshd, startXrdp, XSESSION } from './harness.mjs';

const sshd = startSshd();
const xrdp = startXrdp();
const PASSWORD = 'E2e-Rdp-Canary-Pw!58';

const pixel = (tab, x, y) => tab.evaluate(([x, y]) => {
  const c = document.querySelector('canvas[data-testid=desktop]');
  if (!c || c.width <= x || c.height <= y) return null;
  return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
}, [x, y]);

// Whether a binary desktop frame (as latin1 text) holds a copied rectangle (a scroll).
const hasCopy = (f) => {
  const b = Buffer.from(f, 'latin1');
  for (let at = 0; at + 12 <= b.length;) {
    const len = b.readUInt32BE(at + 8);
    if (len === 0xffffffff) return true;
    at += 12 + len;
  }
  return false;
};

// Whether a binary desktop frame holds a JPEG rectangle (a moving photograph).
const hasJpeg = (f) => {
  const b = Buffer.from(f, 'latin1');
  for (let at = 0; at + 12 <= b.length;) {
    const len = b.readUInt32BE(at + 8);
    if (len === 0xffffffff) { at += 16; continue; }
    if (b[at + 12] === 0xff && b[at + 13] === 0xd8 && b[at + 14] === 0xff) return true;
    at += 12 + len;
  }
  return false;
};

/** A photograph-like picture (smooth light with grain) as an XWD file that xwud shows pixel
 *  for pixel, and its pixels as RGB. */
function photoXwd(w, h, seed) {
  let g = (0x9e3779b9 ^ (seed * 0x85ebca6b)) >>> 0 || 1;
  const rgb = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      g ^= g << 13; g >>>= 0; g ^= g >>> 17; g ^= g << 5; g >>>= 0;
      const grain = g % 24;
      const i = (y * w + x) * 3;
      rgb[i] = ((Math.floor((x * 255) / w) + seed * 37) % 200) + grain;
      rgb[i + 1] = (Math.floor((y * 255) / h) % 200) + grain;
      rgb[i + 2] = ((Math.floor(((x + y) * 128) / (w + h)) + seed * 18) % 200) + (grain >> 1);
    }
  }
  const name = Buffer.from('photo\0');
  // XWD version 7: ZPixmap, depth 24, MSB first, 32 bits per pixel, TrueColor.
  const fields = [100 + name.length, 7, 2, 24, w, h, 0, 1, 32, 1, 32, 32, w * 4, 4, 0xff0000, 0xff00, 0xff, 8, 256, 0, w, h, 0, 0, 0];
  const header = Buffer.alloc(100);
  fields.forEach((v, i) => header.writeUInt32BE(v, i * 4));
  const pixels = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) rgb.copy(pixels, i * 4 + 1, i * 3, i * 3 + 3);
  return { file: Buffer.concat([header, name, pixels]), rgb };
}

const near = (p, want) => !!p && p.every((v, i) => Math.abs(v - want[i]) <= 8);

async function waitForPixel(tab, x, y, want, what) {
  const deadline = Date.now() + 40000;
  let last = null;
  while (Date.now() < deadline) {
    last = await pixel(tab, x, y);
    if (near(last, want)) return;
    await tab.waitForTimeout(200);
  }
  assert.fail(`${what}: pixel (${x}, ${y}) is ${JSON.stringify(last)}, not ${JSON.stringify(want)}`);
}

test('an RDP desktop in the browser: the canvas shows it, typing reaches the target, the recording replays it', async () => {
  const server = await startServer();
  const user = sshd.user(PASSWORD);
  sshd.file(user, '.xsession', '755', XSESSION);
  const { browser, close } = await launchBrowser();
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    const received = [];
    // Per socket: binary frames received, the last `drawn` count the page sent, and the most
    // frames it ever had received and not yet drawn.
    const sockets = [];
    ctx.on('page', (p) => p.on('websocket', (ws) => {
      const s = { binaries: 0, drawn: 0, maxUndrawn: 0 };
      sockets.push(s);
      ws.on('framereceived', (f) => {
        received.push(typeof f.payload === 'string' ? f.payload : Buffer.from(f.payload).toString('latin1'));
        if (typeof f.payload !== 'string') { s.binaries += 1; s.maxUndrawn = Math.max(s.maxUndrawn, s.binaries - s.drawn); }
      });
      ws.on('framesent', (f) => {
        if (typeof f.payload === 'string' && f.payload.includes('"drawn"')) s.drawn = JSON.parse(f.payload).frames;
      });
    }));
    const admin = await apiSession(ctx, server.url, 'admin', server.password);
    await admin.call('POST', '/auth/password', { current_password: server.password, new_password: 'operator passphrase one' });
    const resource = await admin.call('POST', '/resources', { name: 'lab-desktop', host: '127.0.0.1', resource_type: 'linux', ports: { rdp: xrdp.port }, policy_id: 'policy-low' });
    await admin.call('POST', `/resources/${resource.id}/accounts`, { username: user, secret: PASSWORD });

    const page = await ctx.newPage();
    // The resource page shows the RDP settings; the administrator chooses TLS only (xrdp has
    // no NLA) and is told what that means for a wrong password.
    await page.goto(`${server.url}/#/resources/${resource.id}`);
    const settings = page.locator('[data-testid=rdp-settings]');
    await settings.locator('text=NLA preferred').waitFor();
    await settings.locator('[data-testid=edit-rdp]').click();
    await settings.locator('select[name=security]').selectOption('tls');
    // Thrifty is the default; this desktop is never to be held back under a flood.
    assert.equal(await settings.locator('select[name=flood_pacing]').inputValue(), 'thrifty');
    await settings.locator('select[name=flood_pacing]').selectOption('immediate');
    await settings.locator('button[type=submit]').click();
    await settings.locator('text=a wrong password cannot be detected').waitFor();
    await settings.locator('[data-testid=rdp-display] >> text=follows the browser tab').waitFor();
    await settings.locator('[data-testid=rdp-image-quality] >> text=photographs as JPEG while they move').waitFor();
    await settings.locator('[data-testid=rdp-flood-pacing] >> text=immediate (never held back').waitFor();
    const stored = await admin.call('GET', `/resources/${resource.id}/rdp`);
    assert.equal(stored.security, 'tls');
    assert.equal(stored.flood_pacing, 'immediate');
    await page.goto(`${server.url}/#/accounts`);
    const row = page.locator('[data-testid=accounts] tr', { hasText: user });
    await row.waitFor();
    const [tab] = await Promise.all([ctx.waitForEvent('page'), row.locator('[data-testid=connect-rdp]').click()]);
    await tab.waitForSelector('canvas[data-testid=desktop]');
    await tab.waitForSelector('[data-testid=session-state] >> text=connected', { timeout: 40000 });
    // The desktop is the tab's size, and shows the target's root colour and its xterm.
    let size = await tab.evaluate(() => { const c = document.querySelector('canvas[data-testid=desktop]'); return [c.width, c.height]; });
    assert.ok(size[0] >= 1000 && size[1] >= 600, `desktop ${size}`);
    await waitForPixel(tab, size[0] - 30, size[1] - 30, ROOT_RGB, 'the root window');
    await waitForPixel(tab, 200, 100, [255, 255, 255], 'the xterm');
    // The desktop's pointer shape is the canvas's cursor.
    await tab.waitForFunction(() => document.querySelector('canvas[data-testid=desktop]').style.cursor.startsWith('url("data:image/png'), null, { timeout: 20000 });
    // Pointer over the xterm (it takes the keyboard), then type a command.
    const box = await tab.locator('canvas[data-testid=desktop]').boundingBox();
    const scale = box.width / size[0];
    await tab.mouse.move(box.x + 200 * scale, box.y + 100 * scale);
    await tab.mouse.click(box.x + 200 * scale, box.y + 100 * scale);
    await tab.keyboard.type('touch made-in-chromium');
    await tab.keyboard.press('Enter');
    const made = `/home/${user}/made-in-chromium`;
    const deadline = Date.now() + 15000;
    while (!existsSync(made) && Date.now() < deadline) await tab.waitForTimeout(100);
    assert.ok(existsSync(made), `the remote xterm did not create ${made}`);
    // The tab gets smaller: the remote desktop follows it (xrdp's display control), and the
    // X server on the target has that size.
    await tab.setViewportSize({ width: 1000, height: 700 });
    const want = await tab.evaluate(() => { const h = document.querySelector('.desktop-host'); return [Math.floor(h.clientWidth / 4) * 4, h.clientHeight]; });
    assert.notDeepEqual(want, size);
    await tab.waitForFunction(([w, h]) => { const c = document.querySelector('canvas[data-testid=desktop]'); return c.width === w && c.height === h; }, want, { timeout: 20000 });
    await tab.locator(`[data-testid=desktop-size] >> text=${want[0]}×${want[1]}`).waitFor();
    size = want;
    await waitForPixel(tab, size[0] - 30, size[1] - 30, ROOT_RGB, 'the resized root window');
    await waitForPixel(tab, 200, 100, [255, 255, 255], 'the xterm after the resize');
    const box2 = await tab.locator('canvas[data-testid=desktop]').boundingBox();
    await tab.mouse.click(box2.x + 200 * (box2.width / size[0]), box2.y + 100 * (box2.width / size[0]));
    // Key positions travel, so '>' is typed as the keys that make it.
    await tab.keyboard.type('xrandr ');
    await tab.keyboard.press('Shift+Period');
    await tab.keyboard.type('size.txt');
    await tab.keyboard.press('Enter');
    const sizeFile = `/home/${user}/size.txt`;
    const until0 = Date.now() + 15000;
    while (!(existsSync(sizeFile) && readFileSync(sizeFile, 'utf8').includes('current')) && Date.now() < until0) await tab.waitForTimeout(100);
    assert.ok(readFileSync(sizeFile, 'utf8').includes(`current ${size[0]} x ${size[1]}`), readFileSync(sizeFile, 'utf8'));
    // Full screen locks the keyboard (Alt+Tab, the Windows key and Esc go to the desktop);
    // the desktop follows the screen's size; leaving full screen unlocks and sizes it back.
    await tab.locator('[data-testid=full-screen]').click();
    await tab.waitForFunction(() => document.fullscreenElement?.classList.contains('desktop-host'), null, { timeout: 10000 });
    await tab.locator('[data-testid=keys-locked]').waitFor({ state: 'attached', timeout: 10000 });
    await tab.evaluate(() => document.exitFullscreen());
    await tab.waitForFunction(() => !document.fullscreenElement && !document.querySelector('[data-testid=keys-locked]'), null, { timeout: 10000 });
    await tab.waitForFunction(([w, h]) => { const c = document.querySelector('canvas[data-testid=desktop]'); return c.width === w && c.height === h; }, size, { timeout: 20000 });
    await waitForPixel(tab, 200, 100, [255, 255, 255], 'the xterm after full screen');
    // A reload re-attaches to the same desktop (no new session), which is shown at once.
    await tab.reload();
    await tab.waitForSelector('[data-testid=session-state] >> text=connected', { timeout: 20000 });
    await waitForPixel(tab, size[0] - 30, size[1] - 30, ROOT_RGB, 'the root window after a reload');
    assert.equal((await admin.call('GET', '/sessions')).filter((x) => x.protocol === 'rdp').length, 1, 'one RDP session after the reload');
    // The xterm scrolls line by line: that travels as copies within the picture plus the new
    // rows, which the page applies to its canvas (compared with an observer's picture below).
    // The script first fills the xterm at once, so that every later line scrolls it; then it
    // prints a line every 300 ms. Lines much faster than that are a flood, which is held back
    // and redrawn whole instead (tests/rdp.rs tests floods): at 20 lines a second a slower
    // machine took it for one.
    sshd.file(user, 'scroll.sh', '755', 'seq 1 30; sleep 1; touch filled; sleep 0.5; for i in $(seq 1 6); do echo line-$i; sleep 0.3; done; touch scrolled\n');
    const box3 = await tab.locator('canvas[data-testid=desktop]').boundingBox();
    await tab.mouse.click(box3.x + 200 * (box3.width / size[0]), box3.y + 100 * (box3.width / size[0]));
    await tab.keyboard.type('sh scroll.sh');
    await tab.keyboard.press('Enter');
    const waitForFile = async (path, what) => {
      const until = Date.now() + 15000;
      while (!existsSync(path) && Date.now() < until) await tab.waitForTimeout(50);
      assert.ok(existsSync(path), what);
    };
    await waitForFile(`/home/${user}/filled`, 'the scrolling script did not fill the xterm');
    const framesBefore = received.length;
    await waitForFile(`/home/${user}/scrolled`, 'the scrolling script did not finish');
    await tab.waitForTimeout(1000);
    assert.ok(received.slice(framesBefore).some(hasCopy), 'no scroll reached the browser as a copy');
    // A slideshow beside the xterm: the moving photographs arrive as JPEG, which the page
    // draws (close to the picture, not exact); the last one, once still, arrives again
    // exactly.
    const [pw, ph, px, py] = [240, 180, 600, 380];
    const photos = join(tmpdir(), `portcullis-e2e-photos-${process.pid}`);
    mkdirSync(photos, { recursive: true });
    chmodSync(photos, 0o755);
    let last = null;
    let slides = '';
    for (let seed = 1; seed <= 4; seed++) {
      const p = photoXwd(pw, ph, seed);
      const path = join(photos, `photo-${seed}.xwd`);
      writeFileSync(path, p.file);
      chmodSync(path, 0o644);
      slides += `xwud -noclick -geometry +${px}+${py} -in ${path} &\nsleep 0.3\n`;
      last = p.rgb;
    }
    sshd.file(user, 'slides.sh', '644', slides);
    // Mean difference per channel between a canvas's photograph and the last one's pixels.
    // `stride`: every stride-th pixel only. The tab is throttled twentyfold below, so a full
    // comparison took longer than the JPEG stays on the canvas (a second before it is sent
    // again exactly) and the lossy picture could go unseen; a sample is fast enough to catch
    // it, and exactness is then confirmed on every pixel.
    const meanError = (t, canvas, stride = 1) => t.evaluate(([canvas, px, py, pw, ph, want, stride]) => {
      const d = document.querySelector(`canvas[data-testid=${canvas}]`).getContext('2d').getImageData(px, py, pw, ph).data;
      // Decoded once per page (the same photograph every call).
      if (window.__pcWantB64 !== want) {
        window.__pcWant = Uint8Array.from(atob(want), (c) => c.charCodeAt(0));
        window.__pcWantB64 = want;
      }
      const rgb = window.__pcWant;
      let sum = 0;
      let n = 0;
      for (let i = 0; i < pw * ph; i += stride) { n++; for (let c = 0; c < 3; c++) sum += Math.abs(d[i * 4 + c] - rgb[i * 3 + c]); }
      return sum / (n * 3);
    }, [canvas, px, py, pw, ph, last.toString('base64'), stride]);
    const photoError = async () => {
      const sampled = await meanError(tab, 'desktop', 17);
      return sampled === 0 ? meanError(tab, 'desktop') : sampled;
    };
    const framesBeforeSlides = received.length;
    await tab.mouse.click(box3.x + 200 * (box3.width / size[0]), box3.y + 100 * (box3.width / size[0]));
    await tab.keyboard.type('sh slides.sh');
    await tab.keyboard.press('Enter');
    // The tab's CPU is slowed twentyfold meanwhile (Chromium's own throttling): a slow
    // browser, which the gateway must not send more than 4 undrawn frames.
    const cdp = await ctx.newCDPSession(tab);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 20 });
    let sawLossy = false;
    let err = 255;
    const until2 = Date.now() + 20000;
    while (Date.now() < until2) {
      err = await photoError();
      if (err === 0) break;
      if (err < 8) sawLossy = true;
      await tab.waitForTimeout(50);
    }
    assert.equal(err, 0, 'the last photograph is not shown exactly');
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 });
    // The page said what it drew, every frame of it, and was never more than the gateway's
    // window (4 frames) ahead of that.
    const own = sockets.filter((s) => s.binaries > 0);
    assert.ok(own.length >= 1, 'no desktop socket');
    const current = own[own.length - 1];
    const untilDrawn = Date.now() + 5000;
    while (current.drawn !== current.binaries && Date.now() < untilDrawn) await tab.waitForTimeout(50);
    assert.equal(current.drawn, current.binaries, `the page drew ${current.drawn} of ${current.binaries} frames`);
    for (const s of own) assert.ok(s.maxUndrawn <= 4, `${s.maxUndrawn} frames were undrawn at once`);
    assert.ok(received.slice(framesBeforeSlides).some(hasJpeg), 'no JPEG reached the browser');
    // Whether a sample caught the JPEG on the canvas before it was sent again exactly (a
    // second later) is a race with the tab's throttled clock: it missed in 2 of 9 full runs
    // here even sampling fast. That JPEG frames were sent and every one drawn is asserted
    // above; the picture at rest is checked exactly. What was seen is only reported.
    if (!sawLossy) console.log('# note: no sample caught the JPEG phase on the canvas this run');
    // An administrator watches from the Live sessions page: the same desktop, read-only.
    const live0 = await admin.call('GET', '/sessions');
    const watched = live0.find((x) => x.protocol === 'rdp');
    await page.goto(`${server.url}/#/sessions`);
    // The owner's browser is listed with how it keeps up with the desktop's frames.
    const ownerDrawing = watched.participants.find((p) => p.role === 'owner')?.drawing;
    assert.ok(ownerDrawing && ownerDrawing.frames_drawn > 0 && ownerDrawing.frames_drawn <= current.binaries && ownerDrawing.window >= 1, JSON.stringify(ownerDrawing));
    // And how old the pictures it drew were, from the gateway reading xrdp's update to this
    // browser saying it drew it (the slideshow's frames were all drawn, so there are some).
    const { update_to_drawn_p50_ms: p50, update_to_drawn_p95_ms: p95 } = ownerDrawing;
    assert.ok(Number.isInteger(p50) && Number.isInteger(p95) && p50 <= p95, JSON.stringify(ownerDrawing));
    await page.locator('[data-testid=live-sessions] tr', { hasText: user }).locator('[data-testid=participant-drawing]', { hasText: /updates shown in \d+ ms \(95 %: \d+ ms\), \d+ ms behind/ }).waitFor();
    const [watchTab] = await Promise.all([ctx.waitForEvent('page'), page.locator('[data-testid=live-sessions] tr', { hasText: user }).locator('[data-testid=watch-session]').click()]);
    assert.ok(watchTab.url().includes(`#/watch-desktop/${watched.id}`), watchTab.url());
    await watchTab.waitForSelector('[data-testid=read-only]');
    await waitForPixel(watchTab, size[0] - 30, size[1] - 30, ROOT_RGB, 'the observer\'s desktop');
    // The scrolled xterm on the owner's canvas is the gateway's picture, as the observer got it.
    const xterm = (t) => t.evaluate(() => Array.from(document.querySelector('canvas[data-testid=desktop]').getContext('2d').getImageData(0, 0, 480, 310).data));
    const [mine, theirs] = [await xterm(tab), await xterm(watchTab)];
    let differing = 0;
    let within = [Infinity, Infinity, -1, -1];
    for (let i = 0; i < mine.length; i += 4) {
      if (Math.abs(mine[i] - theirs[i]) <= 8) continue;
      differing++;
      const [x, y] = [(i / 4) % 480, Math.floor(i / 4 / 480)];
      within = [Math.min(within[0], x), Math.min(within[1], y), Math.max(within[2], x), Math.max(within[3], y)];
    }
    assert.ok(differing < 50, `${differing} pixels of the xterm differ between the owner's canvas and the observer's, within x ${within[0]}-${within[2]}, y ${within[1]}-${within[3]}`);
    await watchTab.close();
    // An administrator ends the session; the recording replays to the desktop in the player.
    const live = await admin.call('GET', '/sessions');
    const session = live.find((x) => x.protocol === 'rdp');
    await admin.call('POST', `/sessions/${session.id}/terminate`, { reason: 'e2e done' });
    await tab.waitForSelector('text=Session ended');
    let rec = null;
    for (let i = 0; i < 100 && rec?.status !== 'complete'; i++) {
      rec = await admin.call('GET', `/recordings/${session.recording_id}`);
      await page.waitForTimeout(100);
    }
    await page.goto(`${server.url}/#/recordings/${session.recording_id}`);
    await page.waitForSelector('canvas[data-testid=player-desktop]');
    const timeline = page.locator('[data-testid=player-timeline]');
    await timeline.evaluate((el) => { el.value = el.max; el.dispatchEvent(new Event('input', { bubbles: true })); });
    const replayPixel = async () => page.evaluate(([x, y]) => {
      const c = document.querySelector('canvas[data-testid=player-desktop]');
      return c ? Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3)) : null;
    }, [size[0] - 30, size[1] - 30]);
    const until = Date.now() + 15000;
    while (!near(await replayPixel(), ROOT_RGB) && Date.now() < until) await page.waitForTimeout(200);
    assert.ok(near(await replayPixel(), ROOT_RGB), `replayed pixel ${JSON.stringify(await replayPixel())}`);
    // The player drew the same JPEGs and their exact refinement: the last photograph, exact.
    assert.equal(await meanError(page, 'player-desktop'), 0, 'the replayed photograph is not exact');
    // Canary: not a byte of the password reached the browser.
    assert.ok(!received.some((f) => f.includes(PASSWORD)), 'the RDP password reached the browser');
  } finally {
    await close();
    server.stop();
  }
});
