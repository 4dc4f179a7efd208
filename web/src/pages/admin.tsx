// Why: administration pages: users and roles, user groups, password policies, the audit log.
import { useEffect, useState } from 'preact/hooks';
import { api, Group, Me, Policy, ROLES, User } from '../api';
import { Errors, errorsFrom, Field, GroupForm, inputValue, Modal, Notice, Table, when } from '../ui';

function useList<T>(path: string): [T[] | null, string | null, () => void] {
  const [rows, setRows] = useState<T[] | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const load = () => api<T[]>('GET', path).then((r) => { setRows(r); setErr(null); }).catch((e) => setErr(errorsFrom(e)._ ?? String(e)));
  useEffect(() => { load(); }, [path]);
  return [rows, err, load];
}

export function Users(props: { me: Me }) {
  const [rows, err, reload] = useList<User>('/users');
  const [editing, setEditing] = useState<User | 'new' | null>(null);
  const [otp, setOtp] = useState<{ user: string; password: string } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const act = async (path: string, label: string) => {
    try {
      const r = await api<any>('POST', path);
      if (r?.one_time_password) setOtp({ user: label, password: r.one_time_password });
      reload();
    } catch (e) { setNotice(errorsFrom(e)._ ?? 'Failed'); }
  };
  return (
    <section>
      <div class="title-row"><h1>Users</h1><button class="primary" onClick={() => setEditing('new')}>Add user</button></div>
      {(err || notice) && <Notice kind="error">{err ?? notice}</Notice>}
      {rows && (
        <Table testid="users" rows={rows} rowKey={(u) => u.id}
          columns={[
            { key: 'username', label: 'User' },
            { key: 'full_name', label: 'Name' },
            { key: 'role', label: 'Role', render: (u) => <>{ROLES[u.role ?? ''] ?? u.role}{u.super_admin && <span class="badge">super admin</span>}</> },
            { key: 'state', label: 'State', value: (u) => (u.disabled ? 'locked' : u.locked_until ? 'lockout' : 'active'), render: (u) => u.disabled ? <span class="badge warn">locked</span> : u.locked_until ? <span class="badge warn">locked until {when(u.locked_until)}</span> : u.must_change_password ? <span class="badge">must change password</span> : 'active' },
            { key: 'totp_enabled', label: '2FA', render: (u) => (u.totp_enabled ? 'on' : 'off') },
            { key: 'x', label: '', value: () => '', render: (u) => u.id !== props.me.user.id && (
              <div class="actions">
                <button onClick={() => setEditing(u)}>Edit</button>
                {(u.disabled || u.locked_until) ? <button onClick={() => act(`/users/${u.id}/unlock`, u.username)}>Unlock</button> : null}
                <button onClick={() => confirm(`Give ${u.username} a new one-time password? Their sessions end.`) && act(`/users/${u.id}/reset-password`, u.username)}>Reset password</button>
                {u.totp_enabled && <button onClick={() => act(`/users/${u.id}/reset-mfa`, u.username)}>Reset 2FA</button>}
                <button class="danger" onClick={async () => { if (confirm(`Delete ${u.username}?`)) { try { await api('DELETE', `/users/${u.id}`); reload(); } catch (e) { setNotice(errorsFrom(e)._ ?? 'Failed'); } } }}>Delete</button>
              </div>
            ) },
          ]} />
      )}
      {editing && (
        <Modal title={editing === 'new' ? 'Add user' : `Edit ${editing.username}`} onClose={() => setEditing(null)}>
          <UserForm me={props.me} user={editing === 'new' ? undefined : editing}
            onSaved={(username, password) => { setEditing(null); reload(); if (password) setOtp({ user: username, password }); }} />
        </Modal>
      )}
      {otp && (
        <Modal title="One-time password" onClose={() => setOtp(null)}>
          <p>Give this one-time password to <b>{otp.user}</b> by a safe channel. They must change it at first login. It is not shown again.</p>
          <pre class="secret" data-testid="one-time-password">{otp.password}</pre>
          <button onClick={() => setOtp(null)}>Done</button>
        </Modal>
      )}
    </section>
  );
}

