// Why: the vault pages: the accounts a user can use (Connect), resources with their accounts
// and shares, and resource groups. Secrets are never fetched except by the explicit Reveal
// action, which asks for a reason and is shown only to users with View access or more.
import { TelnetSettings } from './logon';
import { RdpSettings } from './rdp';
import { AccountRotation, RotationSettings, rotateNow, verifyNow } from './rotation';
import { ReachedThrough } from './landing';
import { useEffect, useState } from 'preact/hooks';
import { Account, api, atLeast, Group, Level, LEVELS, Me, Policy, Resource, ResourceGroup, Share, TYPES, User } from '../api';
import { Errors, errorsFrom, Field, GroupForm, inputValue, Modal, Notice, Table, when } from '../ui';

function useLoad<T>(path: string, deps: unknown[] = []): [T | null, string | null, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const load = () => api<T>('GET', path).then((d) => { setData(d); setErr(null); }).catch((e) => setErr(errorsFrom(e)._ ?? String(e)));
  useEffect(() => { load(); }, [path, ...deps]);
  return [data, err, load];
}

const levelBadge = (l: Level | null) => l ? <span class={'badge level-' + l}>{l}</span> : <span class="badge">via account</span>;

export function Accounts(props: { me: Me }) {
  const [rows, err] = useLoad<Account[]>('/accounts');
  const [reveal, setReveal] = useState<Account | null>(null);
  return (
    <section>
      <h1>Connect</h1>
      <p class="muted">The accounts you may use. With <b>connect</b> access the gateway logs you in; you never see the secret.</p>
      {err && <Notice kind="error">{err}</Notice>}
      {rows && (
        <Table testid="accounts" rows={rows} rowKey={(a) => a.id} empty="No accounts are shared with you yet."
          columns={[
            { key: 'resource_name', label: 'Resource', render: (a) => <a href={'#/resources/' + a.resource_id}>{a.resource_name}</a> },
            { key: 'host', label: 'Host' },
            { key: 'path', label: 'Path', value: (a) => a.path.join(' → '), render: (a) => (a.path.length ? <span data-testid="account-path">via {a.path.join(' → ')}</span> : <span class="muted">direct</span>) },
            { key: 'resource_type', label: 'Type', render: (a) => TYPES[a.resource_type] ?? a.resource_type },
            { key: 'username', label: 'Account' },
            { key: 'access', label: 'Your access', render: (a) => levelBadge(a.access) },
            { key: 'actions', label: '', value: () => '', render: (a) => (
              <div class="actions">
                {a.ssh_port ? <a class="button primary" href={'#/terminal/' + a.id} target="_blank" rel="noopener" data-testid="connect">{a.telnet_port ? 'SSH' : 'Connect'}</a> : null}
                {a.telnet_port ? <a class={'button' + (a.ssh_port ? '' : ' primary')} href={'#/terminal/' + a.id + '/telnet'} target="_blank" rel="noopener" data-testid="connect-telnet" title="Telnet is not encrypted on the network">{a.ssh_port ? 'Telnet' : 'Connect (Telnet)'}</a> : null}
                {a.rdp_port ? <a class={'button' + (a.ssh_port || a.telnet_port ? '' : ' primary')} href={'#/desktop/' + a.id} target="_blank" rel="noopener" data-testid="connect-rdp">{a.ssh_port || a.telnet_port ? 'RDP' : 'Connect (RDP)'}</a> : null}
                {!a.ssh_port && !a.telnet_port && !a.rdp_port && <span class="muted">no SSH, Telnet or RDP port</span>}
                {atLeast(a.access, 'view') ? <button onClick={() => setReveal(a)}>Reveal…</button> : <span class="muted">secret hidden</span>}
              </div>
            ) },
          ]} />
      )}
      {reveal && <RevealDialog account={reveal} onClose={() => setReveal(null)} />}
    </section>
  );
}

