// Why: the auditor's pages. "Recorded sessions" finds recordings (administrators and
// auditors see all, others their own); the player replays one in the same xterm.js terminal
// the live session used, seeking from the recording's keyframes, with the typed commands
// beside it. Every playback is audited by the server; the browser never sees a key.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { api, Me } from '../api';
import { imageType } from './desktop';
import { bytes, duration, errorsFrom, Modal, Notice, Table, when } from '../ui';

interface RecordingRow {
  id: string; user: string; account: string; resource: string; protocol: string; client_addr: string;
  started_at: string; ended_at: string | null; duration_ms: number; status: string; end_reason: string | null; size_bytes: number;
}

interface Detail extends RecordingRow {
  verification: { problem: string | null; complete?: boolean; chunks?: number };
  commands?: { t_ms: number; command: string }[];
  keyframes_ms?: number[];
  input_recorded?: boolean;
}

type Ev = [number, string, ...unknown[]];
interface Hit { recording_id: string; t_ms: number; line: string; typed: boolean; user: string; account: string; resource: string; started_at: string }
interface Events { cols: number; rows: number; desktop?: boolean; duration_ms: number; events: Ev[] }

/** What the player drives: a terminal or a desktop. */
interface Replay { seek(t: number): void; advance(t: number): void; nextTime(): number | null }

const statusBadge = (s: string) => <span class={'badge ' + (s === 'complete' ? 'level-view' : s === 'recording' ? 'state-connected' : 'warn')}>{s}</span>;

export function Recordings() {
  const [rows, setRows] = useState<RecordingRow[] | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [f, setF] = useState({ user: '', resource: '', protocol: '', from: '', to: '', min_duration_s: '' });
  const load = () => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) {
      if (!v) continue;
      q.set(k, k === 'from' || k === 'to' ? new Date(v).toISOString() : v);
    }
    api<RecordingRow[]>('GET', `/recordings?${q}`).then((r) => { setRows(r); setErr(null); }).catch((e) => setErr(errorsFrom(e)._ ?? Object.values(errorsFrom(e)).join(' ')));
  };
  useEffect(load, []);
  const [q, setQ] = useState('');
  const [hits, setHits] = useState<Hit[] | null>(null);
  const search = (e: Event) => {
    e.preventDefault();
    api<Hit[]>('GET', `/recordings/search?q=${encodeURIComponent(q)}`).then((h) => { setHits(h); setErr(null); }).catch((e) => setErr(errorsFrom(e).q ?? errorsFrom(e)._ ?? String(e)));
  };
  const field = (k: keyof typeof f, label: string, type = 'text') => (
    <label>{label}<input type={type} name={k} value={f[k]} onInput={(e) => setF({ ...f, [k]: (e.target as HTMLInputElement).value })} /></label>
  );
  return (
    <section>
      <h1>Recorded sessions</h1>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); load(); }}>
        {field('user', 'User')}
        {field('resource', 'Resource')}
        <label>Protocol<select name="protocol" value={f.protocol} onChange={(e) => setF({ ...f, protocol: (e.target as HTMLSelectElement).value })}>
          <option value="">any</option><option value="ssh">SSH</option><option value="telnet">Telnet</option><option value="rdp">RDP</option>
        </select></label>
        {field('from', 'From', 'datetime-local')}
        {field('to', 'To', 'datetime-local')}
        {field('min_duration_s', 'Min. seconds', 'number')}
        <button class="primary" type="submit">Search</button>
      </form>
      <form class="filters" onSubmit={search}>
        <label>Search text shown or typed<input type="search" name="q" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} placeholder="e.g. rm -rf or 192.168.1.10" /></label>
        <button type="submit">Search recordings</button>
      </form>
      {err && <Notice kind="error">{err}</Notice>}
      {hits && (
        <Table testid="search-hits" rows={hits} rowKey={(h) => `${h.recording_id}/${h.t_ms}/${h.line}`} empty="No recording contains that."
          onRow={(h) => { location.hash = `#/recordings/${h.recording_id}?t=${h.t_ms}&q=${encodeURIComponent(q)}`; }}
          columns={[
            { key: 'started_at', label: 'Session', render: (h) => `${h.account}@${h.resource} by ${h.user}, ${when(h.started_at)}` },
            { key: 't_ms', label: 'At', value: (h) => h.t_ms, render: (h) => duration(h.t_ms) },
            { key: 'line', label: 'Line', render: (h) => <code>{h.typed ? '⌨ ' : ''}{h.line}</code> },
          ]} />
      )}
      {rows && (
        <Table testid="recordings" rows={rows} rowKey={(r) => r.id} empty="No recordings match." onRow={(r) => { location.hash = `#/recordings/${r.id}`; }}
          columns={[
            { key: 'started_at', label: 'Started', render: (r) => when(r.started_at) },
            { key: 'user', label: 'User' },
            { key: 'target', label: 'Account', value: (r) => `${r.account}@${r.resource}`, render: (r) => `${r.account}@${r.resource}` },
            { key: 'protocol', label: 'Protocol' },
            { key: 'duration_ms', label: 'Duration', value: (r) => r.duration_ms, render: (r) => duration(r.duration_ms) },
            { key: 'status', label: 'Recording', render: (r) => statusBadge(r.status) },
            { key: 'size_bytes', label: 'Size', value: (r) => r.size_bytes, render: (r) => bytes(r.size_bytes) },
            { key: 'play', label: '', value: () => '', render: (r) => <a class="button" href={`#/recordings/${r.id}`} data-testid="play-recording">Play</a> },
          ]} />
      )}
    </section>
  );
}

