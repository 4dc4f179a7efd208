// Why: the RDP session tab. The gateway decodes RDP and sends only the rectangles that
// changed, as PNGs or (photographic regions while they move) JPEGs, which this page draws on
// a canvas in order; keys travel as key positions
// (KeyboardEvent.code, so the target's own keyboard layout applies) and the pointer as
// desktop coordinates. The credential never comes here. Protocol: docs/websocket-protocol.md.
import { useEffect, useRef, useState } from 'preact/hooks';
import { storageKey, ticketFor } from './terminal';

type Phase = { kind: 'starting' } | { kind: 'connecting' } | { kind: 'connected' } | { kind: 'ended'; title: string; message: string };

type Rect = { x: number; y: number; w: number; h: number; image?: Uint8Array<ArrayBuffer>; from?: [number, number] };

/** The MIME type of an encoded rectangle, from its signature: a JPEG starts FF D8 FF, a PNG
 *  89 'P' 'N' 'G'. */
export function imageType(b: Uint8Array): string {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff ? 'image/jpeg' : 'image/png';
}

/** Splits one binary message into rectangles: x, y, width, height (u16 BE), image length
 *  (u32 BE), image (PNG or JPEG); a length of 0xFFFFFFFF marks a region copied within the
 *  picture (a scroll), followed by the source's x and y (u16 BE). */
export function rectangles(buf: ArrayBuffer): Rect[] {
  const v = new DataView(buf);
  const out: Rect[] = [];
  let at = 0;
  while (at + 12 <= buf.byteLength) {
    const len = v.getUint32(at + 8);
    const r: Rect = { x: v.getUint16(at), y: v.getUint16(at + 2), w: v.getUint16(at + 4), h: v.getUint16(at + 6) };
    if (len === 0xffffffff) {
      if (at + 16 > buf.byteLength) break;
      r.from = [v.getUint16(at + 12), v.getUint16(at + 14)];
      at += 16;
    } else {
      r.image = new Uint8Array(buf, at + 12, len);
      at += 12 + len;
    }
    out.push(r);
  }
  return out;
}