function RevealDialog(props: { account: Account; onClose: () => void }) {
  const [reason, setReason] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const [secret, setSecret] = useState<{ secret: string; passphrase: string | null } | null>(null);
  useEffect(() => {
    // Hide the secret again after 30 seconds.
    if (!secret) return;
    const t = setTimeout(() => setSecret(null), 30000);
    return () => clearTimeout(t);
  }, [secret]);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (reason.trim().length < 3) return setErrors({ reason: 'Say why you need it (at least 3 characters). It goes into the audit log.' });
    try {
      setSecret(await api('POST', `/accounts/${props.account.id}/reveal`, { reason: reason.trim() }));
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <Modal title={`Reveal ${props.account.username}@${props.account.resource_name}`} onClose={props.onClose}>
      {secret ? (
        <div>
          <Notice kind="info">Shown for 30 seconds. This reveal was recorded in the audit log.</Notice>
          <pre class="secret" data-testid="revealed">{secret.secret}</pre>
          {secret.passphrase && <p>Passphrase: <code>{secret.passphrase}</code></p>}
          <button onClick={() => navigator.clipboard?.writeText(secret.secret)}>Copy</button>
        </div>
      ) : (
        <form onSubmit={submit} noValidate>
          {errors._ && <Notice kind="error">{errors._}</Notice>}
          <Field label="Reason" name="reason" errors={errors} hint="Recorded in the audit log with your name and address.">
            <input name="reason" value={reason} onInput={(e) => setReason(inputValue(e))} autoFocus />
          </Field>
          <button class="primary" type="submit">Reveal</button>
        </form>
      )}
    </Modal>
  );
}

export function Resources(props: { me: Me }) {
  const [rows, err, reload] = useLoad<Resource[]>('/resources');
  const [adding, setAdding] = useState(false);
  return (
    <section>
      <div class="title-row">
        <h1>Resources</h1>
        {props.me.capabilities.create_resources && <button class="primary" onClick={() => setAdding(true)}>Add resource</button>}
      </div>
      {err && <Notice kind="error">{err}</Notice>}
      {rows && (
        <Table testid="resources" rows={rows} rowKey={(r) => r.id} onRow={(r) => { location.hash = '#/resources/' + r.id; }}
          empty="No resources yet."
          columns={[
            { key: 'name', label: 'Name', render: (r) => <a href={'#/resources/' + r.id}>{r.name}</a> },
            { key: 'host', label: 'Host' },
            { key: 'resource_type', label: 'Type', render: (r) => TYPES[r.resource_type] ?? r.resource_type },
            { key: 'tags', label: 'Tags', value: (r) => r.tags.join(' '), render: (r) => r.tags.map((t) => <span class="tag">{t}</span>) },
            { key: 'access', label: 'Your access', value: (r) => r.access ?? '', render: (r) => levelBadge(r.access) },
          ]} />
      )}
      {adding && (
        <Modal title="Add resource" onClose={() => setAdding(false)}>
          <ResourceForm onSaved={(r) => { setAdding(false); reload(); location.hash = '#/resources/' + r.id; }} />
        </Modal>
      )}
    </section>
  );
}

const portField = (v: string): number | null => (v.trim() === '' ? null : Number(v));