const b64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
/** Idle gaps longer than this are shortened to it when "skip idle" is on. */
const IDLE_MS = 1500;

/** Plays `events` into `term`: seek by keyframe, then forward in time. */
class Playback implements Replay {
  pos = 0;
  constructor(private term: Terminal, private ev: Ev[]) {}

  /** Redraws the terminal at `t`: the last keyframe at or before it, then what followed. */
  seek(t: number) {
    let start = 0;
    for (let i = 0; i < this.ev.length && this.ev[i][0] <= t; i++) if (this.ev[i][1] === 'k') start = i;
    this.term.reset();
    this.pos = start;
    const first = this.ev[start];
    if (first && first[1] === 'k' && first[0] <= t) {
      this.term.resize(first[3] as number, first[4] as number);
      this.term.write(b64(first[2] as string));
      this.pos = start + 1;
    }
    this.advance(t);
  }

  /** Writes every event up to `t`. Keyframes are only starting points for seeking: while
   *  playing forward the output already drew the same screen. */
  advance(t: number) {
    while (this.pos < this.ev.length && this.ev[this.pos][0] <= t) {
      const [, kind, a] = this.ev[this.pos++];
      if (kind === 'o') this.term.write(b64(a as string));
      else if (kind === 'r') { const [cols, rows] = String(a).split('x').map(Number); this.term.resize(cols, rows); }
    }
  }

  nextTime(): number | null {
    return this.pos < this.ev.length ? this.ev[this.pos][0] : null;
  }
}

/** Plays a desktop (RDP) recording onto a canvas: the last keyframe (a whole-desktop PNG)
 *  at or before the moment, then the rectangles that followed, drawn strictly in order. */
class DesktopPlayback implements Replay {
  pos = 0;
  private drawing: Promise<void> = Promise.resolve();
  private generation = 0;
  private ctx: CanvasRenderingContext2D | null;
  constructor(private canvas: HTMLCanvasElement, private ev: Ev[]) {
    this.ctx = canvas.getContext('2d');
  }

  private draw(image: string, x: number, y: number) {
    const gen = this.generation;
    const bytes = b64(image);
    const bitmap = createImageBitmap(new Blob([bytes], { type: imageType(bytes) }));
    this.drawing = this.drawing.then(() => bitmap.then((b) => { if (gen === this.generation) this.ctx?.drawImage(b, x, y); b.close(); }).catch(() => undefined));
  }

  /** A region copied within the picture (a scroll), in order with the rectangles. */
  private copy(x: number, y: number, w: number, h: number, sx: number, sy: number) {
    const gen = this.generation;
    this.drawing = this.drawing.then(() => { if (gen === this.generation) this.ctx?.drawImage(this.canvas, sx, sy, w, h, x, y, w, h); });
  }

  private size(w: number, h: number) {
    if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
  }

  seek(t: number) {
    this.generation++;
    this.drawing = Promise.resolve();
    let start = 0;
    for (let i = 0; i < this.ev.length && this.ev[i][0] <= t; i++) if (this.ev[i][1] === 'k') start = i;
    this.ctx?.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.pos = start;
    const first = this.ev[start];
    if (first && first[1] === 'k' && first[0] <= t) {
      this.size(first[3] as number, first[4] as number);
      this.draw(first[2] as string, 0, 0);
      this.pos = start + 1;
    }
    this.advance(t);
  }

