// Why: administrators (and auditors) see every live session; everyone sees their own. The
// list refreshes itself every two seconds.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { bytes, duration, errorsFrom, Notice, Table } from '../ui';

interface LiveSession {
  id: string; owner_name: string; account_name: string; resource_name: string; protocol: string; path: string[];
  client_addr: string; started_at_ms: number; state: string; bytes_from_target: number; bytes_to_target: number;
}

export function LiveSessions() {
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
          ]} />
      )}
    </section>
  );
}
