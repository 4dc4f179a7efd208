// Why: the rotation engine in the UI: how a resource's accounts are rotated (on its page),
// "Rotate now" for an account, and the job queue (running, queued, deferred, failed) with each
// job's step and outcome, refreshed while you watch. Secrets never appear here.
import { useEffect, useState } from 'preact/hooks';
import { Account, api } from '../api';
import { Errors, errorsFrom, Field, inputValue, Notice, Table } from '../ui';

interface Settings { method: string; privileged_account_id: string | null; db_name: string; db_tls: string }
export interface Job {
  id: string; account_id: string; account_name: string; resource_name: string; reason: string; requested_by: string;
  state: string; step: string; message: string; created_at: number; started_at: number | null; finished_at: number | null;
}

const at = (ms: number | null) => (ms ? new Date(ms).toLocaleString() : '—');
const TLS: Record<string, string> = { disable: 'no TLS', prefer: 'TLS when offered', require: 'TLS required', verify_full: 'TLS, certificate and name verified' };

/** How this resource's accounts are rotated; administrators change it. */
export function RotationSettings(props: { resourceId: string; canChange: boolean; accounts: Account[] }) {
  const [s, setS] = useState<Settings | null | undefined>(undefined);
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState({ privileged_account_id: '', db_name: 'postgres', db_tls: 'prefer' });
  const [errors, setErrors] = useState<Errors>({});
  const load = () => api<{ settings: Settings | null }>('GET', `/resources/${props.resourceId}/rotation`).then((x) => {
    setS(x.settings);
    if (x.settings) setForm({ privileged_account_id: x.settings.privileged_account_id ?? '', db_name: x.settings.db_name, db_tls: x.settings.db_tls });
  }).catch((e) => setErrors(errorsFrom(e)));
  useEffect(() => { load(); }, [props.resourceId]);
  if (s === undefined) return <span class="muted">{errors._ ?? '…'}</span>;
  const name = (id: string | null) => props.accounts.find((a) => a.id === id)?.username ?? 'each account itself';
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await api('PUT', `/resources/${props.resourceId}/rotation`, { method: 'postgres', privileged_account_id: form.privileged_account_id || null, db_name: form.db_name, db_tls: form.db_tls });
      setErrors({}); setEditing(false); load();
    } catch (err) { setErrors(errorsFrom(err)); }
  };
  return (
    <div data-testid="rotation-settings">
      {s ? <p>PostgreSQL (<code>ALTER ROLE</code>) as <b>{name(s.privileged_account_id)}</b> · database <b>{s.db_name}</b> · {TLS[s.db_tls] ?? s.db_tls}</p> : <p class="muted">Not set: accounts of this resource are not rotated.</p>}
      {props.canChange && !editing && <button onClick={() => setEditing(true)} data-testid="edit-rotation">Set rotation…</button>}
      {props.canChange && editing && (
        <form onSubmit={save}>
          <Field label="Changed by" name="privileged_account_id" errors={errors} hint="A role with CREATEROLE changes the others' passwords; without one, each role changes its own with its current password.">
            <select name="privileged_account_id" value={form.privileged_account_id} onChange={(e) => setForm({ ...form, privileged_account_id: inputValue(e) })}>
              <option value="">each account itself</option>
              {props.accounts.filter((a) => a.secret_kind === 'password').map((a) => <option value={a.id}>{a.username}</option>)}
            </select>
          </Field>
          <Field label="Database" name="db_name" errors={errors}>
            <input name="db_name" value={form.db_name} onInput={(e) => setForm({ ...form, db_name: inputValue(e) })} />
          </Field>
          <Field label="TLS" name="db_tls" errors={errors}>
            <select name="db_tls" value={form.db_tls} onChange={(e) => setForm({ ...form, db_tls: inputValue(e) })}>
              {Object.entries(TLS).map(([k, label]) => <option value={k}>{label}</option>)}
            </select>
          </Field>
          {errors._ && <Notice kind="error">{errors._}</Notice>}
          <div class="actions"><button type="submit" class="primary">Save rotation</button><button type="button" onClick={() => { setEditing(false); setErrors({}); }}>Cancel</button></div>
        </form>
      )}
    </div>
  );
}

/** Queues a rotation and says where to follow it. */
export async function rotateNow(a: Account): Promise<string> {
  const r = await api<{ job: Job }>('POST', `/accounts/${a.id}/rotate`);
  return `Rotation of ${a.username} ${r.job.state === 'queued' ? 'queued' : 'is ' + r.job.state}; follow it under Rotation jobs.`;
}

/** The job queue: live (refreshed every 2 s while open). */
export function RotationJobs() {
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    const load = () => api<{ jobs: Job[] }>('GET', '/rotation/jobs').then((x) => { if (alive) { setJobs(x.jobs); setErr(null); } }).catch((e) => alive && setErr(errorsFrom(e)._ ?? String(e)));
    load();
    const t = setInterval(load, 2000);
    return () => { alive = false; clearInterval(t); };
  }, []);
  if (err) return <Notice kind="error">{err}</Notice>;
  if (!jobs) return <p>Loading…</p>;
  const open = jobs.filter((j) => ['running', 'queued', 'deferred'].includes(j.state)).length;
  return (
    <section>
      <h1>Rotation jobs</h1>
      <p class="muted">{open} running, queued or deferred. A rotation stores the new secret as pending, changes it on the target, logs in with it, and only then makes it the account's secret; a job waits (deferred) while the account has a live session.</p>
      <Table testid="rotation-jobs" rows={jobs} rowKey={(j) => j.id} empty="No rotation jobs yet."
        columns={[
          { key: 'account_name', label: 'Account', render: (j) => `${j.account_name}@${j.resource_name}` },
          { key: 'state', label: 'State', render: (j) => <span class={'badge job-' + j.state} data-testid="job-state">{j.state}</span> },
          { key: 'step', label: 'Step', render: (j) => <span data-testid="job-step">{j.step}</span> },
          { key: 'message', label: 'Outcome', render: (j) => <span data-testid="job-message">{j.message}</span> },
          { key: 'requested_by', label: 'Asked by', render: (j) => `${j.requested_by} (${j.reason.replace('_', ' ')})` },
          { key: 'created_at', label: 'Queued', render: (j) => at(j.created_at) },
          { key: 'finished_at', label: 'Finished', render: (j) => at(j.finished_at) },
        ]} />
    </section>
  );
}
