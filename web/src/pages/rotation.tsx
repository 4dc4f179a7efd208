// Why: the rotation engine in the UI: how a resource's accounts are rotated (on its page: the
// method, the privileged account, the database or the prompt/answer script), "Rotate now",
// "Verify now" and "rotate after each session" for an account, and the Rotation page: jobs
// (running, queued, deferred, failed) with step and outcome, runs with their summaries, and
// schedules with their notice, refreshed while you watch. Secrets never appear here.
import { useEffect, useState } from 'preact/hooks';
import { Account, api, Me, Resource, ResourceGroup } from '../api';
import { Errors, errorsFrom, Field, inputValue, Notice, Table } from '../ui';

interface Step { label: string; expect: string; send?: string; timeout_s?: number; optional?: boolean }
interface Script { steps: Step[]; failure: string[] }
interface Settings { method: string; privileged_account_id: string | null; db_name: string; db_tls: string; db_ca: string | null; script: Script | null }
export interface Job {
  id: string; account_id: string; account_name: string; resource_name: string; reason: string; requested_by: string;
  state: string; step: string; message: string; created_at: number; started_at: number | null; finished_at: number | null;
  kind: string; result: string; run_id: string | null;
}
interface Run { run: { id: string; kind: string; trig: string; scope: string; created_by: string; created_at: number }; total: number; open: number; by_state: Record<string, number>; by_result: Record<string, number> }
interface Schedule { schedule: { id: string; target_kind: string; target_id: string; interval_days: number; time_of_day: number; notice_minutes: number; next_run_at: number; notice_sent_for: number | null; last_run_id: string | null }; scope: string }

const at = (ms: number | null) => (ms ? new Date(ms).toLocaleString() : '—');
const TLS: Record<string, string> = { verify_full: 'TLS, certificate and name verified', require: 'TLS, certificate verified (not the name)', prefer: 'TLS when offered, certificate not checked', disable: 'no TLS' };
const METHODS: Record<string, string> = {
  postgres: 'PostgreSQL: ALTER ROLE',
  mysql: 'MariaDB: ALTER USER (sent as the native password hash)',
  passwd: 'passwd: each account changes its own password',
  sudo: 'sudo + chpasswd, as the privileged account',
  script: 'your own prompt/answer script (network devices)',
};
const EXAMPLE: Script = {
  steps: [
    { label: 'prompt', expect: '#\\s*$', send: 'configure terminal' },
    { label: 'config mode', expect: '\\(config\\)#\\s*$', send: 'username {account} secret {new_password}' },
    { label: 'set', expect: '\\(config\\)#\\s*$', send: 'end' },
    { label: 'saved', expect: '#\\s*$', send: 'write memory' },
    { label: 'done', expect: '\\[OK\\]' },
  ],
  failure: ['% ?invalid', '% ?error'],
};
const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;

/** The steps of a script, as a person reads them. */
function ScriptSteps(props: { script: Script }) {
  return (
    <ol class="script-steps" data-testid="rotation-script">
      {props.script.steps.map((s) => <li>wait for <code>{s.expect}</code>{s.optional ? ' (if shown)' : ''}{s.send !== undefined ? <> then type <code>{s.send}</code></> : ''} <span class="muted">({s.label})</span></li>)}
    </ol>
  );
}

