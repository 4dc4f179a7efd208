// Why: landing servers (jump hosts) and the paths they make. Administrators add them (the
// machine, an optional secondary, the login account from the vault) and say which landing
// server reaches each resource; everyone sees the path a session will take before
// connecting. Loops are refused by the server, with the loop named.
import { useEffect, useState } from 'preact/hooks';
import { Account, api, Me, Resource } from '../api';
import { Errors, errorsFrom, Field, inputValue, Modal, Notice, Table } from '../ui';

interface Landing {
  id: string; name: string; location: string; notes: string; mode: string; ssh_command: string; telnet_command: string;
  primary: { id: string; name: string; host: string; ssh_port: number | null };
  secondary: { id: string; name: string; host: string; ssh_port: number | null } | null;
  account: { id: string; username: string | null };
  reaches: { id: string; name: string }[];
  reached_through: string | null;
}

interface PathView { resource: { id: string; name: string; host: string }; hops: { id: string; name: string; host: string; port: number; secondary: { name: string; host: string; port: number } | null }[] }

function LandingForm(props: { landing?: Landing; onSaved: () => void }) {
  const l = props.landing;
  const [resources, setResources] = useState<Resource[]>([]);
  const [accounts, setAccounts] = useState<Account[]>([]);
  const [f, setF] = useState({ name: l?.name ?? '', location: l?.location ?? '', notes: l?.notes ?? '', primary_resource_id: l?.primary.id ?? '', secondary_resource_id: l?.secondary?.id ?? '', account_id: l?.account.id ?? '', mode: l?.mode ?? 'tunnel', ssh_command: l?.ssh_command ?? '', telnet_command: l?.telnet_command ?? '' });
  const [errors, setErrors] = useState<Errors>({});
  useEffect(() => { api<Resource[]>('GET', '/resources').then(setResources).catch(() => {}); }, []);
  useEffect(() => {
    if (!f.primary_resource_id) { setAccounts([]); return; }
    api<Account[]>('GET', `/resources/${f.primary_resource_id}/accounts`).then(setAccounts).catch(() => setAccounts([]));
  }, [f.primary_resource_id]);
  const ssh = resources.filter((r) => r.ports.ssh);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const body = { ...f, secondary_resource_id: f.secondary_resource_id || '' };
      if (l) await api('PATCH', `/landing-servers/${l.id}`, body); else await api('POST', '/landing-servers', body);
      props.onSaved();
    } catch (err) { setErrors(errorsFrom(err)); }
  };
  return (
    <form onSubmit={submit} data-testid="landing-form">
      <Field label="Name" name="name" errors={errors}><input name="name" value={f.name} onInput={(e) => setF({ ...f, name: inputValue(e) })} /></Field>
      <Field label="Location" name="location" errors={errors}><input name="location" value={f.location} onInput={(e) => setF({ ...f, location: inputValue(e) })} placeholder="e.g. DC1, rack 4" /></Field>
      <Field label="Machine (primary)" name="primary_resource_id" errors={errors} hint="A resource with an SSH port: the gateway logs in to it and tunnels through it.">
        <select name="primary_resource_id" value={f.primary_resource_id} onChange={(e) => setF({ ...f, primary_resource_id: inputValue(e), account_id: '' })}>
          <option value="">(choose)</option>
          {ssh.map((r) => <option value={r.id}>{r.name} ({r.host}:{r.ports.ssh})</option>)}
        </select>
      </Field>
      <Field label="Login account" name="account_id" errors={errors} hint="From the vault; users never see it.">
        <select name="account_id" value={f.account_id} onChange={(e) => setF({ ...f, account_id: inputValue(e) })}>
          <option value="">(choose)</option>
          {accounts.map((a) => <option value={a.id}>{a.username}</option>)}
        </select>
      </Field>
      <Field label="Secondary machine (failover)" name="secondary_resource_id" errors={errors} hint="Used when the primary does not answer within 5 s; logged in to with the same user name.">
        <select name="secondary_resource_id" value={f.secondary_resource_id} onChange={(e) => setF({ ...f, secondary_resource_id: inputValue(e) })}>
          <option value="">(none)</option>
          {ssh.filter((r) => r.id !== f.primary_resource_id).map((r) => <option value={r.id}>{r.name} ({r.host}:{r.ports.ssh})</option>)}
        </select>
      </Field>
      <Field label="Notes" name="notes" errors={errors}><textarea name="notes" value={f.notes} onInput={(e) => setF({ ...f, notes: inputValue(e) })} /></Field>
      <Field label="Mode" name="mode" errors={errors} hint={f.mode === 'tunnel' ? 'SSH tunnels (direct-tcpip): the landing server must allow TCP forwarding.' : "The gateway logs in to the landing server's shell and types the client command for the next hop; what the landing server prints goes to the session's connection log."}>
        <select name="mode" value={f.mode} onChange={(e) => setF({ ...f, mode: inputValue(e) })}>
          <option value="tunnel">Tunnel</option>
          <option value="interactive">Interactive (type ssh / telnet at its shell)</option>
        </select>
      </Field>
      {f.mode === 'interactive' && (
        <>
          <Field label="SSH command" name="ssh_command" errors={errors} hint="Empty: the default. Placeholders {host}, {port}, {username}; start it with exec so that leaving the target ends the session.">
            <input name="ssh_command" value={f.ssh_command} onInput={(e) => setF({ ...f, ssh_command: inputValue(e) })} placeholder="exec ssh -p {port} ... {username}@{host}" />
          </Field>
          <Field label="Telnet command" name="telnet_command" errors={errors}>
            <input name="telnet_command" value={f.telnet_command} onInput={(e) => setF({ ...f, telnet_command: inputValue(e) })} placeholder="exec telnet {host} {port}" />
          </Field>
        </>
      )}
      {errors._ && <Notice kind="error">{errors._}</Notice>}
      <div class="actions"><button type="submit" class="primary">Save</button></div>
    </form>
  );
}