  advance(t: number) {
    while (this.pos < this.ev.length && this.ev[this.pos][0] <= t) {
      const e = this.ev[this.pos++];
      if (e[1] === 'f') this.draw(e[6] as string, e[2] as number, e[3] as number);
      else if (e[1] === 'c') this.copy(e[2] as number, e[3] as number, e[4] as number, e[5] as number, e[6] as number, e[7] as number);
      else if (e[1] === 'r') { const [w, h] = String(e[2]).split('x').map(Number); this.size(w, h); }
    }
  }

  nextTime(): number | null {
    return this.pos < this.ev.length ? this.ev[this.pos][0] : null;
  }
}

export function Player(props: { id: string; me?: Me }) {
  // `#/recordings/<id>?t=<ms>&q=<words>`: open at a moment, with the search hits marked.
  const [rid, qs] = props.id.split('?');
  const params = new URLSearchParams(qs ?? '');
  const startAt = Number(params.get('t') ?? 0);
  const searched = params.get('q') ?? '';
  const [marks, setMarks] = useState<Hit[]>([]);
  const host = useRef<HTMLDivElement>(null);
  const [detail, setDetail] = useState<Detail | null>(null);
  const [events, setEvents] = useState<Events | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [t, setT] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  const [skipIdle, setSkipIdle] = useState(true);
  const pb = useRef<Replay | null>(null);
  const clock = useRef(0);

  useEffect(() => {
    api<Detail>('GET', `/recordings/${rid}`).then(setDetail).catch((e) => setErr(errorsFrom(e)._ ?? String(e)));
    api<Events>('GET', `/recordings/${rid}/events`).then(setEvents).catch((e) => setErr(errorsFrom(e)._ ?? String(e)));
    if (searched) api<Hit[]>('GET', `/recordings/search?q=${encodeURIComponent(searched)}&limit=500`).then((h) => setMarks(h.filter((x) => x.recording_id === rid))).catch(() => setMarks([]));
  }, [rid, searched]);

  useEffect(() => {
    if (!host.current || !events) return;
    if (events.desktop) {
      const canvas = document.createElement('canvas');
      canvas.className = 'desktop';
      canvas.dataset.testid = 'player-desktop';
      canvas.width = events.cols;
      canvas.height = events.rows;
      host.current.appendChild(canvas);
      pb.current = new DesktopPlayback(canvas, events.events);
      pb.current.seek(startAt);
      clock.current = startAt;
      setT(startAt);
      return () => { canvas.remove(); pb.current = null; };
    }
    const term = new Terminal({ cols: events.cols, rows: events.rows, fontSize: 13, scrollback: 0, disableStdin: true });
    term.open(host.current);
    pb.current = new Playback(term, events.events);
    pb.current.seek(startAt);
    clock.current = startAt;
    setT(startAt);
    return () => { term.dispose(); pb.current = null; };
  }, [events]);

  // The clock: advances by real time x speed; long idle gaps are skipped when asked.
  useEffect(() => {
    if (!playing || !events) return;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      let next = clock.current + (now - last) * speed;
      last = now;
      const p = pb.current;
      if (!p) return;
      const upcoming = p.nextTime();
      if (skipIdle && upcoming !== null && upcoming - next > IDLE_MS) next = upcoming - IDLE_MS / 4;
      if (next >= events.duration_ms) { next = events.duration_ms; setPlaying(false); }
      p.advance(next);
      clock.current = next;
      setT(next);
    }, 40);
    return () => clearInterval(timer);
  }, [playing, speed, skipIdle, events]);

  const seek = (to: number) => { clock.current = to; setT(to); pb.current?.seek(to); };
  const keyframes = useMemo(() => detail?.keyframes_ms ?? [], [detail]);
  const total = events?.duration_ms ?? 0;
  const v = detail?.verification;
  return (
    <section class="player">
      <h1>{detail ? `${detail.account}@${detail.resource}` : 'Recording'} <span class="muted">by {detail?.user}</span></h1>
      {err && <Notice kind="error">{err}</Notice>}
      {detail && (
        <p data-testid="recording-verification">
          {statusBadge(detail.status)}{' '}
          {v?.problem ? <span class="error-text">Verification FAILED: {v.problem}</span>
            : v?.complete ? <span>Verified: chain and signed manifest intact ({v.chunks} chunks).</span>
            : <span>Verified up to its last chunk; no signed manifest (the gateway stopped mid-session).</span>}
          {' '}· started {when(detail.started_at)} from {detail.client_addr} · {detail.protocol !== 'rdp' && <><a href={`/api/v1/recordings/${rid}/cast`} download>Export .cast</a> · </>}<a href={`/api/v1/recordings/${rid}/bundle`} download>Signed bundle</a>
        </p>
      )}
      <div class="player-body">
        <div class="player-main">
          <div class="player-screen" ref={host} data-testid="player-screen" />
          <div class="player-controls">
            <button class="primary" data-testid="player-play" onClick={() => { if (t >= total) seek(0); setPlaying(!playing); }}>{playing ? 'Pause' : 'Play'}</button>
            <label>Speed <select data-testid="player-speed" value={speed} onChange={(e) => setSpeed(Number((e.target as HTMLSelectElement).value))}>
              {[0.5, 1, 2, 4, 8, 16].map((s) => <option value={s}>{s}x</option>)}
            </select></label>
            <input type="range" min={0} max={total} step={100} value={t} data-testid="player-timeline" aria-label="Timeline"
              onInput={(e) => seek(Number((e.target as HTMLInputElement).value))} list="keyframe-marks" />
            <datalist id="keyframe-marks">{(marks.length ? marks.map((m) => m.t_ms) : keyframes).map((k) => <option value={k} />)}</datalist>
            <span data-testid="player-time">{duration(t)} / {duration(total)}</span>
            <label><input type="checkbox" checked={skipIdle} onChange={() => setSkipIdle(!skipIdle)} /> skip idle</label>
          </div>
        </div>
        <aside class="player-commands">
          {searched && (
            <>
              <h2>Search hits for “{searched}”</h2>
              <ol data-testid="player-hits">
                {marks.map((m) => (
                  <li><button class="link" onClick={() => { setPlaying(false); seek(m.t_ms); }}><span class="muted">{duration(m.t_ms)}</span> <code>{m.line}</code></button></li>
                ))}
              </ol>
            </>
          )}
          <h2>Typed commands</h2>
          {detail && detail.input_recorded === false && <p class="muted">Keystrokes are not recorded on this gateway.</p>}
          <ol data-testid="player-commands">
            {(detail?.commands ?? []).map((c) => (
              <li><button class="link" onClick={() => { setPlaying(false); seek(c.t_ms); }}><span class="muted">{duration(c.t_ms)}</span> <code>{c.command}</code></button></li>
            ))}
          </ol>
          {props.me?.user.super_admin && <HiddenInput id={rid} onSeek={(ms) => { setPlaying(false); seek(ms); }} />}
        </aside>
      </div>
    </section>
  );
}

