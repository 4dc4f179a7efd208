// Why: Telnet has no authentication of its own, so Portcullis logs in by script: expect a
// prompt, type a value (the vault fills in {password} and {enable_secret}; this page never
// sees them). Administrators pick or write the script per resource type (Logon scripts
// page) and per resource (its Telnet settings); everyone sees which script applies and
// that Telnet is plaintext.
import { useEffect, useState } from 'preact/hooks';
import { api, Account, Me, TYPES } from '../api';
import { Errors, errorsFrom, Field, inputValue, Notice } from '../ui';

export interface Step { label: string; expect: string; send?: string | null; timeout_s?: number }
export interface Script { steps: Step[]; failure: string[] }
interface Applied { builtin?: string; script?: Script; source: string; steps: Step[]; failure: string[] }
interface Choice { builtin?: string; script?: Script }

const SOURCES: Record<string, string> = {
  resource: "this resource's own script",
  'resource type': "the script chosen for this resource type",
  default: "the resource type's built-in default",
};

function StepsTable(props: { steps: Step[]; failure: string[] }) {
  return (
    <div class="logon-steps">
      <table class="data compact" data-testid="logon-steps">
        <thead><tr><th>#</th><th>Step</th><th>Waits for</th><th>Then types</th><th>Timeout</th></tr></thead>
        <tbody>
          {props.steps.map((s, i) => (
            <tr>
              <td>{i + 1}</td><td>{s.label}</td><td><code>{s.expect}</code></td>
              <td>{s.send == null ? <span class="muted">nothing</span> : <code>{s.send === '' ? '(Enter)' : s.send}</code>}</td>
              <td>{s.timeout_s ?? 10} s</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="muted">Fails at once on: {props.failure.length ? props.failure.map((f, i) => <>{i > 0 && ', '}<code>{f}</code></>) : 'nothing (only the timeouts)'}</div>
    </div>
  );
}

/** Edits a choice: default, a built-in, or a custom script (rows of steps). */
function ChoiceEditor(props: { value: Choice | null; builtins: Record<string, Script>; defaultLabel: string; errors: Errors; onChange: (c: Choice | null) => void }) {
  const mode = props.value?.builtin ? 'builtin:' + props.value.builtin : props.value?.script ? 'custom' : 'default';
  const script = props.value?.script;
  const setMode = (m: string) => {
    if (m === 'default') props.onChange(null);
    else if (m.startsWith('builtin:')) props.onChange({ builtin: m.slice(8) });
    else props.onChange({ script: script ?? JSON.parse(JSON.stringify(props.builtins.unix)) });
  };
  const setStep = (i: number, patch: Partial<Step>) => {
    if (!script) return;
    const steps = script.steps.map((s, j) => (j === i ? { ...s, ...patch } : s));
    props.onChange({ script: { ...script, steps } });
  };
  const err = (k: string) => props.errors['script.' + k];
  return (
    <div class="logon-editor">
      <Field label="Script" name="builtin" errors={props.errors}>
        <select name="script-mode" value={mode} onChange={(e) => setMode(inputValue(e))}>
          <option value="default">{props.defaultLabel}</option>
          {Object.keys(props.builtins).map((b) => <option value={'builtin:' + b}>Built-in: {b}</option>)}
          <option value="custom">Custom script…</option>
        </select>
      </Field>
      {script && (
        <>
          <table class="data compact" data-testid="script-editor">
            <thead><tr><th>Step</th><th>Waits for (pattern)</th><th>Then types</th><th>Timeout (s)</th><th></th></tr></thead>
            <tbody>
              {script.steps.map((s, i) => (
                <tr>
                  <td><input name={`step-${i}-label`} value={s.label} onInput={(e) => setStep(i, { label: inputValue(e) })} />{err(`steps[${i}].label`) && <span class="error" role="alert">{err(`steps[${i}].label`)}</span>}</td>
                  <td><input name={`step-${i}-expect`} value={s.expect} onInput={(e) => setStep(i, { expect: inputValue(e) })} />{err(`steps[${i}].expect`) && <span class="error" role="alert">{err(`steps[${i}].expect`)}</span>}</td>
                  <td><input name={`step-${i}-send`} value={s.send ?? ''} placeholder="(type nothing)" onInput={(e) => { const v = inputValue(e); setStep(i, { send: v === '' ? null : v }); }} />{err(`steps[${i}].send`) && <span class="error" role="alert">{err(`steps[${i}].send`)}</span>}</td>
                  <td><input name={`step-${i}-timeout`} type="number" min={1} max={120} value={s.timeout_s ?? 10} onInput={(e) => setStep(i, { timeout_s: Number(inputValue(e)) })} />{err(`steps[${i}].timeout_s`) && <span class="error" role="alert">{err(`steps[${i}].timeout_s`)}</span>}</td>
                  <td>
                    <button type="button" disabled={i === 0} onClick={() => { const st = [...script.steps]; [st[i - 1], st[i]] = [st[i], st[i - 1]]; props.onChange({ script: { ...script, steps: st } }); }} title="Move up">↑</button>
                    <button type="button" onClick={() => props.onChange({ script: { ...script, steps: script.steps.filter((_, j) => j !== i) } })} title="Remove">✕</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {err('steps') && <Notice kind="error">{err('steps')}</Notice>}
          <button type="button" data-testid="add-step" onClick={() => props.onChange({ script: { ...script, steps: [...script.steps, { label: 'prompt', expect: '', send: null, timeout_s: 10 }] } })}>Add step</button>
          {Object.entries(props.errors).filter(([k]) => k.startsWith('script.failure')).map(([, m]) => <Notice kind="error">Failure pattern: {m}</Notice>)}
          <Field label="Failure patterns (one per line)" name="failure" errors={{}} hint="Any of these in the output ends the logon at once, naming the step.">
            <textarea name="failure" rows={3} value={script.failure.join('\n')} onInput={(e) => props.onChange({ script: { ...script, failure: inputValue(e).split('\n').filter((l) => l.trim() !== '') } })} />
          </Field>
          <p class="hint">Patterns are case-insensitive regular expressions matched against what the target printed since the previous step. Values: text, <code>{'{username}'}</code>, <code>{'{password}'}</code>, <code>{'{enable_secret}'}</code> (the secrets are typed by the gateway and never recorded); Enter is sent after each value.</p>
        </>
      )}
    </div>
  );
}

interface TelnetView { port: number | null; plaintext_warning: string; override: Choice | null; enable_account_id: string | null; require_landing: boolean; applied: Applied }

/** The resource page's Telnet section. */
export function TelnetSettings(props: { resourceId: string; canChange: boolean; accounts: Account[] }) {
  const [v, setV] = useState<TelnetView | null>(null);
  const [builtins, setBuiltins] = useState<Record<string, Script>>({});
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState<{ choice: Choice | null; enable: string; landing: boolean }>({ choice: null, enable: '', landing: false });
  const [errors, setErrors] = useState<Errors>({});
  const [saved, setSaved] = useState(false);
  const load = () => api<TelnetView>('GET', `/resources/${props.resourceId}/telnet`).then((x) => {
    setV(x);
    setForm({ choice: x.override, enable: x.enable_account_id ?? '', landing: x.require_landing });
  }).catch((e) => setErrors(errorsFrom(e)));
  useEffect(() => { load(); api<{ builtins: Record<string, Script> }>('GET', '/logon-scripts').then((x) => setBuiltins(x.builtins)).catch(() => {}); }, [props.resourceId]);
  if (!v) return <span class="muted">{errors._ ?? '…'}</span>;
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await api('PUT', `/resources/${props.resourceId}/telnet`, { script_override: form.choice, enable_account_id: form.enable || null, require_landing: form.landing });
      setErrors({}); setEditing(false); setSaved(true); load();
    } catch (err) { setErrors(errorsFrom(err)); }
  };
  const a = v.applied;
  return (
    <div data-testid="telnet-settings">
      <Notice kind="info"><b>Plaintext.</b> {v.plaintext_warning}</Notice>
      {v.require_landing && <p data-testid="telnet-landing-only">Telnet to this resource is allowed only through a landing server.</p>}
      <p>Logon: {a.builtin ? <>built-in script <b>{a.builtin}</b></> : <b>custom script</b>} ({SOURCES[a.source] ?? a.source}){v.enable_account_id && <>; enable secret from account <b>{props.accounts.find((x) => x.id === v.enable_account_id)?.username ?? v.enable_account_id}</b></>}.</p>
      <StepsTable steps={a.steps} failure={a.failure} />
      {saved && !editing && <Notice kind="ok">Saved; new Telnet sessions use it.</Notice>}
      {props.canChange && !editing && <button onClick={() => { setEditing(true); setSaved(false); }} data-testid="edit-telnet">Change Telnet settings…</button>}
      {props.canChange && editing && (
        <form onSubmit={save} class="telnet-form">
          <ChoiceEditor value={form.choice} builtins={builtins} defaultLabel="The resource type's script" errors={errors} onChange={(c) => setForm({ ...form, choice: c })} />
          <Field label="Enable secret" name="enable_account_id" errors={errors} hint="For scripts that type {enable_secret}: the password of this account of the resource.">
            <select name="enable_account_id" value={form.enable} onChange={(e) => setForm({ ...form, enable: inputValue(e) })}>
              <option value="">(none)</option>
              {props.accounts.filter((x) => x.secret_kind === 'password').map((x) => <option value={x.id}>{x.username}</option>)}
            </select>
          </Field>
          <label class="check"><input type="checkbox" name="require_landing" checked={form.landing} onChange={(e) => setForm({ ...form, landing: (e.target as HTMLInputElement).checked })} /> Allow Telnet only through a landing server</label>
          {errors._ && <Notice kind="error">{errors._}</Notice>}
          <div class="actions"><button type="submit" class="primary">Save Telnet settings</button><button type="button" onClick={() => { setEditing(false); setErrors({}); load(); }}>Cancel</button></div>
        </form>
      )}
    </div>
  );
}

interface TypeRow { resource_type: string; default_builtin: string; applied: Applied }

/** Administrators: the logon script of every resource type. */
export function LogonScripts(props: { me: Me }) {
  const [data, setData] = useState<{ builtins: Record<string, Script>; types: TypeRow[] } | null>(null);
  const [editing, setEditing] = useState<{ type: string; choice: Choice | null } | null>(null);
  const [errors, setErrors] = useState<Errors>({});
  const load = () => api<{ builtins: Record<string, Script>; types: TypeRow[] }>('GET', '/logon-scripts').then(setData).catch((e) => setErrors(errorsFrom(e)));
  useEffect(() => { load(); }, []);
  if (!data) return <p>{errors._ ?? 'Loading…'}</p>;
  const save = async (e: Event) => {
    e.preventDefault();
    if (!editing) return;
    try { await api('PUT', `/logon-scripts/${editing.type}`, editing.choice ?? {}); setEditing(null); setErrors({}); load(); } catch (err) { setErrors(errorsFrom(err)); }
  };
  return (
    <section>
      <h1>Logon scripts</h1>
      <p class="muted">How Telnet sessions log in, per resource type. A resource can override its type's script in its own Telnet settings.</p>
      {data.types.map((t) => (
        <div class="card" data-testid={'logon-type-' + t.resource_type}>
          <div class="title-row">
            <h2>{TYPES[t.resource_type] ?? t.resource_type}</h2>
            {props.me.capabilities.manage_users && editing?.type !== t.resource_type && <button onClick={() => { setErrors({}); setEditing({ type: t.resource_type, choice: t.applied.source === 'default' ? null : (t.applied.builtin ? { builtin: t.applied.builtin } : { script: { steps: t.applied.steps, failure: t.applied.failure } }) }); }}>Change…</button>}
          </div>
          <p>{t.applied.builtin ? <>Built-in script <b>{t.applied.builtin}</b></> : <b>Custom script</b>} {t.applied.source === 'default' ? '(default)' : '(chosen by an administrator)'}</p>
          {editing?.type === t.resource_type ? (
            <form onSubmit={save}>
              <ChoiceEditor value={editing.choice} builtins={data.builtins} defaultLabel={`Default (built-in: ${t.default_builtin})`} errors={errors} onChange={(c) => setEditing({ type: t.resource_type, choice: c })} />
              {errors._ && <Notice kind="error">{errors._}</Notice>}
              <div class="actions"><button type="submit" class="primary">Save</button><button type="button" onClick={() => setEditing(null)}>Cancel</button></div>
            </form>
          ) : <StepsTable steps={t.applied.steps} failure={t.applied.failure} />}
        </div>
      ))}
    </section>
  );
}
