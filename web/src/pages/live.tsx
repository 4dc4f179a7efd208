// Why: administrators (and auditors) see every live session; everyone sees their own. The
// list refreshes itself every two seconds.
import { useEffect, useState } from 'preact/hooks';
import { api, Me } from '../api';
import { bytes, duration, errorsFrom, Notice, Table } from '../ui';

interface LiveSession {
  id: string; owner_name: string; account_name: string; resource_name: string; protocol: string; path: string[];
  client_addr: string; started_at_ms: number; state: string; bytes_from_target: number; bytes_to_target: number;
  recording_id: string | null; participants: Participant[];
}

/** How a desktop viewer's browser keeps up with the frames (gateway/src/frame_window.rs). */
interface Drawing {
  frames_sent: number; frames_drawn: number; frames_held_back: number;
  lag_ms: number | null; draw_ms: number | null; window: number;
  update_to_drawn_p50_ms: number | null; update_to_drawn_p95_ms: number | null;
}

interface Participant { name: string; role: string; drawing?: Drawing }

/** "40 ms behind, 12 frames merged": what an administrator needs to see a browser that
 * cannot keep up (a slow laptop, a background tab) without reading the numbers' meaning. */
function drawingNote(d: Drawing): string {
  if (d.window === 0) return 'drawing not reported';
  const parts: string[] = [];
  if (d.update_to_drawn_p50_ms !== null && d.update_to_drawn_p95_ms !== null) {
    parts.push(`updates shown in ${d.update_to_drawn_p50_ms} ms (95 %: ${d.update_to_drawn_p95_ms} ms)`);
  }
  if (d.lag_ms !== null) parts.push(`${d.lag_ms} ms behind`);
  if (d.draw_ms !== null && d.draw_ms >= 20) parts.push(`${d.draw_ms} ms a frame`);
  if (d.frames_held_back > 0) parts.push(`${d.frames_held_back} frames merged`);
  return parts.join(', ');
}

function participantsCell(s: LiveSession) {
  return (
    <ul class="participants">
      {s.participants.map((p) => (
        <li>
          {p.name} ({p.role})
          {p.drawing && (
            <span class="muted" data-testid="participant-drawing"
              title={`frames sent ${p.drawing.frames_sent}, drawn ${p.drawing.frames_drawn}, merged ${p.drawing.frames_held_back}; at most ${p.drawing.window} undrawn. "Updates shown in": from the gateway reading the desktop's update to this browser saying it drew it, median and 95th percentile of the last 256 frames. "Behind": from sending the last frame to hearing it was drawn.`}>
              {' · '}{drawingNote(p.drawing)}
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}

export function LiveSessions(props: { me: Me }) {
  const admin = props.me.capabilities.manage_users;
  const terminate = async (s: LiveSession) => {
    const reason = prompt(`Terminate ${s.owner_name}'s session on ${s.account_name}@${s.resource_name}? The user is shown your reason.`, '');
    if (reason === null) return;
    try { await api('POST', `/sessions/${s.id}/terminate`, { reason }); } catch (e) { setErr(errorsFrom(e).reason ?? errorsFrom(e)._ ?? String(e)); }
  };
  const [rows, setRows] = useState<LiveSession[] | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    let stop = false;
    const load = () => api<LiveSession[]>('GET', '/sessions').then((r) => { if (!stop) { setRows(r); setErr(null); setNow(Date.now()); } }).catch((e) => setErr(errorsFrom(e)._ ?? String(e)));
    load();
    const t = setInterval(load, 2000);
    return () => { stop = true; clearInterval(t); };
  }, []);
  return (
    <section>
      <h1>Live sessions</h1>
      <p class="muted">Updated every two seconds.</p>
      {err && <Notice kind="error">{err}</Notice>}
      {rows && (
        <Table testid="live-sessions" rows={rows} rowKey={(s) => s.id} empty="No live sessions."
          columns={[
            { key: 'owner_name', label: 'User' },
            { key: 'target', label: 'Account', value: (s) => `${s.account_name}@${s.resource_name}`, render: (s) => `${s.account_name}@${s.resource_name}` },
            { key: 'protocol', label: 'Protocol' },
            { key: 'path', label: 'Path', value: (s) => s.path.join(' → '), render: (s) => (s.path.length ? s.path.join(' → ') : 'direct') },
            { key: 'client_addr', label: 'From' },
            { key: 'started_at_ms', label: 'Duration', value: (s) => s.started_at_ms, render: (s) => duration(now - s.started_at_ms) },
            { key: 'state', label: 'State', render: (s) => <span class={'badge state-' + s.state}>{s.state}</span> },
            { key: 'bytes', label: 'In / out', value: (s) => s.bytes_from_target, render: (s) => `${bytes(s.bytes_from_target)} / ${bytes(s.bytes_to_target)}` },
            { key: 'recording_id', label: 'Recording', value: (s) => (s.recording_id ? 'recorded' : 'not recorded'), render: (s) => (s.recording_id ? <span class="badge recorded">● recorded</span> : <span class="muted">not recorded</span>) },
            { key: 'participants', label: 'In the session', value: (s) => s.participants.map((p) => p.name).join(', '), render: participantsCell },
            { key: 'actions', label: '', value: () => '', render: (s) => admin && (
              <div class="actions">
                <a class="button" href={`#/${s.protocol === 'rdp' ? 'watch-desktop' : 'watch'}/${s.id}`} target="_blank" rel="noopener" data-testid="watch-session">Watch</a>
                <a class="button" href={`#/${s.protocol === 'rdp' ? 'join-desktop' : 'join'}/${s.id}`} target="_blank" rel="noopener" data-testid="join-session">Join</a>
                <button class="danger" data-testid="terminate-session" onClick={() => terminate(s)}>Terminate…</button>
              </div>
            ) },
          ]} />
      )}
    </section>
  );
}