/** A desktop session tab: your own (`accountId`), or someone's you watch or join. */
export function DesktopPage(props: { accountId: string; watch?: string; join?: string }) {
  const guest = !!props.watch || !!props.join;
  const canvas = useRef<HTMLCanvasElement>(null);
  const host = useRef<HTMLDivElement>(null);
  const [phase, setPhase] = useState<Phase>({ kind: 'starting' });
  const [title, setTitle] = useState('');
  const [recorded, setRecorded] = useState(false);
  const [size, setSize] = useState<[number, number] | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  // The session's latest timeline note ("the desktop is now 1280x720", "... joined").
  const [note, setNote] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  // Full screen with the keyboard locked (Chromium's Keyboard Lock API): Alt+Tab, the Windows
  // key and Escape reach the desktop instead of the browser or the system.
  const [keysLocked, setKeysLocked] = useState(false);
  const socket = useRef<WebSocket | null>(null);

  const send = (m: object) => socket.current?.readyState === WebSocket.OPEN && socket.current.send(JSON.stringify(m));
  const keys = (codes: string[]) => {
    for (const code of codes) send({ type: 'key', code, down: true });
    for (const code of [...codes].reverse()) send({ type: 'key', code, down: false });
  };
  const keyboard = () => (navigator as Navigator & { keyboard?: { lock?: () => Promise<void>; unlock?: () => void } }).keyboard;
  const fullScreen = async () => {
    const box = host.current;
    if (!box) return;
    try {
      await box.requestFullscreen();
    } catch {
      setNote('This browser did not allow full screen.');
      return;
    }
    try {
      await keyboard()?.lock?.();
      setKeysLocked(!!keyboard()?.lock);
    } catch {
      setKeysLocked(false);
    }
    canvas.current?.focus();
  };
  useEffect(() => {
    const left = () => {
      if (document.fullscreenElement) return;
      keyboard()?.unlock?.();
      setKeysLocked(false);
    };
    document.addEventListener('fullscreenchange', left);
    return () => document.removeEventListener('fullscreenchange', left);
  }, []);

  useEffect(() => {
    const c = canvas.current;
    const box = host.current;
    if (!c || !box) return;
    const ctx = c.getContext('2d');
    if (!ctx) return;
    let closedByUs = false;
    // Rectangles are drawn strictly in arrival order, each once its image is decoded.
    let drawing: Promise<void> = Promise.resolve();
    // Binary frames drawn so far: the gateway sends only a few more than this, so a browser
    // that draws slower than the desktop changes gets fewer, up-to-date pictures instead of
    // a growing queue of old ones (docs/websocket-protocol.md, "drawn").
    let drawn = 0;
    const draw = (buf: ArrayBuffer) => {
      for (const r of rectangles(buf)) {
        if (r.from) {
          const [sx, sy] = r.from;
          drawing = drawing.then(() => ctx.drawImage(c, sx, sy, r.w, r.h, r.x, r.y, r.w, r.h));
          continue;
        }
        if (!r.image) continue;
        const bitmap = createImageBitmap(new Blob([r.image], { type: imageType(r.image) }));
        drawing = drawing.then(() => bitmap.then((b) => { ctx.drawImage(b, r.x, r.y); b.close(); }).catch(() => undefined));
      }
      drawing = drawing.then(() => { drawn += 1; send({ type: 'drawn', frames: drawn }); });
    };
    // The desktop is the tab's size (rounded to what RDP likes): when it starts, and, for the
    // owner, whenever the tab changes size (the gateway asks the server to follow; where it
    // cannot, or the resource's size is fixed, the picture is scaled to the tab).
    const tabSize = () => [Math.max(200, Math.min(8192, Math.floor(box.clientWidth / 4) * 4)), Math.max(200, Math.min(8192, Math.floor(box.clientHeight)))];
    const [width, height] = tabSize();
    let resizeTimer: number | undefined;
    const resized = new ResizeObserver(() => {
      clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(() => { const [w, h] = tabSize(); send({ type: 'resize', width: w, height: h }); }, 300);
    });
    if (!guest) resized.observe(box);
    (async () => {
      let ticket: { url: string };
      try {
        ticket = await ticketFor(props.accountId, 'rdp', { width, height }, props.watch, props.join);
      } catch (e) {
        setPhase({ kind: 'ended', title: 'Cannot open the session', message: e instanceof Error ? e.message : String(e) });
        return;
      }
      setPhase({ kind: 'connecting' });
      const ws = new WebSocket(`wss://${location.host}${ticket.url}`);
      socket.current = ws;
      ws.binaryType = 'arraybuffer';
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') { draw(ev.data as ArrayBuffer); return; }
        const m = JSON.parse(ev.data);
        switch (m.type) {
          case 'session':
            if (!guest) sessionStorage.setItem(storageKey(props.accountId, 'rdp'), m.id);
            setTitle(`${m.account}@${m.resource}${m.path?.length ? ' via ' + m.path.join(' → ') : ''}`);
            setRecorded(!!m.recorded);
            document.title = `${m.account}@${m.resource} — Portcullis`;
            break;
          case 'status':
            setPhase({ kind: m.state === 'connected' ? 'connected' : 'connecting' });
            break;
          case 'snapshot':
            if (m.desktop) { c.width = m.width; c.height = m.height; setSize([m.width, m.height]); }
            break;
          case 'resize':
            c.width = m.cols; c.height = m.rows; setSize([m.cols, m.rows]);
            break;
          case 'notice':
            setNotice(m.message);
            break;
          case 'marker':
            setNote(m.text);
            break;
          case 'cursor':
            // The desktop's pointer shape becomes this canvas's cursor.
            c.style.cursor = m.png ? `url(data:image/png;base64,${m.png}) ${m.x} ${m.y}, default` : m.shape === 'hidden' ? 'none' : 'default';
            break;
          case 'clipboard':
            // Copied on the desktop (the resource's policy allows it): into this browser's
            // clipboard, when the browser lets the page write it.
            navigator.clipboard?.writeText(m.text).then(() => setNotice('Copied from the desktop to your clipboard.')).catch(() => setNotice('The desktop copied text, but this browser did not let the page put it on your clipboard.'));
            break;
          case 'error':
            if (!guest) sessionStorage.removeItem(storageKey(props.accountId, 'rdp'));
            setPhase({ kind: 'ended', title: 'The session could not continue', message: m.message });
            break;
          case 'exit':
            if (!guest) sessionStorage.removeItem(storageKey(props.accountId, 'rdp'));
            setPhase({ kind: 'ended', title: 'Session ended', message: m.reason });
            break;
        }
      };
      ws.onclose = () => {
        if (closedByUs) return;
        setPhase((p) => (p.kind === 'ended' ? p : { kind: 'ended', title: 'Connection lost', message: 'The connection to the gateway was lost. Reconnect to return to your session (it waits for you for a minute).' }));
      };
    })();

    if (props.watch) return () => { closedByUs = true; resized.disconnect(); socket.current?.close(); };
    // Pointer: desktop coordinates, whatever the canvas's displayed size.
    const at = (e: MouseEvent) => {
      const r = c.getBoundingClientRect();
      return { x: Math.max(0, Math.round(((e.clientX - r.left) * c.width) / r.width)), y: Math.max(0, Math.round(((e.clientY - r.top) * c.height) / r.height)) };
    };
    let moved: MouseEvent | null = null;
    const flushMove = () => { if (moved) { send({ type: 'pointer', ...at(moved), buttons: moved.buttons & 7 }); moved = null; } };
    const onMove = (e: MouseEvent) => { if (!moved) requestAnimationFrame(flushMove); moved = e; };
    const onButton = (e: MouseEvent) => { e.preventDefault(); c.focus(); moved = null; send({ type: 'pointer', ...at(e), buttons: e.buttons & 7 }); };
    const onWheel = (e: WheelEvent) => { e.preventDefault(); send({ type: 'wheel', steps: e.deltaY < 0 ? 1 : -1 }); };
    const onKey = (e: KeyboardEvent) => {
      // Everything goes to the desktop (Tab, Alt, F-keys); the browser keeps only what it
      // never hands to pages (e.g. Ctrl+Alt+Del, Alt+Tab on most systems: see the buttons).
      e.preventDefault();
      const message = { type: 'key', code: e.code, key: e.key, down: e.type === 'keydown' };
      // Pasting: this browser's clipboard text goes to the desktop's first (the server
      // drops it when the resource's policy is off), then the keys that paste it.
      if (e.type === 'keydown' && (e.ctrlKey || e.metaKey) && e.code === 'KeyV' && navigator.clipboard?.readText) {
        navigator.clipboard.readText().then((text) => send({ type: 'clipboard', text })).catch(() => undefined).finally(() => send(message));
        return;
      }
      send(message);
    };
    const onBlur = () => send({ type: 'release' });
    c.addEventListener('mousemove', onMove);
    c.addEventListener('mousedown', onButton);
    c.addEventListener('mouseup', onButton);
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener('wheel', onWheel, { passive: false });
    c.addEventListener('keydown', onKey);
    c.addEventListener('keyup', onKey);
    c.addEventListener('blur', onBlur);
    c.focus();
    return () => {
      closedByUs = true;
      resized.disconnect();
      clearTimeout(resizeTimer);
      c.removeEventListener('mousemove', onMove);
      c.removeEventListener('mousedown', onButton);
      c.removeEventListener('mouseup', onButton);
      c.removeEventListener('wheel', onWheel);
      c.removeEventListener('keydown', onKey);
      c.removeEventListener('keyup', onKey);
      c.removeEventListener('blur', onBlur);
      socket.current?.close();
    };
  }, [props.accountId, props.watch, props.join, attempt]);

  return (
    <div class="terminal-page">
      <div class="terminal-bar" data-testid="terminal-bar">
        <b>{props.watch ? `Watching ${title}` : title || 'Portcullis desktop'}</b>
        {props.watch && <span class="badge warn" data-testid="read-only">read-only</span>}
        <span class={'badge state-' + phase.kind} data-testid="session-state">{phase.kind}</span>
        {size && <span class="muted" data-testid="desktop-size">{size[0]}×{size[1]}</span>}
        {recorded && <span class="badge recorded" data-testid="session-recorded" title="This session is recorded and can be replayed by auditors">● recorded</span>}
        {!props.watch && (
          <>
            <button class="link" data-testid="send-ctrl-alt-del" onClick={() => keys(['ControlLeft', 'AltLeft', 'Delete'])}>Ctrl+Alt+Del</button>
            <button class="link" onClick={() => keys(['MetaLeft'])}>Windows key</button>
            <button class="link" onClick={() => keys(['AltLeft', 'Tab'])}>Alt+Tab</button>
            <button class="link" data-testid="full-screen" onClick={fullScreen} title="Full screen: where the browser allows it, every key (Alt+Tab, the Windows key, Esc) goes to the desktop">Full screen</button>
          </>
        )}
        <span class="spacer" />
        {note && <span class="muted note" data-testid="desktop-note">{note}</span>}
        <a href="#/accounts">Back to Connect</a>
      </div>
      <div class="desktop-host" ref={host}>
        {notice && <div class="terminal-banner" role="alert">⚠ {notice}</div>}
        {keysLocked && <div class="keys-locked" data-testid="keys-locked">Every key goes to the desktop. Hold Esc to leave full screen.</div>}
        <canvas ref={canvas} tabIndex={0} class="desktop" data-testid="desktop" />
      </div>
      {phase.kind === 'ended' && (
        <div class="terminal-end" role="alert" data-testid="session-ended">
          <h2>{phase.title}</h2>
          <p>{phase.message}</p>
          {!guest && <button class="primary" onClick={() => setAttempt(attempt + 1)}>Reconnect</button>}
        </div>
      )}
    </div>
  );
}