function ResourceForm(props: { resource?: Resource; onSaved: (r: Resource) => void }) {
  const r = props.resource;
  const [policies] = useLoad<Policy[]>('/password-policies');
  const [f, setF] = useState({
    name: r?.name ?? '', host: r?.host ?? '', resource_type: r?.resource_type ?? 'linux', description: r?.description ?? '',
    tags: r?.tags.join(', ') ?? '', ssh: r?.ports.ssh?.toString() ?? '22', telnet: r?.ports.telnet?.toString() ?? '',
    rdp: r?.ports.rdp?.toString() ?? '', database: r?.ports.database?.toString() ?? '', policy_id: r?.policy_id ?? 'policy-strong',
  });
  const [errors, setErrors] = useState<Errors>({});
  const set = (k: keyof typeof f) => (e: Event) => { setF({ ...f, [k]: inputValue(e) }); setErrors({ ...errors, [k]: undefined }); };
  const validate = (): Errors => {
    const errs: Errors = {};
    if (!f.name.trim()) errs.name = 'Give the resource a name.';
    if (!/^[A-Za-z0-9.:\-_\[\]]+$/.test(f.host.trim())) errs.host = 'Enter a host name or IP address, such as db1.example.com or 10.0.0.5.';
    for (const p of ['ssh', 'telnet', 'rdp', 'database'] as const) {
      const n = portField(f[p]);
      if (n !== null && !(Number.isInteger(n) && n >= 1 && n <= 65535)) errs['ports.' + p] = 'A port is a number from 1 to 65535.';
    }
    return errs;
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    const errs = validate();
    setErrors(errs);
    if (Object.keys(errs).length) return;
    const body = {
      name: f.name.trim(), host: f.host.trim(), resource_type: f.resource_type, description: f.description,
      tags: f.tags.split(',').map((t) => t.trim()).filter(Boolean), policy_id: f.policy_id,
      ports: { ssh: portField(f.ssh), telnet: portField(f.telnet), rdp: portField(f.rdp), database: portField(f.database) },
    };
    try {
      props.onSaved(await api<Resource>(r ? 'PATCH' : 'POST', r ? `/resources/${r.id}` : '/resources', body));
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <form onSubmit={submit} noValidate data-testid="resource-form">
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      <div class="grid2">
        <Field label="Name" name="name" errors={errors}><input name="name" value={f.name} onInput={set('name')} /></Field>
        <Field label="Host" name="host" errors={errors}><input name="host" value={f.host} onInput={set('host')} onBlur={() => setErrors({ ...errors, host: validate().host })} /></Field>
        <Field label="Type" name="resource_type" errors={errors}>
          <select name="resource_type" value={f.resource_type} onChange={set('resource_type')}>
            {Object.entries(TYPES).map(([k, v]) => <option value={k}>{v}</option>)}
          </select>
        </Field>
        <Field label="Password policy" name="policy_id" errors={errors}>
          <select name="policy_id" value={f.policy_id} onChange={set('policy_id')}>
            {(policies ?? []).map((p) => <option value={p.id}>{p.name}</option>)}
          </select>
        </Field>
        <Field label="SSH port" name="ports.ssh" errors={errors}><input name="ssh" value={f.ssh} onInput={set('ssh')} inputMode="numeric" /></Field>
        <Field label="Telnet port" name="ports.telnet" errors={errors}><input name="telnet" value={f.telnet} onInput={set('telnet')} inputMode="numeric" /></Field>
        <Field label="RDP port" name="ports.rdp" errors={errors}><input name="rdp" value={f.rdp} onInput={set('rdp')} inputMode="numeric" /></Field>
        <Field label="Database port" name="ports.database" errors={errors}><input name="database" value={f.database} onInput={set('database')} inputMode="numeric" /></Field>
      </div>
      <Field label="Tags" name="tags" errors={errors} hint="Comma-separated."><input name="tags" value={f.tags} onInput={set('tags')} /></Field>
      <Field label="Description" name="description" errors={errors}><textarea name="description" value={f.description} onInput={set('description')} /></Field>
      <button class="primary" type="submit">{r ? 'Save' : 'Add resource'}</button>
    </form>
  );
}

export function ResourceDetail(props: { id: string; me: Me }) {
  const [r, err, reload] = useLoad<Resource>(`/resources/${props.id}`, [props.id]);
  const [accounts, , reloadAccounts] = useLoad<Account[]>(`/resources/${props.id}/accounts`, [props.id]);
  const [editing, setEditing] = useState(false);
  const [adding, setAdding] = useState(false);
  const [reveal, setReveal] = useState<Account | null>(null);
  const [changing, setChanging] = useState<Account | null>(null);
  const [sharing, setSharing] = useState<{ kind: string; id: string; name: string } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [queued, setQueued] = useState<string | null>(null);
  if (err) return <Notice kind="error">{err}</Notice>;
  if (!r) return <p>Loading…</p>;
  const del = async (a: Account) => {
    if (!confirm(`Delete account ${a.username}? Its secret and history are deleted too.`)) return;
    try { await api('DELETE', `/accounts/${a.id}`); reloadAccounts(); } catch (e) { setNotice(errorsFrom(e)._ ?? 'Failed'); }
  };
  return (
    <section>
      <div class="title-row">
        <h1>{r.name}</h1>
        <div>
          {atLeast(r.access, 'manage') && <button onClick={() => setEditing(true)}>Edit</button>}
          {atLeast(r.access, 'manage') && <button onClick={() => setSharing({ kind: 'resource', id: r.id, name: r.name })}>Share resource…</button>}
          {atLeast(r.access, 'manage') && <button class="danger" onClick={async () => {
            if (!confirm(`Delete ${r.name} and all its accounts?`)) return;
            try { await api('DELETE', `/resources/${r.id}`); location.hash = '#/resources'; } catch (e) { setNotice(errorsFrom(e)._ ?? 'Failed'); }
          }}>Delete</button>}
        </div>
      </div>
      {notice && <Notice kind="error">{notice}</Notice>}
      {queued && <Notice kind="info"><span data-testid="rotation-queued">{queued}</span> <a href="#/rotation">Rotation</a></Notice>}
      <dl class="facts">
        <dt>Host</dt><dd>{r.host}</dd>
        <dt>Type</dt><dd>{TYPES[r.resource_type]}</dd>
        <dt>Ports</dt><dd>{Object.entries(r.ports).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(' · ') || '—'}</dd>
        <dt>Your access</dt><dd>{levelBadge(r.access)}</dd>
        {r.description && <><dt>Description</dt><dd>{r.description}</dd></>}
        {props.me.capabilities.manage_users && r.ports.ssh && <><dt>SSH host key</dt><dd><HostKey resourceId={r.id} /></dd></>}
        <dt>Path</dt><dd><ReachedThrough resourceId={r.id} canChange={props.me.capabilities.manage_users} /></dd>
        <dt>Session recording</dt><dd><RecordingMode resourceId={r.id} canChange={props.me.capabilities.manage_users} /></dd>
        <dt>Session limits</dt><dd><SessionLimits resourceId={r.id} canChange={props.me.capabilities.manage_users} /></dd>
        {r.ports.telnet && <><dt>Telnet</dt><dd><TelnetSettings resourceId={r.id} canChange={props.me.capabilities.manage_users} accounts={accounts ?? []} /></dd></>}
        {r.ports.rdp && <><dt>RDP</dt><dd><RdpSettings resourceId={r.id} canChange={props.me.capabilities.manage_users} /></dd></>}
        {(r.ports.database || r.ports.ssh || r.ports.telnet) && <><dt>Rotation</dt><dd><RotationSettings resource={r} canChange={props.me.capabilities.manage_users} accounts={accounts ?? []} /></dd></>}
      </dl>
      <div class="title-row">
        <h2>Accounts</h2>
        {atLeast(r.access, 'modify') && <button class="primary" onClick={() => setAdding(true)}>Add account</button>}
      </div>
      {accounts && (
        <Table testid="resource-accounts" rows={accounts} rowKey={(a) => a.id} empty="No accounts you can use on this resource."
          columns={[
            { key: 'username', label: 'Account' },
            { key: 'secret_kind', label: 'Kind', render: (a) => a.secret_kind === 'ssh_key' ? 'SSH key' : 'Password' },
            { key: 'secret_changed_at', label: 'Changed', render: (a) => <>{when(a.secret_changed_at)}{a.secret_expired && <span class="badge warn">expired</span>}</> },
            { key: 'access', label: 'Your access', render: (a) => levelBadge(a.access) },
            { key: 'actions', label: '', value: () => '', render: (a) => (
              <div class="actions">
                {atLeast(a.access, 'view') && <button onClick={() => setReveal(a)}>Reveal…</button>}
                {atLeast(a.access, 'modify') && <button onClick={() => setChanging(a)}>Change secret…</button>}
                {atLeast(a.access, 'modify') && (r.ports.database || r.ports.ssh || r.ports.telnet) && <button data-testid="rotate-now" onClick={async () => {
                  try { setQueued(await rotateNow(a)); } catch (e) { setNotice(errorsFrom(e)._ ?? 'Failed'); }
                }}>Rotate now</button>}
                {atLeast(a.access, 'modify') && (r.ports.database || r.ports.ssh || r.ports.telnet) && <button data-testid="verify-now" onClick={async () => {
                  try { setQueued(await verifyNow(a)); } catch (e) { setNotice(errorsFrom(e)._ ?? 'Failed'); }
                }}>Verify now</button>}
                <AccountRotation account={a} canChange={atLeast(a.access, 'modify')} />
                {atLeast(a.access, 'manage') && <button onClick={() => setSharing({ kind: 'account', id: a.id, name: `${a.username}@${r.name}` })}>Share…</button>}
                {atLeast(a.access, 'manage') && <button class="danger" onClick={() => del(a)}>Delete</button>}
              </div>
            ) },
          ]} />
      )}
      {editing && <Modal title={`Edit ${r.name}`} onClose={() => setEditing(false)}><ResourceForm resource={r} onSaved={() => { setEditing(false); reload(); }} /></Modal>}
      {adding && <Modal title="Add account" onClose={() => setAdding(false)}><SecretForm resourceId={r.id} onSaved={() => { setAdding(false); reloadAccounts(); }} /></Modal>}
      {changing && <Modal title={`Change secret of ${changing.username}`} onClose={() => setChanging(null)}><SecretForm account={changing} onSaved={() => { setChanging(null); reloadAccounts(); }} /></Modal>}
      {reveal && <RevealDialog account={reveal} onClose={() => setReveal(null)} />}
      {sharing && <ShareDialog {...sharing} onClose={() => setSharing(null)} />}
    </section>
  );
}

/** Adds an account (with `resourceId`) or replaces an account's secret (with `account`). */
function SecretForm(props: { resourceId?: string; account?: Account; onSaved: () => void }) {
  const [username, setUsername] = useState('');
  const [kind, setKind] = useState(props.account?.secret_kind ?? 'password');
  const [secret, setSecret] = useState('');
  const [passphrase, setPassphrase] = useState('');
  const [generate, setGenerate] = useState(false);
  const [notes, setNotes] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const submit = async (e: Event) => {
    e.preventDefault();
    const errs: Errors = {};
    if (!props.account && !username.trim()) errs.username = 'Enter the account\'s user name on the resource.';
    if (!generate && !secret) errs.secret = kind === 'password' ? 'Enter the password, or tick "Generate".' : 'Paste the private key.';
    setErrors(errs);
    if (Object.keys(errs).length) return;
    const body: Record<string, unknown> = { secret_kind: kind, generate };
    if (!generate) body.secret = secret;
    if (kind === 'ssh_key' && passphrase) body.passphrase = passphrase;
    try {
      if (props.account) await api('PUT', `/accounts/${props.account.id}/secret`, body);
      else await api('POST', `/resources/${props.resourceId}/accounts`, { ...body, username: username.trim(), notes });
      setSecret(''); setPassphrase('');
      props.onSaved();
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <form onSubmit={submit} noValidate data-testid="secret-form">
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      {!props.account && <Field label="User name" name="username" errors={errors}><input name="username" value={username} onInput={(e) => setUsername(inputValue(e))} /></Field>}
      <Field label="Kind" name="secret_kind" errors={errors}>
        <select name="secret_kind" value={kind} onChange={(e) => setKind(inputValue(e))}>
          <option value="password">Password</option>
          <option value="ssh_key">SSH private key</option>
        </select>
      </Field>
      {kind === 'password' && (
        <label class="check"><input type="checkbox" name="generate" checked={generate} onChange={(e) => setGenerate((e.target as HTMLInputElement).checked)} /> Generate from the resource's password policy</label>
      )}
      {!generate && (kind === 'password' ? (
        <Field label="Password" name="secret" errors={errors}><input name="secret" type="password" autoComplete="new-password" value={secret} onInput={(e) => setSecret(inputValue(e))} /></Field>
      ) : (
        <Field label="Private key (PEM / OpenSSH)" name="secret" errors={errors}><textarea name="secret" class="mono" value={secret} onInput={(e) => setSecret(inputValue(e))} /></Field>
      ))}
      {kind === 'ssh_key' && <Field label="Key passphrase (optional)" name="passphrase" errors={errors}><input name="passphrase" type="password" value={passphrase} onInput={(e) => setPassphrase(inputValue(e))} /></Field>}
      {!props.account && <Field label="Notes" name="notes" errors={errors}><textarea name="notes" value={notes} onInput={(e) => setNotes(inputValue(e))} /></Field>}
      <button class="primary" type="submit">{props.account ? 'Change secret' : 'Add account'}</button>
    </form>
  );
}

function ShareDialog(props: { kind: string; id: string; name: string; onClose: () => void }) {
  const [shares, err, reload] = useLoad<Share[]>(`/shares?object_kind=${props.kind}&object_id=${props.id}`);
  const [users] = useLoad<User[]>('/users');
  const [groups] = useLoad<Group[]>('/user-groups');
  const [subject, setSubject] = useState('');
  const [level, setLevel] = useState<Level>('connect');
  const [errors, setErrors] = useState<Errors>({});
  const grant = async (e: Event) => {
    e.preventDefault();
    if (!subject) return setErrors({ subject_id: 'Choose a user or a group.' });
    const [subject_kind, subject_id] = subject.split(':');
    try {
      await api('POST', '/shares', { subject_kind, subject_id, object_kind: props.kind, object_id: props.id, level });
      setSubject(''); setErrors({}); reload();
    } catch (err) {
      setErrors(errorsFrom(err));
    }
  };
  return (
    <Modal title={`Share ${props.name}`} onClose={props.onClose}>
      {err && <Notice kind="error">{err}</Notice>}
      <form onSubmit={grant} noValidate class="inline" data-testid="share-form">
        {errors._ && <Notice kind="error">{errors._}</Notice>}
        <Field label="With" name="subject_id" errors={errors}>
          <select name="subject" value={subject} onChange={(e) => setSubject(inputValue(e))}>
            <option value="">Choose…</option>
            <optgroup label="Users">{(users ?? []).map((u) => <option value={'user:' + u.id}>{u.username}{u.full_name ? ` (${u.full_name})` : ''}</option>)}</optgroup>
            <optgroup label="User groups">{(groups ?? []).map((g) => <option value={'group:' + g.id}>{g.name}</option>)}</optgroup>
          </select>
        </Field>
        <Field label="Access" name="level" errors={errors}>
          <select name="level" value={level} onChange={(e) => setLevel(inputValue(e) as Level)}>
            {LEVELS.map((l) => <option value={l}>{l}</option>)}
          </select>
        </Field>
        <button class="primary" type="submit">Share</button>
      </form>
      <p class="muted">connect: use through the gateway, never see the secret · view: also reveal · modify: also change · manage: also delete and share.</p>
      {shares && (
        <Table rows={shares} rowKey={(s) => s.id} filter={false} empty="Not shared with anyone."
          columns={[
            { key: 'subject_name', label: 'Shared with', render: (s) => `${s.subject_name}${s.subject_kind === 'group' ? ' (group)' : ''}` },
            { key: 'level', label: 'Access', render: (s) => levelBadge(s.level) },
            { key: 'created_by', label: 'By' },
            { key: 'x', label: '', value: () => '', render: (s) => <button class="danger" onClick={async () => { await api('DELETE', `/shares/${s.id}`); reload(); }}>Revoke</button> },
          ]} />
      )}
    </Modal>
  );
}

export function ResourceGroups(props: { me: Me }) {
  const [rows, err, reload] = useLoad<ResourceGroup[]>('/resource-groups');
  const [resources] = useLoad<Resource[]>('/resources');
  const [editing, setEditing] = useState<ResourceGroup | 'new' | null>(null);
  const [sharing, setSharing] = useState<ResourceGroup | null>(null);
  const name = (id: string) => resources?.find((r) => r.id === id)?.name ?? id;
  return (
    <section>
      <div class="title-row">
        <h1>Resource groups</h1>
        {props.me.capabilities.create_resources && <button class="primary" onClick={() => setEditing('new')}>New group</button>}
      </div>
      {err && <Notice kind="error">{err}</Notice>}
      {rows && (
        <Table rows={rows} rowKey={(g) => g.id} empty="No resource groups."
          columns={[
            { key: 'name', label: 'Name' },
            { key: 'description', label: 'Description' },
            { key: 'resource_ids', label: 'Resources', value: (g) => g.resource_ids.length, render: (g) => g.resource_ids.map(name).join(', ') },
            { key: 'access', label: 'Your access', render: (g) => levelBadge(g.access) },
            { key: 'x', label: '', value: () => '', render: (g) => atLeast(g.access, 'manage') && (
              <div class="actions">
                <button onClick={() => setEditing(g)}>Edit</button>
                <button onClick={() => setSharing(g)}>Share…</button>
                <button class="danger" onClick={async () => { if (confirm(`Delete group ${g.name}?`)) { await api('DELETE', `/resource-groups/${g.id}`); reload(); } }}>Delete</button>
              </div>
            ) },
          ]} />
      )}
      {editing && (
        <Modal title={editing === 'new' ? 'New resource group' : `Edit ${editing.name}`} onClose={() => setEditing(null)}>
          <GroupForm method={editing === 'new' ? 'POST' : 'PATCH'} path={editing === 'new' ? '/resource-groups' : `/resource-groups/${editing.id}`}
            name={editing === 'new' ? '' : editing.name} description={editing === 'new' ? '' : editing.description} selected={editing === 'new' ? [] : editing.resource_ids}
            membersField="resource_ids" membersLabel="Resources"
            choices={(resources ?? []).filter((r) => atLeast(r.access, 'manage')).map((r) => ({ id: r.id, label: r.name }))}
            onSaved={() => { setEditing(null); reload(); }} />
        </Modal>
      )}
      {sharing && <ShareDialog kind="resource_group" id={sharing.id} name={sharing.name} onClose={() => setSharing(null)} />}
    </section>
  );
}


interface HostKeyRow { resource_id: string; protocol: string; fingerprint: string; status: string; decided_by: string; updated_at: string; offered_fingerprint: string | null; offered_at: string | null }

/** The resource's pins, one per protocol (its SSH host key, its RDP certificate), for
 *  administrators: approve a pending key, or forget a pin so the next connection pins again. */
function HostKey(props: { resourceId: string }) {
  const [rows, setRows] = useState<HostKeyRow[] | undefined>(undefined);
  const [err, setErr] = useState<string | null>(null);
  const load = () => api<HostKeyRow[]>('GET', '/host-keys').then((all) => setRows(all.filter((h) => h.resource_id === props.resourceId))).catch((e) => setErr(errorsFrom(e)._ ?? String(e)));
  useEffect(() => { load(); }, [props.resourceId]);
  if (err) return <span class="muted">{err}</span>;
  if (rows === undefined) return <span class="muted">…</span>;
  if (rows.length === 0) return <span class="muted" data-testid="host-key">not pinned yet: the first connection decides (see host_key_policy)</span>;
  const act = async (method: string, path: string, body?: unknown) => { try { await api(method, path, body); load(); } catch (e) { setErr(errorsFrom(e)._ ?? String(e)); } };
  const what = (row: HostKeyRow) => (row.protocol === 'rdp' ? 'RDP certificate' : 'SSH host key');
  return (
    <span data-testid="host-key">
      {rows.map((row) => (
        <div data-testid={`host-key-${row.protocol}`}>
          {what(row)} <code>{row.fingerprint}</code> <span class={'badge ' + (row.status === 'pending' ? 'warn' : 'level-view')}>{row.status}</span>{' '}
          <span class="muted">by {row.decided_by}, {when(row.updated_at)}</span>{' '}
          {row.status === 'pending' && <button onClick={() => act('POST', `/host-keys/${row.resource_id}/approve`, { fingerprint: row.fingerprint, protocol: row.protocol })}>Approve</button>}
          <button onClick={() => confirm('Forget this pin? The next connection will pin the key the server presents then.') && act('DELETE', `/host-keys/${row.resource_id}?protocol=${row.protocol}`)}>Forget (re-pin)</button>
          {row.offered_fingerprint && (
            <div class="notice error" data-testid="host-key-offered">
              The server presented a <b>different {what(row)}</b> {when(row.offered_at ?? '')}: <code>{row.offered_fingerprint}</code>.
              Connections are refused until you check it with the server's owner (<code>ssh-keygen -lf</code> on its host key).{' '}
              <button onClick={() => confirm(`Accept ${row.offered_fingerprint} as the new ${what(row)} of this resource?`) && act('POST', `/host-keys/${row.resource_id}/approve`, { fingerprint: row.offered_fingerprint, protocol: row.protocol })}>Accept this key</button>
            </div>
          )}
        </div>
      ))}
    </span>
  );
}

/** Whether sessions to this resource are recorded; administrators may override the global
 *  toggle per resource. */
function RecordingMode(props: { resourceId: string; canChange: boolean }) {
  const [m, setM] = useState<{ mode: string; recorded: boolean; global: boolean } | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const load = () => api<{ mode: string; recorded: boolean; global: boolean }>('GET', `/resources/${props.resourceId}/recording`).then(setM).catch((e) => setErr(errorsFrom(e)._ ?? String(e)));
  useEffect(() => { load(); }, [props.resourceId]);
  if (err) return <span class="muted">{err}</span>;
  if (!m) return <span class="muted">…</span>;
  const change = async (mode: string) => { try { await api('PUT', `/resources/${props.resourceId}/recording`, { mode }); load(); } catch (e) { setErr(errorsFrom(e)._ ?? String(e)); } };
  return (
    <span data-testid="recording-mode">
      <b>{m.recorded ? 'recorded' : 'not recorded'}</b>{' '}
      {props.canChange ? (
        <select value={m.mode} onChange={(e) => change((e.target as HTMLSelectElement).value)} aria-label="Recording mode">
          <option value="default">as the global setting ({m.global ? 'on' : 'off'})</option>
          <option value="always">always record</option>
          <option value="never">never record</option>
        </select>
      ) : <span class="muted">({m.mode === 'default' ? 'global setting' : m.mode})</span>}
    </span>
  );
}

interface LimitsView { idle_limit: string; max_duration: string; applied: { idle_limit_s: number | null; max_duration_s: number | null } }

/** The idle limit and maximum duration of sessions to this resource; administrators may set
 *  them (`default`: the global setting, `off`, or a duration such as 30m). */
function SessionLimits(props: { resourceId: string; canChange: boolean }) {
  const [v, setV] = useState<LimitsView | null>(null);
  const [form, setForm] = useState({ idle_limit: '', max_duration: '' });
  const [errors, setErrors] = useState<Errors>({});
  const load = () => api<LimitsView>('GET', `/resources/${props.resourceId}/session-limits`).then((x) => { setV(x); setForm({ idle_limit: x.idle_limit, max_duration: x.max_duration }); }).catch((e) => setErrors(errorsFrom(e)));
  useEffect(() => { load(); }, [props.resourceId]);
  if (!v) return <span class="muted">{errors._ ?? '…'}</span>;
  const shown = (s: number | null) => (s === null ? 'none' : s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`);
  const save = async (e: Event) => {
    e.preventDefault();
    try { await api('PUT', `/resources/${props.resourceId}/session-limits`, form); setErrors({}); load(); } catch (err) { setErrors(errorsFrom(err)); }
  };
  return (
    <span data-testid="session-limits">
      idle {shown(v.applied.idle_limit_s)}, at most {shown(v.applied.max_duration_s)}
      {props.canChange && (
        <form class="inline-form" onSubmit={save}>
          <Field label="Idle limit" name="idle_limit" errors={errors}><input name="idle_limit" value={form.idle_limit} onInput={(e) => setForm({ ...form, idle_limit: inputValue(e) })} placeholder="default, off or 30m" /></Field>
          <Field label="Maximum duration" name="max_duration" errors={errors}><input name="max_duration" value={form.max_duration} onInput={(e) => setForm({ ...form, max_duration: inputValue(e) })} placeholder="default, off or 8h" /></Field>
          <button type="submit">Save limits</button>
        </form>
      )}
    </span>
  );
}