/** How this resource's accounts are rotated; administrators change it. */
export function RotationSettings(props: { resource: Resource; canChange: boolean; accounts: Account[] }) {
  const rid = props.resource.id;
  const [s, setS] = useState<Settings | null | undefined>(undefined);
  const [tlsWarning, setTlsWarning] = useState<string | null>(null);
  const [builtins, setBuiltins] = useState<Record<string, Script>>({});
  const [editing, setEditing] = useState(false);
  const terminal = !!(props.resource.ports.ssh || props.resource.ports.telnet);
  const [form, setForm] = useState({ method: terminal ? 'passwd' : 'postgres', privileged_account_id: '', db_name: 'postgres', db_tls: 'verify_full', db_ca: '', script: JSON.stringify(EXAMPLE, null, 2) });
  const [errors, setErrors] = useState<Errors>({});
  const [ran, setRan] = useState<string | null>(null);
  const load = () => api<{ settings: Settings | null; builtin_scripts: Record<string, Script>; tls_warning: string | null }>('GET', `/resources/${rid}/rotation`).then((x) => {
    setS(x.settings); setBuiltins(x.builtin_scripts ?? {}); setTlsWarning(x.tls_warning ?? null);
    if (x.settings) setForm({ method: x.settings.method, privileged_account_id: x.settings.privileged_account_id ?? '', db_name: x.settings.db_name || 'postgres', db_tls: x.settings.db_tls || 'verify_full', db_ca: x.settings.db_ca ?? '', script: JSON.stringify(x.settings.script ?? EXAMPLE, null, 2) });
  }).catch((e) => setErrors(errorsFrom(e)));
  useEffect(() => { load(); }, [rid]);
  if (s === undefined) return <span class="muted">{errors._ ?? '…'}</span>;
  const name = (id: string | null) => props.accounts.find((a) => a.id === id)?.username ?? 'each account itself';
  const save = async (e: Event) => {
    e.preventDefault();
    let script: Script | null = null;
    if (form.method === 'script') {
      try { script = JSON.parse(form.script); } catch { setErrors({ script: 'not valid JSON: a {"steps": [...], "failure": [...]} object' }); return; }
    }
    try {
      await api('PUT', `/resources/${rid}/rotation`, { method: form.method, privileged_account_id: form.privileged_account_id || null, db_name: form.db_name, db_tls: form.db_tls, db_ca: form.db_ca || null, script });
      setErrors({}); setEditing(false); load();
    } catch (err) { setErrors(errorsFrom(err)); }
  };
  const runAll = async (kind: string) => {
    try {
      const r = await api<Run>('POST', `/resources/${rid}/rotation/run`, { kind });
      setRan(`${kind === 'rotate' ? 'Rotation' : 'Verification'} of ${r.total} account(s) queued; follow it on the Rotation page.`);
    } catch (e) { setRan(errorsFrom(e)._ ?? 'Failed'); }
  };
  const shown = s ? (s.method === 'script' ? s.script : builtins[s.method]) : null;
  return (
    <div data-testid="rotation-settings">
      {s && (s.method === 'postgres' || s.method === 'mysql') && <p>{s.method === 'postgres' ? <>PostgreSQL (<code>ALTER ROLE</code>)</> : <>MariaDB (<code>ALTER USER</code>)</>} as <b>{name(s.privileged_account_id)}</b>{s.db_name ? <> · database <b>{s.db_name}</b></> : ''} · {TLS[s.db_tls] ?? s.db_tls}</p>}
      {tlsWarning && <Notice kind="error">{tlsWarning}</Notice>}
      {s?.method === 'su' && <Notice kind="error">This resource is set to the su method, which is refused: it typed root's password at a shell the rotated account controls, where a function in its ~/.bashrc could capture it. Choose sudo with a privileged account that logs in itself.</Notice>}
      {s && s.method !== 'postgres' && s.method !== 'mysql' && <p data-testid="rotation-method">{METHODS[s.method] ?? s.method}{s.privileged_account_id ? <> · privileged account <b>{name(s.privileged_account_id)}</b></> : ''} · over {props.resource.ports.ssh ? 'SSH' : 'Telnet'}, through the resource's landing servers if any</p>}
      {!s && <p class="muted">Not set: password accounts of this resource are not rotated (SSH keys are, over SSH).</p>}
      {shown && <details><summary>What it types</summary><ScriptSteps script={shown} /></details>}
      {props.canChange && !editing && <div class="actions">
        <button onClick={() => setEditing(true)} data-testid="edit-rotation">Set rotation…</button>
        <button onClick={() => runAll('verify')} data-testid="verify-all">Verify all accounts</button>
        <button onClick={() => runAll('rotate')} data-testid="rotate-all">Rotate all accounts</button>
      </div>}
      {ran && <Notice kind="info">{ran}</Notice>}
      {props.canChange && editing && (
        <form onSubmit={save}>
          <Field label="Method" name="method" errors={errors}>
            <select name="method" value={form.method} onChange={(e) => setForm({ ...form, method: inputValue(e) })}>
              {Object.entries(METHODS).map(([k, label]) => <option value={k}>{label}</option>)}
            </select>
          </Field>
          {form.method !== 'passwd' && (
            <Field label="Privileged account" name="privileged_account_id" errors={errors} hint={form.method === 'postgres' ? 'A role with CREATEROLE changes the others\' passwords; without one, each role changes its own.' : form.method === 'mysql' ? 'A user with CREATE USER (and SELECT on mysql.user) changes the others\'; without one, each changes its own.' : 'The account that logs in and changes the others\' passwords.'}>
              <select name="privileged_account_id" value={form.privileged_account_id} onChange={(e) => setForm({ ...form, privileged_account_id: inputValue(e) })}>
                <option value="">{form.method === 'postgres' || form.method === 'mysql' || form.method === 'script' ? 'each account itself' : '— choose —'}</option>
                {props.accounts.filter((a) => a.secret_kind === 'password').map((a) => <option value={a.id}>{a.username}</option>)}
              </select>
            </Field>
          )}
          {(form.method === 'postgres' || form.method === 'mysql') && <>
            <Field label="Database" name="db_name" errors={errors} hint={form.method === 'mysql' ? 'May be empty.' : undefined}>
              <input name="db_name" value={form.db_name} onInput={(e) => setForm({ ...form, db_name: inputValue(e) })} />
            </Field>
            <Field label="TLS" name="db_tls" errors={errors}>
              <select name="db_tls" value={form.db_tls} onChange={(e) => setForm({ ...form, db_tls: inputValue(e) })}>
                {Object.entries(TLS).map(([k, label]) => <option value={k}>{label}</option>)}
              </select>
            </Field>
            <Field label="Server's CA (PEM)" name="db_ca" errors={errors} hint="The certificate(s) the server's must chain to; empty: the usual public roots.">
              <textarea name="db_ca" rows={4} value={form.db_ca} onInput={(e) => setForm({ ...form, db_ca: inputValue(e) })} />
            </Field>
          </>}
          {form.method === 'script' && (
            <Field label="Script" name="script" errors={errors} hint="Steps of expect (a pattern) and send (typed, then Enter). Placeholders: {account}, {current_password}, {new_password}, {privileged_password}, {username}, {password}. A secret is typed as the whole answer to a prompt (or as {account}:{new_password} for chpasswd); a secret inside a command line (a device's 'username {account} secret {new_password}') can be saved by a super administrator only, and is an audit alert. Logged in as the privileged account if one is chosen, else as the account itself.">
              <textarea name="script" rows={12} value={form.script} onInput={(e) => setForm({ ...form, script: inputValue(e) })} />
            </Field>
          )}
          {builtins[form.method] && <ScriptSteps script={builtins[form.method]} />}
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
  return `Rotation of ${a.username} ${r.job.state === 'queued' ? 'queued' : 'is ' + r.job.state}; follow it under Rotation.`;
}

/** Queues a verification and says where to follow it. */
export async function verifyNow(a: Account): Promise<string> {
  const r = await api<{ job: Job }>('POST', `/accounts/${a.id}/verify`);
  return `Verification of ${a.username} ${r.job.state === 'queued' ? 'queued' : 'is ' + r.job.state}; the result shows on the account and under Rotation.`;
}

const CHECK: Record<string, string> = { in_sync: 'in sync', out_of_sync: 'out of sync', unreachable: 'unreachable' };

/** An account's last verification and its "rotate after each session" switch. */
export function AccountRotation(props: { account: Account; canChange: boolean }) {
  const [p, setP] = useState<{ after_session: boolean; last_check: { state: string; message: string; checked_at: number } | null } | null>(null);
  const load = () => api<any>('GET', `/accounts/${props.account.id}/rotation`).then(setP).catch(() => setP(null));
  useEffect(() => { load(); }, [props.account.id]);
  if (!p) return null;
  return (
    <span class="account-rotation" data-testid="account-rotation">
      {p.last_check && <span class={'badge check-' + p.last_check.state} title={`${p.last_check.message} (${at(p.last_check.checked_at)})`} data-testid="last-check">{CHECK[p.last_check.state] ?? p.last_check.state}</span>}
      {props.canChange && <label title="A new secret after each session ends (a one-time password per session)"><input type="checkbox" checked={p.after_session} data-testid="after-session" onChange={async (e) => {
        await api('PUT', `/accounts/${props.account.id}/rotation`, { after_session: (e.target as HTMLInputElement).checked }).catch(() => undefined);
        load();
      }} /> rotate after each session</label>}
    </span>
  );
}

function useLive<T>(path: string, every = 2000): [T | null, string | null, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    let alive = true;
    const load = () => api<T>('GET', path).then((x) => { if (alive) { setData(x); setErr(null); } }).catch((e) => alive && setErr(errorsFrom(e)._ ?? String(e)));
    load();
    const t = setInterval(load, every);
    return () => { alive = false; clearInterval(t); };
  }, [path, n]);
  return [data, err, () => setN(n + 1)];
}

/** New schedules (administrators). */
function ScheduleForm(props: { onSaved: () => void }) {
  const [resources, setResources] = useState<Resource[]>([]);
  const [groups, setGroups] = useState<ResourceGroup[]>([]);
  const [f, setF] = useState({ target: '', interval_days: '30', time_of_day: '03:00', notice_minutes: '60' });
  const [errors, setErrors] = useState<Errors>({});
  useEffect(() => {
    api<Resource[]>('GET', '/resources').then(setResources).catch(() => undefined);
    api<ResourceGroup[]>('GET', '/resource-groups').then(setGroups).catch(() => undefined);
  }, []);
  const save = async (e: Event) => {
    e.preventDefault();
    const [target_kind, target_id] = f.target.split(':');
    try {
      await api('POST', '/rotation/schedules', { target_kind: target_kind || 'resource', target_id: target_id ?? '', interval_days: Number(f.interval_days), time_of_day: f.time_of_day, notice_minutes: Number(f.notice_minutes) });
      setErrors({}); props.onSaved();
    } catch (err) { setErrors(errorsFrom(err)); }
  };
  return (
    <form onSubmit={save} class="inline-form" data-testid="schedule-form">
      <Field label="Rotate" name="target_id" errors={errors}>
        <select name="target" value={f.target} onChange={(e) => setF({ ...f, target: inputValue(e) })}>
          <option value="">— resource or group —</option>
          {groups.map((g) => <option value={`group:${g.id}`}>group {g.name}</option>)}
          {resources.map((r) => <option value={`resource:${r.id}`}>{r.name}</option>)}
        </select>
      </Field>
      <Field label="Every (days)" name="interval_days" errors={errors}><input name="interval_days" type="number" min={1} max={365} value={f.interval_days} onInput={(e) => setF({ ...f, interval_days: inputValue(e) })} /></Field>
      <Field label="At (UTC)" name="time_of_day" errors={errors}><input name="time_of_day" value={f.time_of_day} onInput={(e) => setF({ ...f, time_of_day: inputValue(e) })} /></Field>
      <Field label="Notice (minutes before)" name="notice_minutes" errors={errors}><input name="notice_minutes" type="number" min={0} value={f.notice_minutes} onInput={(e) => setF({ ...f, notice_minutes: inputValue(e) })} /></Field>
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      <button type="submit" class="primary">Add schedule</button>
    </form>
  );
}

const counts = (m: Record<string, number>) => Object.entries(m).map(([k, n]) => `${n} ${k.replace(/_/g, ' ')}`).join(', ') || '—';

/** The Rotation page: jobs, runs and schedules, live. */
export function RotationJobs(props: { me?: Me }) {
  const [data, err] = useLive<{ jobs: Job[]; load: { running: number; global_limit: number; per_resource_limit: number } }>('/rotation/jobs');
  const [runs] = useLive<{ runs: Run[] }>('/rotation/runs', 4000);
  const [schedules, , reloadSchedules] = useLive<{ schedules: Schedule[] }>('/rotation/schedules', 10000);
  const admin = props.me?.capabilities.manage_users ?? false;
  if (err) return <Notice kind="error">{err}</Notice>;
  if (!data) return <p>Loading…</p>;
  const jobs = data.jobs;
  const open = jobs.filter((j) => ['running', 'queued', 'deferred'].includes(j.state)).length;
  return (
    <section>
      <h1>Rotation</h1>
      <p class="muted" data-testid="rotation-load">{open} running, queued or deferred; at most {data.load.global_limit} at once ({data.load.per_resource_limit} per resource). A rotation stores the new secret as pending, changes it on the target, logs in with it, and only then makes it the account's secret; it waits (deferred) while the account has a live session. A verification logs in with the stored secret: in sync, out of sync, or unreachable (which says nothing about the secret).</p>
      <h2>Jobs</h2>
      <Table testid="rotation-jobs" rows={jobs} rowKey={(j) => j.id} empty="No rotation jobs yet."
        columns={[
          { key: 'account_name', label: 'Account', render: (j) => `${j.account_name}@${j.resource_name}` },
          { key: 'kind', label: 'Job', render: (j) => j.kind },
          { key: 'state', label: 'State', render: (j) => <span class={'badge job-' + j.state} data-testid="job-state">{j.state}</span> },
          { key: 'result', label: 'Result', render: (j) => <span class={j.result ? 'badge check-' + j.result : ''} data-testid="job-result">{j.result.replace(/_/g, ' ')}</span> },
          { key: 'step', label: 'Step', render: (j) => <span data-testid="job-step">{j.step}</span> },
          { key: 'message', label: 'Outcome', render: (j) => <span data-testid="job-message">{j.message}</span> },
          { key: 'requested_by', label: 'Asked by', render: (j) => `${j.requested_by} (${j.reason.replace(/_/g, ' ')})` },
          { key: 'created_at', label: 'Queued', render: (j) => at(j.created_at) },
          { key: 'finished_at', label: 'Finished', render: (j) => at(j.finished_at) },
        ]} />
      <h2>Runs</h2>
      <p class="muted">Batches: scheduled rotations, the nightly verification, and "all accounts" requests, each with its summary.</p>
      <Table testid="rotation-runs" rows={runs?.runs ?? []} rowKey={(r) => r.run.id} empty="No runs yet."
        columns={[
          { key: 'created_at', label: 'Started', value: (r) => r.run.created_at, render: (r) => at(r.run.created_at) },
          { key: 'kind', label: 'What', render: (r) => `${r.run.kind} ${r.run.scope}` },
          { key: 'trig', label: 'Why', render: (r) => `${r.run.trig.replace(/_/g, ' ')} (${r.run.created_by})` },
          { key: 'total', label: 'Accounts', render: (r) => `${r.total}${r.open ? `, ${r.open} still open` : ''}` },
          { key: 'by_result', label: 'Summary', render: (r) => <span data-testid="run-summary">{counts(r.by_result)}; {counts(r.by_state)}</span> },
        ]} />
      <h2>Schedules</h2>
      <Table testid="rotation-schedules" rows={schedules?.schedules ?? []} rowKey={(s) => s.schedule.id} empty="No schedules."
        columns={[
          { key: 'scope', label: 'Rotates', render: (s) => s.scope },
          { key: 'interval', label: 'Every', render: (s) => `${s.schedule.interval_days} day(s) at ${hhmm(s.schedule.time_of_day)} UTC` },
          { key: 'next', label: 'Next run', render: (s) => at(s.schedule.next_run_at) },
          { key: 'notice', label: 'Notice', render: (s) => s.schedule.notice_minutes ? `${s.schedule.notice_minutes} min before${s.schedule.notice_sent_for === s.schedule.next_run_at ? ' (sent)' : ''}` : 'none' },
          { key: 'actions', label: '', render: (s) => admin ? <button class="danger" onClick={async () => { await api('DELETE', `/rotation/schedules/${s.schedule.id}`).catch(() => undefined); reloadSchedules(); }}>Remove</button> : null },
        ]} />
      {admin && <ScheduleForm onSaved={reloadSchedules} />}
    </section>
  );
}