// What was typed at secret prompts: sealed apart from the replay, opened by a super
// administrator with a reason (the server audits it as an alert before answering).
function HiddenInput(props: { id: string; onSeek: (ms: number) => void }) {
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [lines, setLines] = useState<{ t_ms: number; by: string; text: string; submitted: boolean }[] | null>(null);
  const open = async () => {
    try {
      const r = await api<any>('POST', `/recordings/${props.id}/hidden-input`, { reason });
      setLines(r.lines); setAsking(false); setError(null);
    } catch (e) { setError(errorsFrom(e).reason ?? errorsFrom(e)._ ?? String(e)); }
  };
  return (
    <>
      <h2>Hidden input</h2>
      {!lines && <button data-testid="open-hidden-input" onClick={() => setAsking(true)}>Open what was typed at secret prompts…</button>}
      {lines && (
        <ol data-testid="hidden-input">
          {lines.map((l) => <li><button class="link" onClick={() => props.onSeek(l.t_ms)}><span class="muted">{duration(l.t_ms)} {l.by}</span> <code>{l.text}</code></button></li>)}
          {lines.length === 0 && <li class="muted">Nothing was typed at secret prompts.</li>}
        </ol>
      )}
      {asking && (
        <Modal title="Open hidden input" onClose={() => setAsking(false)}>
          <p>This shows what was typed while the screen asked for a secret. It may hold passwords. Your reason is kept in the audit log, and the opening is an alert.</p>
          <label>Reason <input name="reason" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} /></label>
          {error && <Notice kind="error">{error}</Notice>}
          <div class="actions"><button class="primary" onClick={open}>Open</button><button onClick={() => setAsking(false)}>Cancel</button></div>
        </Modal>
      )}
    </>
  );
}