function UserForm(props: { me: Me; user?: User; onSaved: (username: string, password?: string) => void }) {
  const u = props.user;
  const [f, setF] = useState({ username: u?.username ?? '', full_name: u?.full_name ?? '', email: u?.email ?? '', role: u?.role ?? 'password_user', super_admin: !!u?.super_admin, disabled: !!u?.disabled });
  const [errors, setErrors] = useState<Errors>({});
  const submit = async (e: Event) => {
    e.preventDefault();
    const errs: Errors = {};
    if (!u && !/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(f.username)) errs.username = 'Use letters, digits, ".", "_", "-" or "@", starting with a letter or digit.';
    if (f.email && !f.email.includes('@')) errs.email = 'Enter an e-mail address such as name@example.com.';
    if (f.super_admin && f.role !== 'administrator') errs.super_admin = 'Only administrators can be super administrators.';
    setErrors(errs);
    if (Object.keys(errs).length) return;
    try {
      if (u) {
        await api('PATCH', `/users/${u.id}`, { full_name: f.full_name, email: f.email, role: f.role, super_admin: f.super_admin, disabled: f.disabled });
        props.onSaved(u.username);
      } else {
        const r = await api<any>('POST', '/users', { username: f.username, full_name: f.full_name, email: f.email, role: f.role, super_admin: f.super_admin });
        props.onSaved(f.username, r.one_time_password);
      }
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <form onSubmit={submit} noValidate data-testid="user-form">
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      {!u && <Field label="User name" name="username" errors={errors}><input name="username" value={f.username} onInput={(e) => setF({ ...f, username: inputValue(e) })} /></Field>}
      <Field label="Full name" name="full_name" errors={errors}><input name="full_name" value={f.full_name} onInput={(e) => setF({ ...f, full_name: inputValue(e) })} /></Field>
      <Field label="E-mail" name="email" errors={errors}><input name="email" type="email" value={f.email} onInput={(e) => setF({ ...f, email: inputValue(e) })} /></Field>
      <Field label="Role" name="role" errors={errors}>
        <select name="role" value={f.role} onChange={(e) => setF({ ...f, role: inputValue(e) })}>
          {Object.entries(ROLES).map(([k, v]) => <option value={k}>{v}</option>)}
        </select>
      </Field>
      {props.me.user.super_admin && (
        <Field label="" name="super_admin" errors={errors}>
          <label class="check"><input type="checkbox" checked={f.super_admin} onChange={(e) => setF({ ...f, super_admin: (e.target as HTMLInputElement).checked })} /> Super administrator (sees and manages every resource)</label>
        </Field>
      )}
      {u && <label class="check"><input type="checkbox" checked={f.disabled} onChange={(e) => setF({ ...f, disabled: (e.target as HTMLInputElement).checked })} /> Locked (cannot log in; current logins end)</label>}
      {!u && <p class="muted">A one-time password is generated; the user must change it at first login.</p>}
      <button class="primary" type="submit">{u ? 'Save' : 'Add user'}</button>
    </form>
  );
}

export function UserGroups() {
  const [rows, err, reload] = useList<Group>('/user-groups');
  const [users] = useList<User>('/users');
  const [editing, setEditing] = useState<Group | 'new' | null>(null);
  const name = (id: string) => users?.find((u) => u.id === id)?.username ?? id;
  return (
    <section>
      <div class="title-row"><h1>User groups</h1><button class="primary" onClick={() => setEditing('new')}>New group</button></div>
      {err && <Notice kind="error">{err}</Notice>}
      {rows && (
        <Table rows={rows} rowKey={(g) => g.id} empty="No user groups."
          columns={[
            { key: 'name', label: 'Name' },
            { key: 'description', label: 'Description' },
            { key: 'member_ids', label: 'Members', value: (g) => g.member_ids.length, render: (g) => g.member_ids.map(name).join(', ') },
            { key: 'x', label: '', value: () => '', render: (g) => (
              <div class="actions">
                <button onClick={() => setEditing(g)}>Edit</button>
                <button class="danger" onClick={async () => { if (confirm(`Delete group ${g.name}? Its shares are revoked.`)) { await api('DELETE', `/user-groups/${g.id}`); reload(); } }}>Delete</button>
              </div>
            ) },
          ]} />
      )}
      {editing && (
        <Modal title={editing === 'new' ? 'New user group' : `Edit ${editing.name}`} onClose={() => setEditing(null)}>
          <GroupForm method={editing === 'new' ? 'POST' : 'PATCH'} path={editing === 'new' ? '/user-groups' : `/user-groups/${editing.id}`}
            name={editing === 'new' ? '' : editing.name} description={editing === 'new' ? '' : editing.description} selected={editing === 'new' ? [] : editing.member_ids}
            membersField="member_ids" membersLabel="Members" choices={(users ?? []).map((u) => ({ id: u.id, label: u.username }))}
            onSaved={() => { setEditing(null); reload(); }} />
        </Modal>
      )}
    </section>
  );
}


const POLICY_FIELDS: [keyof Policy, string][] = [
  ['min_length', 'Minimum length'], ['max_length', 'Maximum length'], ['min_lower', 'Lower-case letters'], ['min_upper', 'Upper-case letters'],
  ['min_digits', 'Digits'], ['min_special', 'Special characters'], ['history_depth', 'Remember last N'], ['max_age_days', 'Maximum age (days, 0 = never)'],
];

export function Policies(props: { me: Me }) {
  const [rows, err, reload] = useList<Policy>('/password-policies');
  const [editing, setEditing] = useState<Policy | 'new' | null>(null);
  const [sample, setSample] = useState<Record<string, string>>({});
  const can = props.me.capabilities.manage_policies;
  return (
    <section>
      <div class="title-row"><h1>Password policies</h1>{can && <button class="primary" onClick={() => setEditing('new')}>New policy</button>}</div>
      {err && <Notice kind="error">{err}</Notice>}
      {rows && (
        <Table rows={rows} rowKey={(p) => p.id}
          columns={[
            { key: 'name', label: 'Name', render: (p) => <>{p.name}{p.builtin ? <span class="badge">built-in</span> : null}</> },
            { key: 'length', label: 'Length', value: (p) => p.min_length, render: (p) => `${p.min_length}–${p.max_length}` },
            { key: 'classes', label: 'Requires', value: () => '', render: (p) => [p.min_lower && `${p.min_lower} lower`, p.min_upper && `${p.min_upper} upper`, p.min_digits && `${p.min_digits} digit`, p.min_special && `${p.min_special} special`, p.start_with_letter && 'starts with a letter'].filter(Boolean).join(', ') || '—' },
            { key: 'history_depth', label: 'History' },
            { key: 'max_age_days', label: 'Max age', render: (p) => (p.max_age_days ? `${p.max_age_days} d` : 'never') },
            { key: 'x', label: '', value: () => '', render: (p) => (
              <div class="actions">
                <button onClick={async () => setSample({ ...sample, [p.id]: (await api<any>('POST', `/password-policies/${p.id}/generate`)).password })}>Sample</button>
                {sample[p.id] && <code>{sample[p.id]}</code>}
                {can && !p.builtin && <button onClick={() => setEditing(p)}>Edit</button>}
                {can && !p.builtin && <button class="danger" onClick={async () => { try { await api('DELETE', `/password-policies/${p.id}`); reload(); } catch (e) { alert(errorsFrom(e)._); } }}>Delete</button>}
              </div>
            ) },
          ]} />
      )}
      {editing && (
        <Modal title={editing === 'new' ? 'New policy' : `Edit ${editing.name}`} onClose={() => setEditing(null)}>
          <PolicyForm policy={editing === 'new' ? undefined : editing} onSaved={() => { setEditing(null); reload(); }} />
        </Modal>
      )}
    </section>
  );
}

function PolicyForm(props: { policy?: Policy; onSaved: () => void }) {
  const p = props.policy;
  const [f, setF] = useState<Record<string, string>>({
    name: p?.name ?? '', special_chars: p?.special_chars ?? '!#$%&*+-=?@^_~', start_with_letter: String(p?.start_with_letter ?? 0),
    ...Object.fromEntries(POLICY_FIELDS.map(([k]) => [k, String(p?.[k] ?? { min_length: 12, max_length: 32 }[k as string] ?? 0)])),
  });
  const [errors, setErrors] = useState<Errors>({});
  const submit = async (e: Event) => {
    e.preventDefault();
    const errs: Errors = {};
    if (!f.name.trim()) errs.name = 'Give the policy a name.';
    for (const [k] of POLICY_FIELDS) if (!/^\d+$/.test(f[k])) errs[k] = 'Enter a whole number.';
    if (!errs.min_length && !errs.max_length && Number(f.max_length) < Number(f.min_length)) errs.max_length = 'Must be at least the minimum length.';
    setErrors(errs);
    if (Object.keys(errs).length) return;
    const body: Record<string, unknown> = { name: f.name.trim(), special_chars: f.special_chars, start_with_letter: Number(f.start_with_letter) };
    for (const [k] of POLICY_FIELDS) body[k] = Number(f[k]);
    try {
      await api(p ? 'PATCH' : 'POST', p ? `/password-policies/${p.id}` : '/password-policies', body);
      props.onSaved();
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <form onSubmit={submit} noValidate>
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      <Field label="Name" name="name" errors={errors}><input name="name" value={f.name} onInput={(e) => setF({ ...f, name: inputValue(e) })} /></Field>
      <div class="grid2">
        {POLICY_FIELDS.map(([k, label]) => (
          <Field label={label} name={k} errors={errors}><input name={k} inputMode="numeric" value={f[k]} onInput={(e) => setF({ ...f, [k]: inputValue(e) })} /></Field>
        ))}
      </div>
      <Field label="Allowed special characters" name="special_chars" errors={errors}><input name="special_chars" value={f.special_chars} onInput={(e) => setF({ ...f, special_chars: inputValue(e) })} /></Field>
      <label class="check"><input type="checkbox" checked={f.start_with_letter === '1'} onChange={(e) => setF({ ...f, start_with_letter: (e.target as HTMLInputElement).checked ? '1' : '0' })} /> Must start with a letter</label>
      <button class="primary" type="submit">Save</button>
    </form>
  );
}

interface AuditRow { seq: number; at: string; actor: string; client_addr: string; action: string; outcome: string; object_kind: string; object_name: string; detail: any }

export function Audit() {
  const [filters, setFilters] = useState({ actor: '', action: '', outcome: '', object: '', from: '', to: '' });
  const [rows, setRows] = useState<AuditRow[] | null>(null);
  const [errors, setErrors] = useState<Errors>({});
  const [verify, setVerify] = useState<any>(null);
  const query = (before?: number) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) {
      if (!v) continue;
      q.set(k, k === 'from' || k === 'to' ? new Date(v).toISOString() : v);
    }
    if (before) q.set('before', String(before));
    q.set('limit', '100');
    return '/audit?' + q.toString();
  };
  const load = async (more = false) => {
    try {
      const r = await api<AuditRow[]>('GET', query(more && rows?.length ? rows[rows.length - 1].seq : undefined));
      setRows(more && rows ? [...rows, ...r] : r);
      setErrors({});
    } catch (e) {
      setErrors(errorsFrom(e));
    }
  };
  useEffect(() => { load(); }, []);
  const set = (k: keyof typeof filters) => (e: Event) => setFilters({ ...filters, [k]: inputValue(e) });
  return (
    <section>
      <div class="title-row">
        <h1>Audit log</h1>
        <button onClick={async () => setVerify(await api('GET', '/audit/verify'))}>Verify integrity</button>
      </div>
      {verify && (verify.ok
        ? <Notice kind="ok">The audit chain is intact: {verify.rows_checked} rows verified.</Notice>
        : <Notice kind="error">Tampering detected: {verify.problem?.message}</Notice>)}
      <form class="filters" onSubmit={(e) => { e.preventDefault(); load(); }} noValidate>
        <Field label="Who" name="actor" errors={errors}><input value={filters.actor} onInput={set('actor')} /></Field>
        <Field label="Action starts with" name="action" errors={errors}><input value={filters.action} onInput={set('action')} placeholder="e.g. account.reveal" /></Field>
        <Field label="Outcome" name="outcome" errors={errors}>
          <select value={filters.outcome} onChange={set('outcome')}><option value="">any</option><option value="ok">ok</option><option value="denied">denied</option><option value="failed">failed</option></select>
        </Field>
        <Field label="Object" name="object" errors={errors}><input value={filters.object} onInput={set('object')} /></Field>
        <Field label="From" name="from" errors={errors}><input type="datetime-local" value={filters.from} onInput={set('from')} /></Field>
        <Field label="To" name="to" errors={errors}><input type="datetime-local" value={filters.to} onInput={set('to')} /></Field>
        <button class="primary" type="submit">Search</button>
      </form>
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      {rows && (
        <Table testid="audit" rows={rows} rowKey={(r) => String(r.seq)}
          columns={[
            { key: 'seq', label: '#', value: (r) => r.seq },
            { key: 'at', label: 'When', render: (r) => when(r.at) },
            { key: 'actor', label: 'Who' },
            { key: 'client_addr', label: 'From' },
            { key: 'action', label: 'Action' },
            { key: 'outcome', label: 'Outcome', render: (r) => <span class={'badge outcome-' + r.outcome}>{r.outcome}</span> },
            { key: 'object_name', label: 'Object' },
            { key: 'detail', label: 'Detail', value: (r) => JSON.stringify(r.detail), render: (r) => <code class="detail">{JSON.stringify(r.detail)}</code> },
          ]} />
      )}
      {rows && rows.length > 0 && rows.length % 100 === 0 && <button onClick={() => load(true)}>Load older events</button>}
    </section>
  );
}