export function LandingServers(props: { me: Me }) {
  const [rows, setRows] = useState<Landing[] | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [editing, setEditing] = useState<Landing | 'new' | null>(null);
  const load = () => api<Landing[]>('GET', '/landing-servers').then(setRows).catch((e) => setErr(errorsFrom(e)._ ?? 'Failed'));
  useEffect(() => { load(); }, []);
  const admin = props.me.capabilities.manage_users;
  return (
    <section>
      <div class="title-row"><h1>Landing servers</h1>{admin && <button class="primary" onClick={() => setEditing('new')}>Add landing server</button>}</div>
      <p class="muted">Jump hosts the gateway goes through to reach resources it cannot reach directly. A landing server can itself be reached through another one.</p>
      {err && <Notice kind="error">{err}</Notice>}
      {rows && (
        <Table testid="landing-servers" rows={rows} rowKey={(l) => l.id} empty="No landing servers: every resource is reached directly."
          columns={[
            { key: 'name', label: 'Name' },
            { key: 'location', label: 'Location' },
            { key: 'primary', label: 'Machine', value: (l) => l.primary.name, render: (l) => <>{l.primary.name} <span class="muted">{l.primary.host}:{l.primary.ssh_port}</span>{l.secondary && <div class="muted">failover: {l.secondary.name}</div>}</> },
            { key: 'account', label: 'Login', value: (l) => l.account.username ?? '' },
            { key: 'mode', label: 'Mode' },
            { key: 'through', label: 'Reached through', value: (l) => l.reached_through ?? '', render: (l) => l.reached_through ?? <span class="muted">directly</span> },
            { key: 'reaches', label: 'Reaches', value: (l) => l.reaches.map((r) => r.name).join(', '), render: (l) => l.reaches.length ? l.reaches.map((r, i) => <>{i > 0 && ', '}<a href={'#/resources/' + r.id}>{r.name}</a></>) : <span class="muted">nothing yet</span> },
            { key: 'x', label: '', value: () => '', render: (l) => admin ? (
              <div class="actions">
                <button onClick={() => setEditing(l)}>Edit</button>
                <button class="danger" onClick={async () => { if (!confirm(`Delete landing server ${l.name}?`)) return; try { await api('DELETE', `/landing-servers/${l.id}`); load(); } catch (e) { setErr(errorsFrom(e)._ ?? 'Failed'); } }}>Delete</button>
              </div>
            ) : null },
          ]} />
      )}
      {editing && (
        <Modal title={editing === 'new' ? 'Add landing server' : `Edit ${editing.name}`} onClose={() => setEditing(null)}>
          <LandingForm landing={editing === 'new' ? undefined : editing} onSaved={() => { setEditing(null); load(); }} />
        </Modal>
      )}
    </section>
  );
}

/** The resource page's "Reached through": the path, and for administrators the choice. */
export function ReachedThrough(props: { resourceId: string; canChange: boolean }) {
  const [path, setPath] = useState<PathView | null>(null);
  const [landings, setLandings] = useState<Landing[]>([]);
  const [choice, setChoice] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const load = () => api<PathView>('GET', `/resources/${props.resourceId}/path`).then((p) => { setPath(p); setChoice(p.hops.length ? p.hops[p.hops.length - 1].id : ''); }).catch((e) => setErrors(errorsFrom(e)));
  useEffect(() => { load(); if (props.canChange) api<Landing[]>('GET', '/landing-servers').then(setLandings).catch(() => {}); }, [props.resourceId]);
  if (!path) return <span class="muted">{errors._ ?? '…'}</span>;
  const save = async (e: Event) => {
    e.preventDefault();
    try { await api('PUT', `/resources/${props.resourceId}/landing-server`, { landing_server_id: choice || null }); setErrors({}); load(); } catch (err) { setErrors(errorsFrom(err)); }
  };
  return (
    <span data-testid="reached-through">
      <span data-testid="path">{['gateway', ...path.hops.map((h) => h.name), path.resource.name].join(' → ')}</span>
      {props.canChange && (
        <form class="inline-form" onSubmit={save}>
          <Field label="Reached through" name="landing_server_id" errors={errors}>
            <select name="landing_server_id" value={choice} onChange={(e) => setChoice(inputValue(e))}>
              <option value="">directly</option>
              {landings.map((l) => <option value={l.id}>{l.name}</option>)}
            </select>
          </Field>
          <button type="submit">Save</button>
        </form>
      )}
    </span>
  );
}
