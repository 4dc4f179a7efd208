// Why: the session tab. It asks the API for a launch ticket (or, after a reload, a ticket to
// re-attach to the same live session), opens the session WebSocket and drives an xterm.js
// terminal that fills the tab. Protocol: docs/websocket-protocol.md. The credential never
// comes here: the gateway logs in; this page only sees the terminal.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { api, ApiError } from '../api';

type Phase = { kind: 'starting' } | { kind: 'connecting' } | { kind: 'connected' } | { kind: 'ended'; title: string; message: string };

export const storageKey = (accountId: string, protocol?: string) => `portcullis.session.${accountId}${protocol ? '.' + protocol : ''}`;

/** A launch ticket; `size` is the terminal's (cols, rows) or the desktop's (width, height). */
export async function ticketFor(accountId: string, protocol: string | undefined, size: Record<string, number>, watch?: string, join?: string): Promise<{ url: string }> {
  // Watching or joining someone else's session: a ticket of its own, nothing to re-attach to.
  if (watch) return api('POST', `/sessions/${watch}/watch`);
  if (join) return api('POST', `/sessions/${join}/join`);
  // A reloaded tab goes back to its live session instead of starting another one.
  const previous = sessionStorage.getItem(storageKey(accountId, protocol));
  if (previous) {
    try {
      return await api('POST', `/sessions/${previous}/attach`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      sessionStorage.removeItem(storageKey(accountId, protocol));
    }
  }
  return api('POST', '/sessions', protocol ? { account_id: accountId, protocol, ...size } : { account_id: accountId, ...size });
}

interface Participant { name: string; role: string; since_ms: number }

interface Control { holder: string; shared: boolean }

/** A session tab: your own session (`accountId`), someone's you watch (`watch`, read-only),
 *  or someone's you join as a peer (`join`: you type when given the keyboard). */
export function TerminalPage(props: { accountId: string; protocol?: 'telnet'; watch?: string; join?: string }) {
  const watching = !!props.watch;
  const guest = watching || !!props.join;
  const [control, setControl] = useState<Control | null>(null);
  const [you, setYou] = useState('');
  const [role, setRole] = useState('');
  const [sessionId, setSessionId] = useState('');
  const [participants, setParticipants] = useState<Participant[]>([]);
  const [owner, setOwner] = useState('');
  const [warning, setWarning] = useState<string | null>(null);
  const host = useRef<HTMLDivElement>(null);
  const [phase, setPhase] = useState<Phase>({ kind: 'starting' });
  const [title, setTitle] = useState('');
  const [started, setStarted] = useState<number | null>(null);
  const [now, setNow] = useState(Date.now());
  const [attempt, setAttempt] = useState(0);
  const [recorded, setRecorded] = useState(false);
  const [logon, setLogon] = useState<string | null>(null);

  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);

  useEffect(() => {
    if (!host.current) return;
    const term = new Terminal({ cursorBlink: !watching, fontSize: 14, scrollback: 5000, allowProposedApi: false, disableStdin: watching });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current);
    fit.fit();
    term.focus();
    let ws: WebSocket | null = null;
    let snapshotNext = false;
    let closedByUs = false;
    const encoder = new TextEncoder();
    const sendResize = () => !guest && ws?.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    const onWindowResize = () => { fit.fit(); sendResize(); };
    window.addEventListener('resize', onWindowResize);
    // Ctrl+Shift+C / Ctrl+Shift+V copy and paste (plain Ctrl+C must stay an interrupt).
    // Pasting through term.paste() honours the shell's bracketed-paste mode.
    term.attachCustomKeyEventHandler((e) => {
      if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey) return true;
      if (e.code === 'KeyC') {
        const selected = term.getSelection();
        if (selected) void navigator.clipboard?.writeText(selected);
        e.preventDefault();
        return false;
      }
      if (e.code === 'KeyV') {
        void navigator.clipboard?.readText().then((t) => term.paste(t)).catch(() => undefined);
        e.preventDefault();
        return false;
      }
      return true;
    });
    const data = term.onData((d) => {
      setWarning((w) => (w && w.includes('idle') ? null : w));
      if (ws?.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
    });
    const binary = term.onBinary((d) => ws?.readyState === WebSocket.OPEN && ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0))));

    (async () => {
      let ticket: { url: string };
      try {
        ticket = await ticketFor(props.accountId, props.protocol, { cols: term.cols, rows: term.rows }, props.watch, props.join);
      } catch (e) {
        setPhase({ kind: 'ended', title: 'Cannot open the session', message: e instanceof Error ? e.message : String(e) });
        return;
      }
      setPhase({ kind: 'connecting' });
      ws = new WebSocket(`wss://${location.host}${ticket.url}`);
      ws.binaryType = 'arraybuffer';
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') {
          if (snapshotNext) { term.reset(); snapshotNext = false; }
          term.write(new Uint8Array(ev.data as ArrayBuffer));
          return;
        }
        const m = JSON.parse(ev.data);
        switch (m.type) {
          case 'session':
            if (!guest) sessionStorage.setItem(storageKey(props.accountId, props.protocol), m.id);
            setOwner(m.owner ?? '');
            setYou(m.you ?? '');
            setRole(m.role ?? '');
            setSessionId(m.id);
            if (m.control) setControl(m.control);
            setTitle(`${m.account}@${m.resource}${m.path?.length ? ' via ' + m.path.join(' → ') : ''}`);
            setStarted(m.started_at_ms);
            setRecorded(!!m.recorded);
            document.title = `${m.account}@${m.resource} — Portcullis`;
            break;
          case 'status':
            setPhase({ kind: m.state === 'connected' ? 'connected' : 'connecting' });
            if (m.state === 'connected') sendResize();
            break;
          case 'snapshot':
            snapshotNext = true;
            // A guest's terminal takes the session's size.
            if (guest) term.resize(m.cols, m.rows);
            break;
          case 'resize':
            if (guest) term.resize(m.cols, m.rows);
            break;
          case 'participants':
            setParticipants(m.participants ?? []);
            if (m.control) setControl(m.control);
            break;
          case 'notice':
            setWarning(m.message);
            break;
          case 'marker':
            // Limits warn before they end the session; typing clears an idle warning.
            if (String(m.text).startsWith('Warning:')) setWarning(m.text);
            // A Telnet logon script reports each step it passes.
            if (String(m.text).startsWith('Logon step')) setLogon(m.text);
            break;
          case 'error':
            if (!guest) sessionStorage.removeItem(storageKey(props.accountId, props.protocol));
            setPhase({ kind: 'ended', title: 'The session could not continue', message: m.message });
            break;
          case 'exit':
            if (!guest) sessionStorage.removeItem(storageKey(props.accountId, props.protocol));
            setPhase({ kind: 'ended', title: 'Session ended', message: m.reason });
            break;
        }
      };
      ws.onclose = () => {
        if (closedByUs) return;
        setPhase((p) => (p.kind === 'ended' ? p : { kind: 'ended', title: 'Connection lost', message: 'The connection to the gateway was lost. Reconnect to return to your session (it waits for you for a minute).' }));
      };
    })();

    return () => {
      closedByUs = true;
      window.removeEventListener('resize', onWindowResize);
      data.dispose();
      binary.dispose();
      ws?.close();
      term.dispose();
    };
  }, [props.accountId, props.watch, props.join, attempt]);
  const others = participants.filter((p) => p.role !== 'owner');
  const typists = participants.filter((p) => p.role === 'owner' || p.role === 'peer').map((p) => p.name).filter((n, i, a) => a.indexOf(n) === i);
  // The owner hands the keyboard over (administrators may too, from their peer tab).
  const mayHand = role === 'owner' || role === 'peer';
  const hand = async (body: { holder?: string; shared?: boolean }) => {
    try { await api('POST', `/sessions/${sessionId}/control`, body); } catch (e) { setWarning(e instanceof Error ? e.message : String(e)); }
  };

  const elapsed = started ? Math.max(0, Math.floor((now - started) / 1000)) : 0;
  const clock = `${Math.floor(elapsed / 3600)}:${String(Math.floor(elapsed / 60) % 60).padStart(2, '0')}:${String(elapsed % 60).padStart(2, '0')}`;
  return (
    <div class="terminal-page">
      <div class="terminal-bar" data-testid="terminal-bar">
        <b>{watching ? `Watching ${owner}'s session ${title}` : title || 'Portcullis session'}</b>
        {watching && <span class="badge warn" data-testid="read-only">read-only</span>}
        {props.join && <span class="badge warn">joined as peer</span>}
        {control && others.length > 0 && (
          <span data-testid="keyboard">
            Keyboard: <b>{control.shared ? 'shared' : control.holder}</b>
            {mayHand && typists.filter((n) => n !== control.holder).map((n) => (
              <button class="link" onClick={() => hand({ holder: n })}>{n === you ? 'Take the keyboard' : `Give to ${n}`}</button>
            ))}
            {mayHand && <button class="link" onClick={() => hand({ shared: !control.shared })}>{control.shared ? 'Stop shared typing' : 'Allow shared typing'}</button>}
          </span>
        )}
        <span class={'badge state-' + phase.kind} data-testid="session-state">{phase.kind}</span>
        {phase.kind === 'connecting' && logon && <span class="muted" data-testid="logon-progress">{logon}</span>}
        {started && <span class="muted">connected {clock}</span>}
        {recorded && <span class="badge recorded" data-testid="session-recorded" title="This session is recorded and can be replayed by auditors">● recorded</span>}
        <span class="muted" title="Select text with the mouse to copy it">Copy: Ctrl+Shift+C · Paste: Ctrl+Shift+V</span>
        <span class="spacer" />
        <a href="#/accounts">Back to Connect</a>
      </div>
      {warning && <div class="terminal-banner" role="alert" data-testid="session-warning">⚠ {warning}</div>}
      {others.length > 0 && (
        <div class="terminal-banner" data-testid="session-participants">
          {others.map((p) => `${p.name} (${p.role})`).join(', ')} {others.length === 1 ? 'is' : 'are'} watching this session.
        </div>
      )}
      <div class="terminal-host" ref={host} data-testid="terminal" />
      {phase.kind === 'ended' && (
        <div class="terminal-end" role="alert" data-testid="session-ended">
          <h2>{phase.title}</h2>
          <p>{phase.message}</p>
          <button class="primary" onClick={() => setAttempt(attempt + 1)}>Reconnect</button>
        </div>
      )}
    </div>
  );
}