type DataKey = { id: string; purpose: string; master_key_id: string; active: number; created_at: number; retired_at: number };
type KeyRotation = { id: string; old_key_id: string; new_key_id: string; state: string; done: number; total: number; message: string; started_by: string; started_at: number; finished_at: number | null };

// The vault's data keys and data-key rotations, with progress while one runs. Ids and dates
// only: key material never reaches the browser.
export function VaultKeys(props: { me: Me }) {
  const [view, setView] = useState<{ active_key_id: string; keys: DataKey[]; rotations: KeyRotation[] } | null>(null);
  const [notice, setNotice] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const [confirming, setConfirming] = useState(false);
  const load = () => api<any>('GET', '/vault/data-keys').then(setView).catch((e) => setNotice({ kind: 'error', text: errorsFrom(e)._ ?? String(e) }));
  useEffect(() => { load(); }, []);
  const running = view?.rotations.some((r) => r.state === 'running');
  useEffect(() => {
    if (!running) return;
    const t = setInterval(load, 1000);
    return () => clearInterval(t);
  }, [running]);
  const rotate = async () => {
    setConfirming(false);
    try {
      await api('POST', '/vault/data-keys/rotate');
      setNotice({ kind: 'ok', text: 'Data-key rotation started: new secrets are sealed under the new key now; older values are re-encrypted in the background.' });
      load();
    } catch (e) { setNotice({ kind: 'error', text: errorsFrom(e)._ ?? 'Failed' }); }
  };
  const when_ = (ms: number | null) => (ms ? when(new Date(ms).toISOString()) : '');
  return (
    <section>
      <div class="title-row">
        <h1>Vault keys</h1>
        {props.me.user.super_admin && <button class="primary" disabled={running} onClick={() => setConfirming(true)}>Rotate data key</button>}
      </div>
      {notice && <Notice kind={notice.kind}>{notice.text}</Notice>}
      {view && (
        <Table testid="data-keys" rows={view.keys} rowKey={(k) => k.id}
          columns={[
            { key: 'id', label: 'Data key' },
            { key: 'purpose', label: 'Purpose' },
            { key: 'state', label: 'State', value: (k) => (k.id === view.active_key_id ? 'active' : k.retired_at ? 'retired' : k.purpose === 'audit' ? 'in use' : 'being replaced'), render: (k) => k.id === view.active_key_id ? <span class="badge">seals new values</span> : k.retired_at ? <span class="badge">retired {when_(k.retired_at)}</span> : k.purpose === 'audit' ? 'chains the audit log' : <span class="badge warn">being replaced</span> },
            { key: 'master_key_id', label: 'Wrapped by master key' },
            { key: 'created_at', label: 'Created', render: (k) => when_(k.created_at) },
          ]} />
      )}
      {view && view.rotations.length > 0 && (<>
        <h2>Data-key rotations</h2>
        <Table testid="data-key-rotations" rows={view.rotations} rowKey={(r) => r.id}
          columns={[
            { key: 'started_at', label: 'Started', render: (r) => when_(r.started_at) },
            { key: 'started_by', label: 'By' },
            { key: 'new_key_id', label: 'New key' },
            { key: 'state', label: 'State', render: (r) => <span class={'badge' + (r.state === 'failed' ? ' warn' : '')}>{r.state}</span> },
            { key: 'progress', label: 'Progress', value: (r) => `${r.done}/${r.total}`, render: (r) => <><progress max={Math.max(r.total, 1)} value={r.done} /> {r.done}/{r.total}</> },
            { key: 'message', label: 'Step' },
          ]} />
      </>)}
      <p class="hint">Retired keys stay in the database until an operator deletes them with <code>portcullis key purge</code> (see the README, Operations).</p>
      {confirming && (
        <Modal title="Rotate the data key" onClose={() => setConfirming(false)}>
          <p>A new data key seals every new secret from now on, and every stored secret, second-factor seed, signing key and recording key is re-encrypted under it in the background. The old key is then retired (kept until purged). This is recorded in the audit log as an alert.</p>
          <div class="actions"><button class="primary" onClick={rotate}>Rotate</button><button onClick={() => setConfirming(false)}>Cancel</button></div>
        </Modal>
      )}
    </section>
  );
}
